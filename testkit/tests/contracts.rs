#![allow(clippy::too_many_arguments)] // generated contract bindings mirror the ABI
//! The dev USDC contract itself: the committed artifact is what the source
//! compiles to, and the EIP-3009 / ERC-20 rules hold on the running chain.

use std::{
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::{Signer, local::PrivateKeySigner},
    sol,
    sol_types::{Eip712Domain, SolStruct},
};
use anyhow::{Result, ensure};
use testkit::{Stack, alloy};
use x402::{Usdc, eip3009::Authorization};

sol! {
    #[sol(rpc)]
    interface IDevUsdc {
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external;
        function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature) external;
        function cancelAuthorization(address authorizer, bytes32 nonce, bytes signature) external;
        function mint(address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 value) external returns (bool);
        function transferFrom(address from, address to, uint256 value) external returns (bool);
        function allowance(address owner, address spender) external view returns (uint256);
    }

    struct ReceiveWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }
}

#[test]
fn committed_artifact_matches_the_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(
        root.join("local/node_modules/solc").exists(),
        "solcjs is not installed: run `cargo xtask setup`"
    );
    let out = Command::new("node")
        .arg(root.join("contracts/build.mjs"))
        .arg("--check")
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A provider that signs and sends as `signer` (a fresh wallet: its own nonces).
/// A provider that sends as `signer`. The nonce is read from the chain for
/// every transaction: this test sends transactions that revert at gas
/// estimation, and the default cached nonce manager would count those and
/// leave a nonce gap, so the next transaction would never be mined.
fn sender(stack: &Stack, signer: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(signer.clone())
        .connect_http(stack.rpc_url.parse().unwrap())
        .erased()
}

fn auth(from: Address, to: Address, value: u64) -> Authorization {
    Authorization {
        from,
        to,
        value: U256::from(value),
        valid_after: U256::from(now() - 600),
        valid_before: U256::from(now() + 600),
        nonce: Authorization::random_nonce(),
    }
}

async fn sign(
    signer: &PrivateKeySigner,
    s: &impl SolStruct,
    domain: &Eip712Domain,
) -> Result<Bytes> {
    Ok(Bytes::from(
        signer
            .sign_hash(&s.eip712_signing_hash(domain))
            .await?
            .as_bytes(),
    ))
}

/// Sends a call and reports whether it reverted (with the revert text).
async fn sends<P: Provider, C: alloy::sol_types::SolCall>(
    call: alloy::contract::SolCallBuilder<P, C>,
) -> Result<(), String> {
    match call.send().await {
        Ok(pending) => {
            let receipt = pending
                .with_timeout(Some(std::time::Duration::from_secs(30)))
                .get_receipt()
                .await
                .map_err(|e| e.to_string())?;
            if receipt.status() {
                Ok(())
            } else {
                Err("reverted".into())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn transfer_with_authorization_by_a_third_party_and_its_rules() -> Result<()> {
    let stack = Stack::load()?;
    let domain = stack.usdc_domain();
    let payer = stack.fresh_wallet(1_000_000).await?;
    let relayer = stack.fresh_wallet(0).await?;
    let payee = PrivateKeySigner::random().address();
    let provider = sender(&stack, &relayer);
    let token = IDevUsdc::new(stack.usdc_contract, &provider);

    // (v, r, s) overload.
    let a = auth(payer.address(), payee, 1_000);
    let sig = payer.sign_hash(&a.signing_hash(&domain)).await?;
    let v = 27 + u8::from(sig.v());
    let r = B256::from(sig.r());
    let s = B256::from(sig.s());
    let t = &a;
    let call = token.transferWithAuthorization_0(
        t.from,
        t.to,
        t.value,
        t.valid_after,
        t.valid_before,
        t.nonce,
        v,
        r,
        s,
    );
    sends(call).await.map_err(anyhow::Error::msg)?;
    assert_eq!(stack.usdc_balance(payee).await?, Usdc::from_atomic(1_000));

    // Replaying it reverts.
    let call = token.transferWithAuthorization_0(
        t.from,
        t.to,
        t.value,
        t.valid_after,
        t.valid_before,
        t.nonce,
        v,
        r,
        s,
    );
    let err = sends(call).await.unwrap_err();
    ensure!(err.contains("authorization is used or canceled"), "{err}");

    // `bytes signature` overload; a signature over other terms is refused.
    let b = auth(payer.address(), payee, 2_000);
    let good = sign(&payer, &b.to_typed(), &domain).await?;
    let mut other = b.clone();
    other.value = U256::from(2_001);
    let wrong = sign(&payer, &other.to_typed(), &domain).await?;
    let call = token.transferWithAuthorization_1(
        b.from,
        b.to,
        b.value,
        b.valid_after,
        b.valid_before,
        b.nonce,
        wrong,
    );
    let err = sends(call).await.unwrap_err();
    ensure!(err.contains("invalid signature"), "{err}");
    let call = token.transferWithAuthorization_1(
        b.from,
        b.to,
        b.value,
        b.valid_after,
        b.valid_before,
        b.nonce,
        good,
    );
    sends(call).await.map_err(anyhow::Error::msg)?;
    assert_eq!(stack.usdc_balance(payee).await?, Usdc::from_atomic(3_000));

    // Expired and not-yet-valid authorizations revert.
    let mut c = auth(payer.address(), payee, 1);
    c.valid_before = U256::from(now() - 1);
    let sig = sign(&payer, &c.to_typed(), &domain).await?;
    let call = token.transferWithAuthorization_1(
        c.from,
        c.to,
        c.value,
        c.valid_after,
        c.valid_before,
        c.nonce,
        sig,
    );
    ensure!(sends(call).await.unwrap_err().contains("expired"));
    let mut d = auth(payer.address(), payee, 1);
    d.valid_after = U256::from(now() + 3600);
    let sig = sign(&payer, &d.to_typed(), &domain).await?;
    let call = token.transferWithAuthorization_1(
        d.from,
        d.to,
        d.value,
        d.valid_after,
        d.valid_before,
        d.nonce,
        sig,
    );
    ensure!(sends(call).await.unwrap_err().contains("not yet valid"));
    Ok(())
}

#[tokio::test]
async fn receive_and_cancel_authorization() -> Result<()> {
    let stack = Stack::load()?;
    let domain = stack.usdc_domain();
    let payer = stack.fresh_wallet(1_000_000).await?;
    let payee = stack.fresh_wallet(0).await?;
    let stranger = stack.fresh_wallet(0).await?;

    let a = auth(payer.address(), payee.address(), 500);
    let typed = ReceiveWithAuthorization {
        from: a.from,
        to: a.to,
        value: a.value,
        validAfter: a.valid_after,
        validBefore: a.valid_before,
        nonce: a.nonce,
    };
    let sig = sign(&payer, &typed, &domain).await?;

    // Only the payee may submit a receive authorization.
    let p = sender(&stack, &stranger);
    let tok = IDevUsdc::new(stack.usdc_contract, &p);
    let call = tok.receiveWithAuthorization(
        a.from,
        a.to,
        a.value,
        a.valid_after,
        a.valid_before,
        a.nonce,
        sig.clone(),
    );
    ensure!(
        sends(call)
            .await
            .unwrap_err()
            .contains("caller must be the payee")
    );
    let p = sender(&stack, &payee);
    let tok = IDevUsdc::new(stack.usdc_contract, &p);
    let call = tok.receiveWithAuthorization(
        a.from,
        a.to,
        a.value,
        a.valid_after,
        a.valid_before,
        a.nonce,
        sig,
    );
    sends(call).await.map_err(anyhow::Error::msg)?;
    assert_eq!(
        stack.usdc_balance(payee.address()).await?,
        Usdc::from_atomic(500)
    );

    // A canceled authorization can no longer be used.
    let b = auth(payer.address(), payee.address(), 700);
    let cancel = CancelAuthorization {
        authorizer: payer.address(),
        nonce: b.nonce,
    };
    let cancel_sig = sign(&payer, &cancel, &domain).await?;
    let call = tok.cancelAuthorization(payer.address(), b.nonce, cancel_sig);
    sends(call).await.map_err(anyhow::Error::msg)?;
    assert!(stack.authorization_state(payer.address(), b.nonce).await?);
    let sig = sign(&payer, &b.to_typed(), &domain).await?;
    let call = tok.transferWithAuthorization_1(
        b.from,
        b.to,
        b.value,
        b.valid_after,
        b.valid_before,
        b.nonce,
        sig,
    );
    ensure!(sends(call).await.unwrap_err().contains("used or canceled"));
    assert_eq!(
        stack.usdc_balance(payee.address()).await?,
        Usdc::from_atomic(500)
    );
    Ok(())
}

#[tokio::test]
async fn erc20_basics_and_minter_only_mint() -> Result<()> {
    let stack = Stack::load()?;
    let owner = stack.fresh_wallet(10_000).await?;
    let spender = stack.fresh_wallet(0).await?;
    let to = PrivateKeySigner::random().address();

    let p = sender(&stack, &owner);

    let tok = IDevUsdc::new(stack.usdc_contract, &p);
    let call = tok.approve(spender.address(), U256::from(4_000));
    sends(call).await.map_err(anyhow::Error::msg)?;
    let p = sender(&stack, &spender);
    let tok = IDevUsdc::new(stack.usdc_contract, &p);
    let call = tok.transferFrom(owner.address(), to, U256::from(5_000));
    ensure!(sends(call).await.unwrap_err().contains("exceeds allowance"));
    let call = tok.transferFrom(owner.address(), to, U256::from(3_000));
    sends(call).await.map_err(anyhow::Error::msg)?;
    assert_eq!(stack.usdc_balance(to).await?, Usdc::from_atomic(3_000));
    assert_eq!(
        stack.usdc_balance(owner.address()).await?,
        Usdc::from_atomic(7_000)
    );
    assert_eq!(
        tok.allowance(owner.address(), spender.address())
            .call()
            .await?,
        U256::from(1_000)
    );

    // Anyone but the minter is refused.
    let call = tok.mint(spender.address(), U256::from(1));
    ensure!(sends(call).await.unwrap_err().contains("not a minter"));

    // The minter constant in the source is Anvil account #0.
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/USDC.sol"),
    )?;
    ensure!(src.contains(&stack.minter_address.to_checksum(None)));
    assert_eq!(stack.provider().get_chain_id().await?, 84532);
    Ok(())
}
