//! Test support for integration tests that run against the local stack
//! (`cargo xtask stack`, or `cargo xtask test` which brings it up itself).
//!
//! ```ignore
//! let stack = testkit::Stack::load()?;            // reads .local/stack.env
//! let buyer = stack.fresh_wallet(5_000_000).await?; // 5 USDC + ETH, this test's own wallet
//! let before = stack.usdc_balance(stack.seller_wallet).await?;
//! // ... pay something ...
//! assert_eq!(stack.usdc_balance(stack.seller_wallet).await?, before + amount);
//! ```
//!
//! Every test that moves money uses its own [`Stack::fresh_wallet`], so tests
//! can run in parallel and assert exact balance changes. Fresh wallets are
//! funded from a faucet account (Anvil #9) under a file lock: never from
//! account #0, which the facilitator settles with (a transaction from it here
//! could take the nonce a settlement is about to use).
//!
//! A test that needs the stack fails with a clear message when it is not up;
//! it never skips silently.

use std::{
    collections::BTreeMap,
    fs,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, Log},
    signers::local::PrivateKeySigner,
    sol,
    sol_types::{Eip712Domain, SolCall, SolEvent},
};
use anyhow::{Context, Result, anyhow, bail, ensure};
use x402::{Network, Usdc, eip3009::IUsdc, facilitator::HttpFacilitator};

pub use alloy;

pub mod agentcore_payments;
mod aws;
pub mod facilitator;
pub mod process;
mod temp;

pub use temp::TempDir;

sol! {
    /// The parts of our dev token (`contracts/USDC.sol`) that the x402
    /// crate's `IUsdc` does not cover.
    #[sol(rpc)]
    interface ITestUsdc {
        event Transfer(address indexed from, address indexed to, uint256 value);
        function transfer(address to, uint256 value) external returns (bool);
        function mint(address to, uint256 amount) external returns (bool);
        function totalSupply() external view returns (uint256);
    }
}

/// ETH every fresh wallet gets (1 ETH; EIP-3009 payers need none, but a
/// wallet that sends its own transactions does).
pub const FRESH_WALLET_ETH_WEI: u128 = 1_000_000_000_000_000_000;

/// The running local stack, as described by `.local/stack.env`.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Anvil's JSON-RPC URL.
    pub rpc_url: String,
    pub chain_id: u64,
    pub network: Network,
    /// Our EIP-3009 token, at the Base Sepolia USDC address.
    pub usdc_contract: Address,
    pub multicall3: Address,
    /// The official x402 facilitator (v1 `base-sepolia` and v2 `eip155:84532`).
    pub facilitator_url: String,
    /// The account the facilitator settles with (Anvil #0).
    pub facilitator_address: Address,
    /// `None` when the stack runs without the gateway (`--no-app`, or no real binary yet).
    pub gateway_url: Option<String>,
    /// `None` when the stack runs without the agent.
    pub agent_url: Option<String>,
    /// moto (S3, DynamoDB, AgentCore Memory events).
    pub aws_endpoint_url: String,
    pub moto_url: String,
    pub aws_region: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    /// Anvil #1.
    pub seller_wallet: Address,
    pub seller_private_key: String,
    /// Anvil #2, funded with 1,000 USDC at stack start (shared: prefer `fresh_wallet`).
    pub buyer_address: Address,
    pub buyer_private_key: String,
    /// Anvil #0: the token's minter (and the facilitator's settler).
    pub minter_address: Address,
    pub minter_private_key: String,
    /// Anvil #9: funds fresh wallets.
    pub faucet_address: Address,
    pub faucet_private_key: String,
    pub results_dir: PathBuf,
    pub images_dir: PathBuf,
    pub logs_dir: PathBuf,
    /// Every key of the file, including ones added after this struct was written.
    pub vars: BTreeMap<String, String>,
    env_file: PathBuf,
    provider: DynProvider,
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it),
/// for a child process that must be told its port before it binds.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// `<workspace>/.local/stack.env`.
pub fn default_env_file() -> PathBuf {
    workspace_root().join(".local").join("stack.env")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

impl Stack {
    /// Reads `$STACK_ENV` (relative paths are from the workspace root) or
    /// `<workspace>/.local/stack.env`.
    pub fn load() -> Result<Stack> {
        let path = match std::env::var_os("STACK_ENV") {
            Some(p) => workspace_root().join(p),
            None => default_env_file(),
        };
        Stack::from_file(&path)
    }

    pub fn from_file(path: &Path) -> Result<Stack> {
        let text = fs::read_to_string(path).map_err(|e| {
            anyhow!(
                "the local stack is not running ({}: {e}). Start it with `cargo xtask stack` \
                 (or run everything with `cargo xtask test`)",
                path.display()
            )
        })?;
        let vars = parse_env(&text);
        if let Some(pid) = vars.get("STACK_SUPERVISOR_PID")
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            bail!(
                "{} is stale: the stack that wrote it (pid {pid}) is gone. \
                 Start it again with `cargo xtask stack`",
                path.display()
            );
        }
        let get = |k: &str| -> Result<String> {
            vars.get(k).cloned().ok_or_else(|| {
                anyhow!("{} has no {k}: restart `cargo xtask stack`", path.display())
            })
        };
        let addr = |k: &str| -> Result<Address> {
            let v = get(k)?;
            Address::from_str(&v).with_context(|| format!("{k}={v} is not an address"))
        };
        let rpc_url = get("RPC_URL")?;
        let provider = ProviderBuilder::new()
            .connect_http(
                rpc_url
                    .parse()
                    .with_context(|| format!("RPC_URL={rpc_url}"))?,
            )
            .erased();
        Ok(Stack {
            chain_id: get("CHAIN_ID")?.parse().context("CHAIN_ID")?,
            network: Network::from_any_name(&get("NETWORK")?)?,
            usdc_contract: addr("USDC_CONTRACT")?,
            multicall3: addr("MULTICALL3")?,
            facilitator_url: get("FACILITATOR_URL")?,
            facilitator_address: addr("FACILITATOR_ADDRESS")?,
            gateway_url: vars.get("GATEWAY_URL").cloned(),
            agent_url: vars.get("AGENT_URL").cloned(),
            aws_endpoint_url: get("AWS_ENDPOINT_URL")?,
            moto_url: get("MOTO_URL")?,
            aws_region: get("AWS_REGION")?,
            aws_access_key_id: get("AWS_ACCESS_KEY_ID")?,
            aws_secret_access_key: get("AWS_SECRET_ACCESS_KEY")?,
            seller_wallet: addr("SELLER_WALLET")?,
            seller_private_key: get("SELLER_PRIVATE_KEY")?,
            buyer_address: addr("BUYER_ADDRESS")?,
            buyer_private_key: get("BUYER_PRIVATE_KEY")?,
            minter_address: addr("MINTER_ADDRESS")?,
            minter_private_key: get("MINTER_PRIVATE_KEY")?,
            faucet_address: addr("FAUCET_ADDRESS")?,
            faucet_private_key: get("FAUCET_PRIVATE_KEY")?,
            results_dir: get("RESULTS_DIR")?.into(),
            images_dir: get("IMAGES_DIR")?.into(),
            logs_dir: get("LOGS_DIR")?.into(),
            rpc_url,
            env_file: path.to_path_buf(),
            provider,
            vars,
        })
    }

    /// Any key of `stack.env`.
    pub fn var(&self, key: &str) -> Result<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("{} has no {key}", self.env_file.display()))
    }

    /// The gateway's URL, or an error saying why it is not running.
    pub fn require_gateway(&self) -> Result<&str> {
        self.gateway_url.as_deref().ok_or_else(|| {
            anyhow!(
                "the local stack runs without the gateway (started with --no-app, or the \
                 gateway binary is a placeholder); see .local/logs and run `cargo xtask stack`"
            )
        })
    }

    /// The agent's URL, or an error saying why it is not running.
    pub fn require_agent(&self) -> Result<&str> {
        self.agent_url.as_deref().ok_or_else(|| {
            anyhow!(
                "the local stack runs without the agent (started with --no-app, or the \
                 agent binary is a placeholder); see .local/logs and run `cargo xtask stack`"
            )
        })
    }

    /// A read-only provider on Anvil.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The token through the x402 crate's interface.
    pub fn usdc(&self) -> IUsdc::IUsdcInstance<DynProvider> {
        IUsdc::new(self.usdc_contract, self.provider.clone())
    }

    /// The token's EIP-712 domain as x402 describes it (`extra` name "USDC", version "2").
    pub fn usdc_domain(&self) -> Eip712Domain {
        x402::eip3009::domain("USDC", "2", self.chain_id, self.usdc_contract)
    }

    /// The facilitator client from the x402 crate, pointed at the local facilitator.
    pub fn facilitator(&self) -> HttpFacilitator {
        HttpFacilitator::new(self.facilitator_url.clone(), Duration::from_secs(30))
    }

    pub fn buyer_signer(&self) -> Result<PrivateKeySigner> {
        parse_key(&self.buyer_private_key)
    }

    pub fn seller_signer(&self) -> Result<PrivateKeySigner> {
        parse_key(&self.seller_private_key)
    }

    pub async fn usdc_balance(&self, who: Address) -> Result<Usdc> {
        let raw = self
            .usdc()
            .balanceOf(who)
            .call()
            .await
            .context("USDC balanceOf")?;
        Ok(Usdc::from_u256(raw)?)
    }

    /// `authorizationState(authorizer, nonce)`: true once used or canceled.
    pub async fn authorization_state(&self, authorizer: Address, nonce: B256) -> Result<bool> {
        self.usdc()
            .authorizationState(authorizer, nonce)
            .call()
            .await
            .context("USDC authorizationState")
    }

    pub async fn block_number(&self) -> Result<u64> {
        Ok(self.provider.get_block_number().await?)
    }

    /// A new random wallet holding 1 ETH and `usdc_atomic` USDC units (6
    /// decimals: 1_000_000 = 1 USDC), for one test's exclusive use.
    pub async fn fresh_wallet(&self, usdc_atomic: u64) -> Result<PrivateKeySigner> {
        let wallet = PrivateKeySigner::random();
        self.set_eth_balance(wallet.address(), U256::from(FRESH_WALLET_ETH_WEI))
            .await?;
        if usdc_atomic > 0 {
            self.faucet_usdc(wallet.address(), Usdc::from_atomic(usdc_atomic))
                .await?;
        }
        Ok(wallet)
    }

    /// `anvil_setBalance` (ETH, in wei).
    pub async fn set_eth_balance(&self, who: Address, wei: U256) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (who, wei))
            .await
            .context("anvil_setBalance")?;
        Ok(())
    }

    /// Sends `amount` USDC from the faucet to `to` and waits for it to be mined.
    pub async fn faucet_usdc(&self, to: Address, amount: Usdc) -> Result<()> {
        let _lock = self.faucet_lock().await?;
        let data = ITestUsdc::transferCall {
            to,
            value: amount.to_u256(),
        }
        .abi_encode();
        let tx = serde_json::json!({
            "from": self.faucet_address,
            "to": self.usdc_contract,
            "data": alloy::primitives::Bytes::from(data),
        });
        // Anvil's dev accounts are unlocked: Anvil fills nonce and gas. The
        // lock serializes faucet transactions across threads and processes.
        let hash: B256 = self
            .provider
            .raw_request("eth_sendTransaction".into(), (tx,))
            .await
            .context("faucet transfer")?;
        let receipt = self.wait_for_receipt(hash).await?;
        ensure!(receipt, "faucet transfer {hash} reverted");
        Ok(())
    }

    /// Waits for a transaction to be mined; `Ok(true)` if it succeeded.
    pub async fn wait_for_receipt(&self, hash: B256) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self.provider.get_transaction_receipt(hash).await? {
                return Ok(r.status());
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{hash} not mined in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn faucet_lock(&self) -> Result<fs::File> {
        let path = self.env_file.with_file_name("faucet.lock");
        tokio::task::spawn_blocking(move || -> Result<fs::File> {
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            f.lock()
                .with_context(|| format!("locking {}", path.display()))?;
            Ok(f)
        })
        .await?
    }

    /// USDC `Transfer` logs from `from` to `to` in `blocks` (inclusive).
    pub async fn transfer_logs(
        &self,
        from: Address,
        to: Address,
        blocks: RangeInclusive<u64>,
    ) -> Result<Vec<Log>> {
        let filter = Filter::new()
            .address(self.usdc_contract)
            .event_signature(ITestUsdc::Transfer::SIGNATURE_HASH)
            .topic1(from.into_word())
            .topic2(to.into_word())
            .from_block(*blocks.start())
            .to_block(*blocks.end());
        Ok(self.provider.get_logs(&filter).await?)
    }

    /// How many USDC `Transfer`s went from `from` to `to` in `blocks`.
    pub async fn count_transfers(
        &self,
        from: Address,
        to: Address,
        blocks: RangeInclusive<u64>,
    ) -> Result<usize> {
        Ok(self.transfer_logs(from, to, blocks).await?.len())
    }

    /// The total USDC moved from `from` to `to` in `blocks`.
    pub async fn transferred(
        &self,
        from: Address,
        to: Address,
        blocks: RangeInclusive<u64>,
    ) -> Result<Usdc> {
        let mut total = U256::ZERO;
        for log in self.transfer_logs(from, to, blocks).await? {
            let t = ITestUsdc::Transfer::decode_log_data(log.data())?;
            total += t.value;
        }
        Ok(Usdc::from_u256(total)?)
    }
}

fn parse_key(hex: &str) -> Result<PrivateKeySigner> {
    PrivateKeySigner::from_str(hex).context("bad private key in stack.env")
}

/// `KEY=VALUE` lines; `#` comments and blank lines ignored.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_lines() {
        let vars = parse_env("# c\n\nA=1\nB = x=y \n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "x=y");
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn missing_file_says_how_to_start_the_stack() {
        let err = Stack::from_file(Path::new("/nonexistent/stack.env")).unwrap_err();
        assert!(err.to_string().contains("cargo xtask stack"), "{err}");
    }
}
