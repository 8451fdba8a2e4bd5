//! The buyer's wallet as `check_balance` sees it: its address and its USDC
//! balance, read from the chain (`balanceOf` over JSON-RPC).

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
};
use async_trait::async_trait;
use x402::{Usdc, eip3009::IUsdc};

#[derive(Debug, thiserror::Error)]
#[error("cannot read the wallet balance: {0}")]
pub struct WalletError(pub String);

#[async_trait]
pub trait Wallet: Send + Sync {
    fn address(&self) -> Address;
    async fn usdc_balance(&self) -> Result<Usdc, WalletError>;
}

/// Reads the balance from an RPC node.
pub struct ChainWallet {
    provider: DynProvider,
    usdc: Address,
    address: Address,
}

impl ChainWallet {
    pub fn new(rpc_url: &str, usdc: Address, address: Address) -> Result<Self, WalletError> {
        let url = rpc_url
            .parse()
            .map_err(|e| WalletError(format!("RPC_URL: {e}")))?;
        Ok(ChainWallet {
            provider: ProviderBuilder::new().connect_http(url).erased(),
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
}
