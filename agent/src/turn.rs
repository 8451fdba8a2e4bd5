//! One turn of the conversation: the Converse tool loop.

use tokio::sync::mpsc;

use crate::events::{AgentEvent, Output};

/// What a turn needs from its caller. Filled in by the turn's owner.
pub struct TurnRequest {
    pub session_id: String,
    pub actor_id: String,
    pub prompt: String,
    /// Budget for the session, set by the caller (never by the model);
    /// `None` = the configured default.
    pub session_budget: Option<x402::Usdc>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    #[error("{0}")]
    Internal(String),
}

/// Runs one turn, streaming progress to `events`, and returns the final output.
pub async fn run_turn(
    _req: TurnRequest,
    _events: mpsc::Sender<AgentEvent>,
) -> Result<Output, TurnError> {
    Err(TurnError::Internal("not built yet".into()))
}
