//! Session state and where it lives.
//!
//! A session's state is an append-only list of [`Record`]s: conversation
//! messages and payment-ledger entries. It is stored as AgentCore Memory
//! events in AWS (`memory.rs`, one event per append, `clientToken` for
//! idempotent writes, strictly increasing timestamps) and in an embedded
//! store locally (`local.rs`), behind [`SessionStore`]. The newest state is
//! read at the start of each turn; invocations of one session are serialised
//! by the server, different sessions run in parallel and never share state.

/// Which ids clients may send and how stores name them (shared with the
/// tools, which key images the same way).
pub use tools::ids;
pub mod local;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tools::{
    ledger::LedgerEntry,
    toolbox::{LedgerLog, LedgerWriteError},
};

/// One stored item of a session, in append order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A conversation message (Bedrock Converse message JSON shape:
    /// `{"role": "user"|"assistant", "content": [...]}`), owned by `turn`.
    Message { message: serde_json::Value },
    /// A payment-ledger entry (quote, consent, prepared payment, receipt,
    /// image...), owned by the money logic; opaque to the store.
    Ledger { entry: serde_json::Value },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store data corrupt: {0}")]
    Corrupt(String),
}

/// Durable, per-session, append-only storage.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Every record of the session, oldest first. Empty for a new session.
    async fn load(
        &self,
        actor_id: &str,
        session_id: &str,
    ) -> Result<Vec<Record>, SessionStoreError>;

    /// Appends records atomically enough that a retry with the same
    /// `idempotency_key` never stores them twice.
    async fn append(
        &self,
        actor_id: &str,
        session_id: &str,
        records: &[Record],
        idempotency_key: &str,
    ) -> Result<(), SessionStoreError>;
}

/// One session's ledger as the tools write it: each entry is appended as a
/// [`Record::Ledger`] of the session.
pub struct SessionLedger {
    pub store: Arc<dyn SessionStore>,
    pub actor_id: String,
    pub session_id: String,
}

#[async_trait]
impl LedgerLog for SessionLedger {
    async fn append(
        &self,
        entry: &LedgerEntry,
        idempotency_key: &str,
    ) -> Result<(), LedgerWriteError> {
        let record = Record::Ledger {
            entry: tools::ledger::encode(entry),
        };
        self.store
            .append(&self.actor_id, &self.session_id, &[record], idempotency_key)
            .await
            .map_err(|e| LedgerWriteError(e.to_string()))
    }
}
