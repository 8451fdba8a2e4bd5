//! Anvil as an adversary's instrument: mining held back so a race can be
//! arranged (automine off, the settlement seen in the pool, a competing
//! transaction with a higher tip, one block), EIP-3009 burns signed by the
//! buyer, and a generator that counts and can be held.

use std::{
    io::{Read, Write},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{Provider, ProviderBuilder},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolStruct},
};
use async_trait::async_trait;
use gateway_lambda::generate::{
    GeneratedImage, GenerationError, Generator, ImageJob, LocalGenerator,
};
use serde_json::Value;
use x402::eip3009::Authorization;

/// Tests that switch automine off run one at a time: each needs the pool to
/// itself to arrange its race.
pub static MINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[allow(clippy::too_many_arguments)] // generated bindings mirror the ABI
mod burn_abi {
    alloy::sol! {
        /// The EIP-3009 entry points a buyer can burn a nonce with (the
        /// `bytes signature` overloads of FiatToken v2.2 and our dev token).
        #[sol(rpc)]
        interface IBurn {
            function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature) external;
            function transferWithAuthorization(address from, address to, uint256 value,
                uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
            function receiveWithAuthorization(address from, address to, uint256 value,
                uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        }

        struct CancelAuthorization { address authorizer; bytes32 nonce; }
        struct ReceiveWithAuthorization {
            address from; address to; uint256 value; uint256 validAfter; uint256 validBefore; bytes32 nonce;
        }
    }
}
pub use burn_abi::*;

/// How the buyer uses up its own nonce.
#[derive(Clone, Copy, Debug)]
pub enum Burn {
    /// `cancelAuthorization(payer, nonce)`.
    Cancel,
    /// `transferWithAuthorization` of 0 USDC to itself with the same nonce.
    Transfer,
    /// `receiveWithAuthorization` of 0 USDC to itself with the same nonce.
    Receive,
}

/// Burns `nonce` from `buyer`'s own account with a 100 gwei tip (the
/// facilitator tips ~1 gwei, so Anvil mines this first in a shared block).
/// Returns the transaction hash without waiting for it to be mined.
pub async fn burn(
    stack: &testkit::Stack,
    buyer: &PrivateKeySigner,
    nonce: B256,
    how: Burn,
) -> B256 {
    let domain = stack.usdc_domain();
    let me = buyer.address();
    let p = ProviderBuilder::new()
        .wallet(buyer.clone())
        .connect_http(stack.rpc_url.parse().unwrap());
    let sig = |hash: B256| Bytes::from(buyer.sign_hash_sync(&hash).unwrap().as_bytes().to_vec());
    let (after, before) = (U256::ZERO, U256::from(u64::MAX));
    let call = match how {
        Burn::Cancel => {
            let h = CancelAuthorization {
                authorizer: me,
                nonce,
            }
            .eip712_signing_hash(&domain);
            IBurn::cancelAuthorizationCall {
                authorizer: me,
                nonce,
                signature: sig(h),
            }
            .abi_encode()
        }
        Burn::Transfer => {
            let auth = Authorization {
                from: me,
                to: me,
                value: U256::ZERO,
                valid_after: after,
                valid_before: before,
                nonce,
            };
            let s = sig(auth.signing_hash(&domain));
            IBurn::transferWithAuthorizationCall {
                from: me,
                to: me,
                value: U256::ZERO,
                validAfter: after,
                validBefore: before,
                nonce,
                signature: s,
            }
            .abi_encode()
        }
        Burn::Receive => {
            let h = ReceiveWithAuthorization {
                from: me,
                to: me,
                value: U256::ZERO,
                validAfter: after,
                validBefore: before,
                nonce,
            }
            .eip712_signing_hash(&domain);
            IBurn::receiveWithAuthorizationCall {
                from: me,
                to: me,
                value: U256::ZERO,
                validAfter: after,
                validBefore: before,
                nonce,
                signature: sig(h),
            }
            .abi_encode()
        }
    };
    let tx = alloy::rpc::types::TransactionRequest::default()
        .to(stack.usdc_contract)
        .input(Bytes::from(call).into())
        .gas_limit(200_000)
        .max_priority_fee_per_gas(100_000_000_000)
        .max_fee_per_gas(300_000_000_000);
    let pending = p.send_transaction(tx).await.unwrap();
    *pending.tx_hash()
}

async fn rpc(stack: &testkit::Stack, method: &'static str, params: Value) -> Value {
    stack
        .provider()
        .raw_request::<_, Value>(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Pending transactions in Anvil's pool whose input carries `nonce`.
pub async fn pending_with(stack: &testkit::Stack, nonce: B256) -> usize {
    let content = rpc(stack, "txpool_content", Value::Array(vec![])).await;
    let needle = hex::encode(nonce);
    content["pending"]
        .as_object()
        .into_iter()
        .flat_map(|by_sender| by_sender.values())
        .filter_map(Value::as_object)
        .flat_map(|by_nonce| by_nonce.values())
        .filter(|tx| {
            tx["input"]
                .as_str()
                .is_some_and(|i| i.to_lowercase().contains(&needle))
        })
        .count()
}

/// Waits until `n` pending transactions carry `nonce` (the pool status is
/// polled; 30 s at most).
pub async fn wait_in_pool(stack: &testkit::Stack, nonce: B256, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if pending_with(stack, nonce).await >= n {
            return;
        }
        let status = rpc(stack, "txpool_status", Value::Array(vec![])).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} transaction(s) with nonce {nonce} never reached the pool: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Automine off until [`Automine::resume`] or drop (a failed test must not
/// leave the shared chain stopped).
pub struct Automine {
    rpc_url: String,
}

impl Automine {
    pub async fn off(stack: &testkit::Stack) -> Automine {
        rpc(stack, "evm_setAutomine", Value::Array(vec![false.into()])).await;
        Automine {
            rpc_url: stack.rpc_url.clone(),
        }
    }

    /// Mines one block with what is pending (Anvil orders it by tip).
    pub async fn mine_one(&self, stack: &testkit::Stack) {
        rpc(stack, "evm_mine", Value::Array(vec![])).await;
    }

    pub async fn resume(self, stack: &testkit::Stack) {
        rpc(stack, "evm_setAutomine", Value::Array(vec![true.into()])).await;
    }
}

impl Drop for Automine {
    fn drop(&mut self) {
        // Blocking and runtime-free, so it also runs while a test panics.
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"evm_setAutomine","params":[true]}"#;
        let host = self
            .rpc_url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            let _ = write!(
                s,
                "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}

/// A fresh payee of the test's own: its balance moves only for this test.
pub fn fresh_payee() -> Address {
    PrivateKeySigner::random().address()
}

/// The local generator, counting image generations; while held, each
/// generation waits for [`Counted::release`].
pub struct Counted {
    pub calls: AtomicUsize,
    /// The output limit the last text generation was given (0: none yet).
    max_tokens: std::sync::atomic::AtomicU64,
    hold: std::sync::atomic::AtomicBool,
    gate: tokio::sync::Semaphore,
}

impl Default for Counted {
    fn default() -> Self {
        Counted {
            calls: AtomicUsize::new(0),
            max_tokens: std::sync::atomic::AtomicU64::new(0),
            hold: std::sync::atomic::AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Counted {
    pub fn held() -> Arc<Counted> {
        let c = Counted::default();
        c.hold.store(true, Ordering::SeqCst);
        Arc::new(c)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn max_output_tokens(&self) -> Option<u64> {
        Some(self.max_tokens.load(Ordering::SeqCst)).filter(|n| *n > 0)
    }

    pub fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.gate.add_permits(1_000);
    }
}

#[async_trait]
impl Generator for Counted {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hold.load(Ordering::SeqCst) {
            self.gate.acquire().await.unwrap().forget();
        }
        LocalGenerator.image(job).await
    }
    async fn text(&self, p: &str) -> Result<String, GenerationError> {
        LocalGenerator.text(p).await
    }
    async fn text_within(&self, p: &str, max: u64) -> Result<String, GenerationError> {
        self.max_tokens.store(max, Ordering::SeqCst);
        LocalGenerator.text(p).await
    }
    async fn count_input_tokens(&self, p: &str) -> Result<u64, GenerationError> {
        LocalGenerator.count_input_tokens(p).await
    }
    fn name(&self) -> &'static str {
        "counted"
    }
}

/// Polls `cond` every 50 ms until it holds (120 s at most).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    // A bound on a hang, not a timing claim: generous, for a loaded 2-core CI
    // machine where 32 payments of one payer reserve one at a time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
