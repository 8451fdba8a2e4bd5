//! The buyer's wallet as `check_balance` sees it: address, network, chain id,
//! ETH and USDC balances read from the chain (alloy on `RPC_URL`,
//! `balanceOf` on `USDC_CONTRACT`). Amounts are exact decimals: USDC as
//! [`Usdc`] (6 decimals), ETH as a decimal string of its 18-decimal wei.

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
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
    #[serde(with = "x402::wire::checksummed")]
    pub address: Address,
    pub network: Network,
    pub chain_id: u64,
    /// Exact decimal ETH, e.g. "0.000021".
    pub eth: String,
    pub usdc: Usdc,
}

#[async_trait]
pub trait Wallet: Send + Sync {
    fn address(&self) -> Address;
    async fn usdc_balance(&self) -> Result<Usdc, WalletError>;
    async fn info(&self) -> Result<WalletInfo, WalletError>;
}

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
