//! What the gateway asks the chain: has this authorization been used, and
//! by which transaction? Asked before any `/settle` is repeated, so a
//! settlement whose answer was lost is recognised instead of retried blind.

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use async_trait::async_trait;
use x402::eip3009::IUsdc;

#[derive(Debug, thiserror::Error)]
#[error("chain: {0}")]
pub struct ChainError(pub String);

#[async_trait]
pub trait Chain: Send + Sync {
    /// `None` if the authorization is unused; `Some(tx)` if it was used, with
    /// the transaction hash when the node can still find its log ("" if not).
    async fn authorization_used(
        &self,
        payer: Address,
        nonce: B256,
    ) -> Result<Option<String>, ChainError>;
}

/// JSON-RPC through alloy.
pub struct RpcChain {
    provider: DynProvider,
    token: Address,
}

/// How far back to look for the `AuthorizationUsed` log (an authorization
/// lives minutes; Base makes a block every 2 s).
const LOG_LOOKBACK_BLOCKS: u64 = 10_000;

impl RpcChain {
    pub fn new(rpc_url: &str, token: Address) -> Result<Self, ChainError> {
        let url = rpc_url
            .parse()
            .map_err(|e| ChainError(format!("RPC_URL {rpc_url:?}: {e}")))?;
        Ok(RpcChain {
            provider: ProviderBuilder::new().connect_http(url).erased(),
            token,
        })
    }
}

#[async_trait]
impl Chain for RpcChain {
    async fn authorization_used(
        &self,
        payer: Address,
        nonce: B256,
    ) -> Result<Option<String>, ChainError> {
        let used = IUsdc::new(self.token, &self.provider)
            .authorizationState(payer, nonce)
            .call()
            .await
            .map_err(|e| ChainError(e.to_string()))?;
        if !used {
            return Ok(None);
        }
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| ChainError(e.to_string()))?;
        let filter = Filter::new()
            .address(self.token)
            .event_signature(IUsdc::AuthorizationUsed::SIGNATURE_HASH)
            .topic1(payer.into_word())
            .topic2(nonce)
            .from_block(head.saturating_sub(LOG_LOOKBACK_BLOCKS));
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| ChainError(e.to_string()))?;
        Ok(Some(
            logs.first()
                .and_then(|l| l.transaction_hash)
                .map(|h| format!("{h:#x}"))
                .unwrap_or_default(),
        ))
    }
}
