//! The buyer's wallet as `check_balance` sees it: address, network, chain id,
//! ETH and USDC balances read from the chain (alloy on `RPC_URL`,
//! `balanceOf` on `USDC_CONTRACT`). Amounts are exact decimals: USDC as
//! [`Usdc`] (6 decimals), ETH as a decimal string of its 18-decimal wei.
//!
//! It also answers what the chain knows about one of the wallet's signed
//! authorizations ([`Wallet::authorization`]): the agent asks before it
//! calls a payment the seller answered with `402` "refused".

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use async_trait::async_trait;
use serde::Serialize;
use x402::{Network, Usdc, eip3009::IUsdc};

#[derive(Debug, thiserror::Error)]
#[error("cannot read the wallet balance: {0}")]
pub struct WalletError(pub String);

/// Everything `check_balance` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletInfo {
    #[serde(with = "x402::checksummed")]
    pub address: Address,
    pub network: Network,
    pub chain_id: u64,
    /// Exact decimal ETH, e.g. "0.000021".
    pub eth: String,
    pub usdc: Usdc,
}

/// What the chain says about one EIP-3009 authorization, all read at one
/// block (so "unused" and the time are consistent: an authorization unused
/// at a block whose timestamp is at or past its `validBefore` can never be
/// mined, since later blocks only have later timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationFacts {
    /// The block the facts were read at, and its timestamp (unix seconds).
    pub block: u64,
    pub block_timestamp: u64,
    /// `authorizationState(payer, nonce)` at that block.
    pub used: bool,
    /// When used: the transaction whose receipt has the token's
    /// `AuthorizationUsed(payer, nonce)` log, if the node still finds it.
    pub transaction: Option<B256>,
    /// That transaction succeeded and its receipt has, from the token,
    /// `Transfer(payer -> pay_to)` logs summing to this amount.
    pub paid_to_payee: Option<Usdc>,
}

#[async_trait]
pub trait Wallet: Send + Sync {
    fn address(&self) -> Address;
    async fn usdc_balance(&self) -> Result<Usdc, WalletError>;
    async fn info(&self) -> Result<WalletInfo, WalletError>;
    /// What the chain says about `payer`'s authorization `nonce`, and what
    /// the transaction that used it (if any) paid to `pay_to`.
    async fn authorization(
        &self,
        payer: Address,
        nonce: B256,
        pay_to: Address,
    ) -> Result<AuthorizationFacts, WalletError>;
}

/// How far back to look for an `AuthorizationUsed` log: authorizations live
/// minutes; Base makes a block every 2 s.
const LOG_LOOKBACK_BLOCKS: u64 = 10_000;

/// Reads balances from an RPC node.
pub struct ChainWallet {
    provider: DynProvider,
    network: Network,
    usdc: Address,
    address: Address,
}

impl ChainWallet {
    pub fn new(
        rpc_url: &str,
        network: Network,
        usdc: Address,
        address: Address,
    ) -> Result<Self, WalletError> {
        let url = rpc_url
            .parse()
            .map_err(|e| WalletError(format!("RPC_URL: {e}")))?;
        Ok(ChainWallet {
            provider: ProviderBuilder::new().connect_http(url).erased(),
            network,
            usdc,
            address,
        })
    }
}

#[async_trait]
impl Wallet for ChainWallet {
    fn address(&self) -> Address {
        self.address
    }

    async fn usdc_balance(&self) -> Result<Usdc, WalletError> {
        let raw = IUsdc::new(self.usdc, &self.provider)
            .balanceOf(self.address)
            .call()
            .await
            .map_err(|e| WalletError(e.to_string()))?;
        Usdc::from_u256(raw).map_err(|e| WalletError(e.to_string()))
    }

    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let (usdc, wei, chain_id) = tokio::try_join!(
            self.usdc_balance(),
            async {
                self.provider
                    .get_balance(self.address)
                    .await
                    .map_err(|e| WalletError(e.to_string()))
            },
            async {
                self.provider
                    .get_chain_id()
                    .await
                    .map_err(|e| WalletError(e.to_string()))
            },
        )?;
        if chain_id != self.network.chain_id() {
            return Err(WalletError(format!(
                "RPC_URL serves chain {chain_id}, but NETWORK is {} ({})",
                self.network,
                self.network.chain_id()
            )));
        }
        Ok(WalletInfo {
            address: self.address,
            network: self.network,
            chain_id,
            eth: format_units(wei, 18),
            usdc,
        })
    }

    async fn authorization(
        &self,
        payer: Address,
        nonce: B256,
        pay_to: Address,
    ) -> Result<AuthorizationFacts, WalletError> {
        let err = |e: &dyn std::fmt::Display| WalletError(e.to_string());
        let head = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| err(&e))?
            .ok_or_else(|| WalletError("the node has no latest block".into()))?;
        let (block, block_timestamp) = (head.header.number, head.header.timestamp);
        let token = IUsdc::new(self.usdc, &self.provider);
        let used = token
            .authorizationState(payer, nonce)
            .block(block.into())
            .call()
            .await
            .map_err(|e| err(&e))?;
        let mut facts = AuthorizationFacts {
            block,
            block_timestamp,
            used,
            transaction: None,
            paid_to_payee: None,
        };
        if !used {
            return Ok(facts);
        }
        let filter = Filter::new()
            .address(self.usdc)
            .event_signature(IUsdc::AuthorizationUsed::SIGNATURE_HASH)
            .topic1(payer.into_word())
            .topic2(nonce)
            .from_block(block.saturating_sub(LOG_LOOKBACK_BLOCKS))
            .to_block(block);
        let logs = self.provider.get_logs(&filter).await.map_err(|e| err(&e))?;
        let Some(tx) = logs.iter().find_map(|l| l.transaction_hash) else {
            return Ok(facts);
        };
        facts.transaction = Some(tx);
        let Some(receipt) = self
            .provider
            .get_transaction_receipt(tx)
            .await
            .map_err(|e| err(&e))?
        else {
            return Ok(facts);
        };
        if !receipt.status() {
            return Ok(facts);
        }
        let mut paid = Usdc::ZERO;
        for log in receipt.inner.logs() {
            if log.address() != self.usdc {
                continue;
            }
            if let Ok(t) = IUsdc::Transfer::decode_log(&log.inner)
                && t.from == payer
                && t.to == pay_to
            {
                let v = Usdc::from_u256(t.value).map_err(|e| err(&e))?;
                paid = paid
                    .checked_add(v)
                    .ok_or_else(|| WalletError("transfer sum overflows".into()))?;
            }
        }
        facts.paid_to_payee = (paid > Usdc::ZERO).then_some(paid);
        Ok(facts)
    }
}

/// `value` with `decimals` decimals as an exact decimal string, trailing
/// zeros trimmed ("1.5", "0", "0.000000000000000001").
pub fn format_units(value: U256, decimals: u32) -> String {
    let unit = U256::from(10u64).pow(U256::from(decimals));
    let (int, frac) = (value / unit, value % unit);
    if frac.is_zero() {
        return int.to_string();
    }
    let frac = format!("{:0>width$}", frac.to_string(), width = decimals as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_format_exactly() {
        assert_eq!(format_units(U256::ZERO, 18), "0");
        assert_eq!(format_units(U256::from(1u64), 18), "0.000000000000000001");
        assert_eq!(
            format_units(U256::from(1_500_000_000_000_000_000u128), 18),
            "1.5"
        );
        assert_eq!(format_units(U256::from(40_000u64), 6), "0.04");
        assert_eq!(format_units(U256::from(1_000_000u64), 6), "1");
    }
}
