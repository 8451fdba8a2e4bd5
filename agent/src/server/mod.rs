//! The Amazon Bedrock AgentCore Runtime service contract, over axum.
//!
//! AgentCore starts this container and talks to it on port 8080:
//!
//! - `POST /invocations`: one chat turn. The body is whatever the caller gave
//!   `InvokeAgentRuntime`; we accept the original sample's
//!   `{"input": {"prompt": "..."}, "session_id": "..."}` and the shorter
//!   `{"prompt": "..."}`, plus an optional caller-set budget
//!   `session_budget_usdc` (top level or in `input`; decimal USDC, at most
//!   `MAX_SESSION_BUDGET_USDC`). The model can never set it: it only reaches
//!   the turn through here. The session id comes from the
//!   `X-Amzn-Bedrock-AgentCore-Runtime-Session-Id` header, else the body,
//!   else a new one. The answer is `{"output": {...}}` (see
//!   [`events::Output`](crate::events::Output)), or, with
//!   `Accept: text/event-stream`, the same turn as SSE: one `data: {json}`
//!   per [`AgentEvent`], ending with exactly one `complete` (carrying the
//!   same `output`) or `error` event.
//! - `GET /ping`: `{"status": "Healthy"|"HealthyBusy", "time_of_last_update": <unix secs>}`.
//!   Busy while any turn (or other work holding a [`BusyGuard`]) is in
//!   flight, which keeps AgentCore from reaping the session mid-payment. The
//!   timestamp changes only when the status does. It reads one value behind
//!   a lock held for nanoseconds, so it answers instantly under any load.
//! - `GET /ws`: the same turns over a WebSocket, in the WebSocket chat
//!   Lambda's protocol: the client sends `{"input": {"prompt"}, "session_id"}`,
//!   the server sends progress events, then
//!   `{"type": "complete", "sessionId", "response": {"output": ...}}` or
//!   `{"type": "error", "message"}`; the socket stays open for the next prompt.
//!
//! Approvals (see [`QuoteInfo`](crate::events::QuoteInfo)): an
//! `/invocations` body may carry `"approve": {"request_id", "approved"}`
//! (with or without a prompt); on `/ws` a client sends
//! `{"type": "approve", "request_id", "approved"}` on the socket (its session
//! as for prompts). The turn records it and, if valid, pays and continues.
//!
//! Who may call, checked before any turn runs (4xx, nothing run):
//! - `/invocations` takes `Content-Type: application/json` only (415
//!   otherwise): a web page can send a cross-origin `text/plain` POST without
//!   a CORS preflight, but not a JSON one.
//! - A request carrying an `Origin` header (a browser) must come from an
//!   allowed origin: the agent's own (`http://127.0.0.1:<port>`,
//!   `http://localhost:<port>`) or one in `AGENT_ALLOWED_ORIGINS`; else 403.
//!   This covers `/ws`, whose upgrade browsers send cross-origin freely, and
//!   DNS rebinding (a page whose name resolves to 127.0.0.1 still sends its
//!   own origin). Clients without `Origin` (AgentCore, curl, the terminal
//!   chat) are not browsers and pass.
//! - The user is the AgentCore user-id header (`AGENT_ACTOR_ID` when absent,
//!   a local run). A session id belongs to the first user who used it
//!   ([`AccessStore::claim_session`]); another user's request for it gets
//!   403 and runs nothing.
//!
//! Bad input gets a JSON `{"error": "...", "request_id": "..."}` with a
//! status that says why: invalid JSON, no prompt, a bad session id, budget
//! or approval -> 400; a prompt or body over the configured limit -> 413;
//! another user's session or a foreign origin -> 403; not JSON -> 415.
//! Internal causes are logged under the same request id, never sent.
//!
//! Concurrency: the turns of one session run one at a time (a lock per
//! actor + session), so two invocations of a session never read the same
//! ledger and both pay; different sessions run in parallel. A turn runs in
//! its own task, not in the request's future: a client that disconnects
//! mid-turn does not cancel a payment half way; the turn finishes and its
//! result is recorded in the session for the next invocation to see.

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tools::access::{AccessStore, local::LocalAccessStore};
use x402::Usdc;

use crate::turn::TurnRunner;

mod error;
mod health;
mod invoke;
mod request;
mod sessions;
#[cfg(test)]
mod tests;
mod ws;

pub use error::{ApiError, Rejected};
pub use health::{BusyGuard, Health, PingStatus};
pub use request::{Invocation, parse_invocation};

use health::ping;
use invoke::invocations;
use sessions::SessionLocks;
use ws::ws_upgrade;

pub use crate::runtime_headers::{REQUEST_ID_HEADER, SESSION_HEADER, USER_ID_HEADER};
/// Progress events buffered between a turn and a slow client.
const EVENT_BUFFER: usize = 64;

/// Serves the agent for `state` on `listener` until `shutdown` resolves,
/// then waits up to `grace` for the turns in flight to finish, so a payment
/// is not cut in half by a shutdown. The binary only reads the
/// configuration, wires the state, binds and calls this.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let health = state.health().clone();
    plumbing::serve(listener, app(state), shutdown).await?;
    tracing::info!("shutting down: waiting for turns in flight");
    if tokio::time::timeout(grace, health.idle()).await.is_err() {
        tracing::warn!("turns still in flight after {grace:?}; exiting anyway");
    }
    Ok(())
}

/// Request limits (from [`Config`](crate::config::Config)).
#[derive(Clone, Debug)]
pub struct RequestLimits {
    pub max_prompt_chars: usize,
    pub max_body_bytes: usize,
    /// Highest `session_budget_usdc` a caller may set.
    pub max_session_budget: Usdc,
    /// Memory actor when the request has no user id header.
    pub default_actor_id: String,
    /// The port the agent serves on: its own origins are
    /// `http://127.0.0.1:<port>` and `http://localhost:<port>`.
    pub port: u16,
    /// Other browser origins allowed (`AGENT_ALLOWED_ORIGINS`), serialised
    /// as `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
}

impl RequestLimits {
    /// Whether a browser `Origin` may drive this agent.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        let own = [
            format!("http://127.0.0.1:{}", self.port),
            format!("http://localhost:{}", self.port),
            format!("http://[::1]:{}", self.port),
        ];
        own.iter()
            .chain(&self.allowed_origins)
            .any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Shared state of the service: the agent, limits, health, session locks.
#[derive(Clone)]
pub struct AppState {
    runner: Arc<dyn TurnRunner>,
    limits: Arc<RequestLimits>,
    health: Health,
    sessions: SessionLocks,
    /// The web chat page's routes, when `AGENT_WEB_UI` is on.
    web: Option<crate::web::WebUi>,
    access: Arc<dyn AccessStore>,
}

impl AppState {
    pub fn new(runner: Arc<dyn TurnRunner>, limits: RequestLimits) -> Self {
        AppState::with_health(runner, limits, Health::system())
    }

    /// With a given [`Health`] (tests pass one with a manual clock).
    pub fn with_health(runner: Arc<dyn TurnRunner>, limits: RequestLimits, health: Health) -> Self {
        AppState {
            runner,
            limits: Arc::new(limits),
            health,
            sessions: SessionLocks::default(),
            web: None,
            // Session owners in memory until `with_access` gives a durable store.
            access: Arc::new(LocalAccessStore::in_memory()),
        }
    }

    /// With the durable store of session owners (the same one that holds
    /// the daily caps).
    pub fn with_access(mut self, access: Arc<dyn AccessStore>) -> Self {
        self.access = access;
        self
    }

    /// Also serves the web chat page ([`crate::web`]).
    #[must_use]
    pub fn with_web_ui(mut self, ui: crate::web::WebUi) -> Self {
        self.web = Some(ui);
        self
    }

    pub fn health(&self) -> &Health {
        &self.health
    }
}

/// The whole HTTP surface; tests drive it in-process or serve it on loopback.
pub fn app(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    let web = state
        .web
        .clone()
        .map(crate::web::routes)
        .unwrap_or_default();
    Router::new()
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/ws", get(ws_upgrade))
        .merge(web)
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
