//! What the gateway reads from the chain: the token events of a settlement's
//! receipt (the proof of payment, judged in [`crate::settlement`]), which
//! transaction used an authorization (its `AuthorizationUsed` log), whether
//! an authorization is used at all, and a payer's balance (for
//! [`crate::reservation`]). Reads only; the gateway never sends a
//! transaction.

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, Log},
    sol_types::SolEvent,
};
use async_trait::async_trait;
use x402::eip3009::IUsdc;

#[derive(Debug, thiserror::Error)]
#[error("chain: {0}")]
pub struct ChainError(pub String);

/// One event the token contract emitted, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenEvent {
    AuthorizationUsed {
        authorizer: Address,
        nonce: B256,
    },
    Transfer {
        from: Address,
        to: Address,
        value: U256,
    },
    /// Anything else the token emitted (kept so adjacency stays exact).
    Other,
}

/// A mined transaction as far as the proof needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinedTx {
    pub tx: B256,
    pub block: u64,
    /// The receipt's status: `false` for a reverted transaction.
    pub success: bool,
    /// Events from the token contract only, in log order; logs of other
    /// contracts are dropped here, so a look-alike token cannot prove anything.
    pub token_events: Vec<TokenEvent>,
}

/// The latest block: its number and timestamp (the token's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub number: u64,
    pub timestamp: u64,
}

/// What ended an authorization, from the token's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// `AuthorizationUsed` in this transaction (a transfer or receive with
    /// authorization: whether it paid us is for its receipt to say).
    Used(B256),
    /// `AuthorizationCanceled` in this transaction: no money moved.
    Canceled(B256),
    /// Neither log in the lookback window: the chain cannot tell us which.
    NotFound,
}

alloy::sol! {
    /// EIP-3009's cancel event (FiatToken v2 and our dev token), not in the
    /// x402 crate's token interface.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);
}

#[async_trait]
pub trait Chain: Send + Sync {
    /// The mined transaction `tx`, or `None` if the node has no receipt (not
    /// mined yet, dropped, or unknown).
    async fn mined(&self, tx: B256) -> Result<Option<MinedTx>, ChainError>;
    /// Which transaction used or canceled a used authorization, from its
    /// `AuthorizationUsed` or `AuthorizationCanceled` log.
    async fn authorization_fate(&self, payer: Address, nonce: B256) -> Result<Fate, ChainError>;
    /// `authorizationState(payer, nonce)`: used *or canceled*.
    async fn authorization_used(&self, payer: Address, nonce: B256) -> Result<bool, ChainError>;
    /// The latest block.
    async fn head(&self) -> Result<Head, ChainError>;
    /// The token balance of `who`, in atomic units.
    async fn balance(&self, who: Address) -> Result<U256, ChainError>;
}

/// JSON-RPC through alloy.
pub struct RpcChain {
    provider: DynProvider,
    token: Address,
}

/// How far back to look for the `AuthorizationUsed` log. The lookup is for a
/// payment this gateway is settling, which an authorization keeps to minutes
/// (`maxTimeoutSeconds`); Base makes a block every 2 s, so this is ~5.5 h.
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

fn rpc(e: impl std::fmt::Display) -> ChainError {
    ChainError(e.to_string())
}

/// The token's events among `logs`, decoded; other contracts' logs dropped.
pub fn token_events(token: Address, logs: &[Log]) -> Vec<TokenEvent> {
    logs.iter()
        .filter(|l| l.address() == token)
        .map(|l| {
            if let Ok(e) = IUsdc::AuthorizationUsed::decode_log(&l.inner) {
                TokenEvent::AuthorizationUsed {
                    authorizer: e.authorizer,
                    nonce: e.nonce,
                }
            } else if let Ok(e) = IUsdc::Transfer::decode_log(&l.inner) {
                TokenEvent::Transfer {
                    from: e.from,
                    to: e.to,
                    value: e.value,
                }
            } else {
                TokenEvent::Other
            }
        })
        .collect()
}

#[async_trait]
impl Chain for RpcChain {
    async fn mined(&self, tx: B256) -> Result<Option<MinedTx>, ChainError> {
        let Some(r) = self
            .provider
            .get_transaction_receipt(tx)
            .await
            .map_err(rpc)?
        else {
            return Ok(None);
        };
        let Some(block) = r.block_number else {
            return Ok(None);
        };
        Ok(Some(MinedTx {
            tx,
            block,
            success: r.status(),
            token_events: token_events(self.token, r.logs()),
        }))
    }

    async fn authorization_fate(&self, payer: Address, nonce: B256) -> Result<Fate, ChainError> {
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let filter = Filter::new()
            .address(self.token)
            .event_signature(vec![
                IUsdc::AuthorizationUsed::SIGNATURE_HASH,
                AuthorizationCanceled::SIGNATURE_HASH,
            ])
            .topic1(payer.into_word())
            .topic2(nonce)
            .from_block(head.saturating_sub(LOG_LOOKBACK_BLOCKS));
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let Some((log, tx)) = logs
            .iter()
            .find_map(|l| l.transaction_hash.map(|tx| (l, tx)))
        else {
            return Ok(Fate::NotFound);
        };
        Ok(if log.topic0() == Some(&AuthorizationCanceled::SIGNATURE_HASH) {
            Fate::Canceled(tx)
        } else {
            Fate::Used(tx)
        })
    }

    async fn authorization_used(&self, payer: Address, nonce: B256) -> Result<bool, ChainError> {
        IUsdc::new(self.token, &self.provider)
            .authorizationState(payer, nonce)
            .call()
            .await
            .map_err(rpc)
    }

    async fn head(&self) -> Result<Head, ChainError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| ChainError("the node has no latest block".into()))?;
        Ok(Head {
            number: block.header.number,
            timestamp: block.header.timestamp,
        })
    }

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        IUsdc::new(self.token, &self.provider)
            .balanceOf(who)
            .call()
            .await
            .map_err(rpc)
    }
}
