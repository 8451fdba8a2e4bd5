//! Preparing a fresh Anvil chain over plain JSON-RPC: place the contracts
//! with `anvil_setCode`, fund accounts, mint USDC, mine a block.
//!
//! Minting is an ordinary transaction from the (unlocked) minter account, so
//! it emits `Transfer` events like real issuance. It happens before the
//! facilitator starts, so nothing else is using the minter's nonce.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::accounts::{self, DevAccount};

/// `mint(address,uint256)`
const MINT_SELECTOR: &str = "40c10f19";
/// `balanceOf(address)`
const BALANCE_OF_SELECTOR: &str = "70a08231";

/// A minimal JSON-RPC client.
#[derive(Clone, Debug)]
pub struct Rpc {
    url: String,
    http: reqwest::Client,
}

impl Rpc {
    pub fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client builds");
        Rpc {
            url: url.into(),
            http,
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method}: {} unreachable", self.url))?
            .json()
            .await
            .with_context(|| format!("{method}: answer is not JSON"))?;
        if let Some(err) = resp.get("error") {
            bail!("{method} failed: {err}");
        }
        resp.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: no result in {resp}"))
    }

    pub async fn chain_id(&self) -> Result<u64> {
        let v = self.call("eth_chainId", json!([])).await?;
        parse_quantity(&v).context("eth_chainId")
    }

    async fn send_and_confirm(&self, from: &str, to: &str, data: &str) -> Result<()> {
        let tx = json!([{ "from": from, "to": to, "data": data }]);
        let hash = self.call("eth_sendTransaction", tx).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let receipt = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !receipt.is_null() {
                ensure!(
                    receipt["status"] == "0x1",
                    "transaction {hash} from {from} to {to} reverted"
                );
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "transaction {hash} not mined in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn block_number(&self) -> Result<u64> {
        let v = self.call("eth_blockNumber", json!([])).await?;
        parse_quantity(&v).context("eth_blockNumber")
    }

    /// How many `Transfer(from, to, _)` events `token` emitted since block `from_block`.
    pub async fn transfers(
        &self,
        token: &str,
        from: &str,
        to: &str,
        from_block: u64,
    ) -> Result<usize> {
        const TRANSFER: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
        let topic = |a: &str| word_address(a).map(|w| format!("0x{w}"));
        let logs = self
            .call(
                "eth_getLogs",
                json!([{
                    "address": token,
                    "fromBlock": format!("0x{from_block:x}"),
                    "toBlock": "latest",
                    "topics": [TRANSFER, topic(from)?, topic(to)?],
                }]),
            )
            .await?;
        logs.as_array()
            .map(Vec::len)
            .ok_or_else(|| anyhow!("eth_getLogs: {logs}"))
    }

    /// `balanceOf(who)` on `token`, in atomic units.
    pub async fn usdc_balance(&self, token: &str, who: &str) -> Result<u128> {
        let data = format!("0x{BALANCE_OF_SELECTOR}{}", word_address(who)?);
        let v = self
            .call("eth_call", json!([{ "to": token, "data": data }, "latest"]))
            .await?;
        let hex = v.as_str().ok_or_else(|| anyhow!("balanceOf: {v}"))?;
        u128::from_str_radix(hex.trim_start_matches("0x"), 16).context("balanceOf result")
    }
}

/// Runtime bytecode of a contract in `contracts/artifacts.json`.
pub fn runtime_bytecode(artifacts: &Path, contract: &str) -> Result<String> {
    let text = std::fs::read_to_string(artifacts)
        .with_context(|| format!("reading {}", artifacts.display()))?;
    let v: Value = serde_json::from_str(&text).context("parsing contracts/artifacts.json")?;
    v["contracts"][contract]["runtimeBytecode"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!(
                "no runtime bytecode for {contract} in {}",
                artifacts.display()
            )
        })
}

/// Everything the chain needs before the other services start.
pub async fn bootstrap(rpc: &Rpc, artifacts: &Path) -> Result<()> {
    let chain_id = rpc.chain_id().await?;
    ensure!(
        chain_id == accounts::CHAIN_ID,
        "Anvil reports chain id {chain_id}"
    );

    for (address, contract) in [
        (accounts::USDC_CONTRACT, "USDC"),
        (accounts::MULTICALL3, "Multicall3"),
    ] {
        let code = runtime_bytecode(artifacts, contract)?;
        rpc.call("anvil_setCode", json!([address, code])).await?;
    }

    let eth = format!("0x{:x}", accounts::START_ETH_WEI);
    for a in [
        accounts::MINTER,
        accounts::SELLER,
        accounts::BUYER,
        accounts::FAUCET,
    ] {
        rpc.call("anvil_setBalance", json!([a.address, eth]))
            .await?;
    }

    for (to, amount) in [
        (accounts::BUYER, accounts::BUYER_START_USDC),
        (accounts::FAUCET, accounts::FAUCET_START_USDC),
    ] {
        mint(rpc, to, amount).await?;
    }

    // A fresh chain answers `eth_call` at `latest` with block.timestamp = 1
    // until a block is mined, and every EIP-3009 simulation would revert
    // "not yet valid". The mints above mined blocks; one more makes it explicit.
    rpc.call("evm_mine", json!([])).await?;

    let got = rpc
        .usdc_balance(accounts::USDC_CONTRACT, accounts::BUYER.address)
        .await?;
    ensure!(
        got == accounts::BUYER_START_USDC,
        "buyer holds {got} USDC units after minting, expected {}",
        accounts::BUYER_START_USDC
    );
    Ok(())
}

async fn mint(rpc: &Rpc, to: DevAccount, amount: u128) -> Result<()> {
    let data = format!(
        "0x{MINT_SELECTOR}{}{amount:064x}",
        word_address(to.address)?
    );
    rpc.send_and_confirm(accounts::MINTER.address, accounts::USDC_CONTRACT, &data)
        .await
        .with_context(|| format!("minting {amount} USDC units to {}", to.address))
}

/// An address as a 32-byte ABI word (hex, no prefix).
fn word_address(address: &str) -> Result<String> {
    let hex = address.trim_start_matches("0x");
    ensure!(
        hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "bad address {address}"
    );
    Ok(format!("{:0>64}", hex.to_ascii_lowercase()))
}

fn parse_quantity(v: &Value) -> Result<u64> {
    let s = v.as_str().ok_or_else(|| anyhow!("not a quantity: {v}"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("bad quantity {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_words() {
        assert_eq!(
            word_address(accounts::BUYER.address).unwrap(),
            "0000000000000000000000003c44cdddb6a900fa2b585dd299e03d12fa4293bc"
        );
        assert!(word_address("0x1234").is_err());
        assert_eq!(parse_quantity(&json!("0x14a34")).unwrap(), 84532);
    }
}
