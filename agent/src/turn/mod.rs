//! One turn of the conversation: the Converse tool loop.
//!
//! ```text
//! load session ─▶ [model call ─▶ tool calls (concurrent, results in call order)]* ─▶ answer ─▶ save messages
//! ```
//!
//! - The session's records are read at the start of every turn (the newest
//!   state; the server serialises the turns of one session).
//! - Each model call may ask for several tools; they run concurrently and
//!   their results go back in the order the model asked. An unknown tool or
//!   invalid arguments become a `toolResult` with status `error` that the
//!   model can react to; a tool never crashes the turn.
//! - At most `max_turns` model calls per invocation; then the turn ends with
//!   a clear message (history stays valid: it always ends on an assistant
//!   message).
//! - Context overflow: the oldest turns are dropped from what is sent
//!   ([`trim_oldest_turn`]), never splitting a toolUse from its toolResult;
//!   the stored history keeps everything.
//! - `max_tokens`: the cut-short reply is kept with a notice; tool calls it
//!   contained (whose input may be truncated) are not run.
//! - Ledger entries are written by the tools as they happen (a payment is
//!   persisted before it is sent); the conversation messages of the turn are
//!   written once, at the end, under one idempotency key.
//!
//! - An approval from the caller (`approve` in the request, as data) is
//!   handled before the model runs ([`TurnRequest::approval`]): a valid one
//!   is recorded in the ledger and the approved request is paid and
//!   generated right away, by code, as a `generate_image` call on the
//!   model's behalf (user message, tool call, tool result in the history);
//!   the model then continues the turn from that result. A refused approval
//!   (unknown request, expired quote) emits a `refusal` event and pays
//!   nothing.
//!
//! Spans (names agreed with [`crate::observability`]): `chat` per model call,
//! `execute_tool` per tool call, with gen_ai attributes.

mod approval;
mod calls;
mod progress;
mod run;

pub use progress::{ClientGone, Progress, ProgressSender};
pub use run::run_turn;

use std::sync::Arc;

use x402::Usdc;

use crate::{
    events::Output,
    model::{Model, ModelError},
    session::{SessionStore, SessionStoreError},
};
use tools::toolbox::ToolBox;

/// What the server needs from the agent: run one turn.
///
/// Implemented in [`wiring`](crate::wiring) over the real tool loop; the
/// contract tests use the same. The server guarantees that, for one
/// (actor, session), calls never overlap. Contract for implementors:
/// - send [`Progress`] to `progress`; it has no terminal variant: the
///   server sends `complete` or `error` itself, from what the turn returns;
/// - a failed `send` means the client left: keep going, the turn's result
///   is still recorded in the session;
/// - return the turn's [`Output`], or a [`TurnError`] whose detail is logged
///   and not shown to the client.
#[async_trait::async_trait]
pub trait TurnRunner: Send + Sync + 'static {
    async fn run_turn(
        &self,
        req: TurnRequest,
        progress: ProgressSender,
    ) -> Result<Output, TurnError>;
}

/// What a turn needs from its caller.
pub struct TurnRequest {
    pub session_id: String,
    pub actor_id: String,
    pub prompt: String,
    /// Budget for the session, set by the caller (never by the model);
    /// `None` = the configured default.
    pub session_budget: Option<x402::Usdc>,
    /// The user's answer to a quote, as data from the caller. With an
    /// approval the prompt may be empty.
    pub approval: Option<ApprovalAnswer>,
}

/// `{"request_id": "...", "approved": true|false}` from the caller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub request_id: String,
    pub approved: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] SessionStoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Loop settings (from `Config`).
#[derive(Clone, Copy, Debug)]
pub struct TurnSettings {
    /// Model calls per invocation before giving up (`MAX_TURNS`).
    pub max_turns: u32,
    /// Output limit per model call (`MAX_TOKENS`).
    pub max_tokens: u32,
    /// `SESSION_BUDGET_USDC`: the budget when the caller sets none.
    pub default_budget: Usdc,
}

/// Everything the tool loop depends on; built once by `wiring` and shared by
/// all sessions (it holds no per-session state). Implements
/// [`TurnRunner`], so the server can run it
/// directly.
pub struct TurnDeps {
    pub model: Arc<dyn Model>,
    pub store: Arc<dyn SessionStore>,
    pub tools: Arc<ToolBox>,
    pub settings: TurnSettings,
}

#[async_trait::async_trait]
impl TurnRunner for TurnDeps {
    async fn run_turn(
        &self,
        req: TurnRequest,
        progress: ProgressSender,
    ) -> Result<Output, TurnError> {
        run_turn(self, req, progress).await
    }
}
