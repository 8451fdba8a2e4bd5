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

use std::{
    collections::HashMap,
    convert::Infallible,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, State, WebSocketUpgrade,
        rejection::BytesRejection,
        ws::{Message, WebSocket},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response, Sse, sse},
    routing::{get, post},
};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{OwnedMutexGuard, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tools::access::{AccessStore, Claim, local::LocalAccessStore};
use tracing::Instrument as _;
use x402::Usdc;

use crate::{
    events::AgentEvent,
    observability::AGENT_NAME,
    session::ids::{is_valid_client_id, session_key},
    turn::{ApprovalAnswer, ProgressSender, TurnRequest, TurnRunner},
};

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
pub struct Limits {
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

impl Limits {
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
    limits: Arc<Limits>,
    health: Health,
    sessions: SessionLocks,
    /// The web chat page's routes, when `AGENT_WEB_UI` is on.
    web: Option<crate::web::WebUi>,
    access: Arc<dyn AccessStore>,
}

impl AppState {
    pub fn new(runner: Arc<dyn TurnRunner>, limits: Limits) -> Self {
        AppState::with_health(runner, limits, Health::system())
    }

    /// With a given [`Health`] (tests pass one with a manual clock).
    pub fn with_health(runner: Arc<dyn TurnRunner>, limits: Limits, health: Health) -> Self {
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

// ---------------------------------------------------------------- health

/// `/ping` state: how many units of work are in flight and since when the
/// status has been what it is.
#[derive(Clone)]
pub struct Health {
    state: Arc<watch::Sender<HealthState>>,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HealthState {
    in_flight: usize,
    since: u64,
}

/// What `/ping` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PingStatus {
    Healthy,
    HealthyBusy,
}

impl Health {
    /// Unix-seconds wall clock.
    pub fn system() -> Self {
        Health::with_clock(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        let since = clock();
        Health {
            state: Arc::new(watch::Sender::new(HealthState {
                in_flight: 0,
                since,
            })),
            clock: Arc::new(clock),
        }
    }

    /// Marks work in flight until the guard is dropped. Background work
    /// (anything that must not be cut short by AgentCore stopping an idle
    /// session) takes one too.
    pub fn busy(&self) -> BusyGuard {
        let now = (self.clock)();
        self.state.send_modify(|s| {
            if s.in_flight == 0 {
                s.since = now;
            }
            s.in_flight += 1;
        });
        BusyGuard(self.clone())
    }

    /// Status and the unix time it last changed.
    pub fn status(&self) -> (PingStatus, u64) {
        let s = *self.state.borrow();
        let status = if s.in_flight == 0 {
            PingStatus::Healthy
        } else {
            PingStatus::HealthyBusy
        };
        (status, s.since)
    }

    /// Resolves when nothing is in flight (graceful shutdown waits on it so
    /// a SIGTERM never cuts a payment in half).
    pub async fn idle(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.in_flight == 0).await;
    }
}

/// Holds the service `HealthyBusy` while alive.
pub struct BusyGuard(Health);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let now = (self.0.clock)();
        self.0.state.send_modify(|s| {
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.since = now;
            }
        });
    }
}

async fn ping(State(state): State<AppState>) -> Json<Value> {
    let (status, since) = state.health.status();
    Json(json!({"status": status, "time_of_last_update": since}))
}

// ---------------------------------------------------------------- sessions

/// One async lock per (actor, session), created on demand and dropped when
/// nobody holds or waits for it, so the map does not grow with every
/// session ever seen.
#[derive(Clone, Default)]
struct SessionLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

struct SessionGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    locks: SessionLocks,
}

impl SessionLocks {
    async fn lock(&self, actor: &str, session: &str) -> SessionGuard {
        // Keyed like the session store, so every spelling that reaches one
        // stored session (and its one budget) waits for the same lock.
        let key = session_key(actor, session);
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        SessionGuard {
            guard: Some(guard),
            key,
            locks: self.clone(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it: no holder, no waiter.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

// ---------------------------------------------------------------- errors

/// What clients see when a request is refused or fails. Messages are
/// stable and never include internal causes (those are logged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("Invalid JSON: the body must be a JSON object")]
    InvalidJson,
    #[error(
        "a prompt is required: {{\"input\": {{\"prompt\": \"...\"}}}} or {{\"prompt\": \"...\"}}"
    )]
    MissingPrompt,
    #[error("the prompt is longer than {0} characters")]
    PromptTooLong(usize),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("invalid session id: use 1-256 letters, digits, '-', '_', '.' or ':'")]
    InvalidSessionId,
    #[error("invalid user id header: use 1-256 letters, digits, '-', '_', '.' or ':'")]
    InvalidUserId,
    #[error("invalid session_budget_usdc: {0}")]
    InvalidBudget(String),
    #[error(
        "invalid approve: expected {{\"request_id\": \"...\", \"approved\": true|false}} ({0})"
    )]
    InvalidApproval(String),
    #[error("the body must be JSON: send Content-Type: application/json")]
    NotJson,
    #[error(
        "requests from the web origin {0:?} are not allowed (AGENT_ALLOWED_ORIGINS lists the allowed ones)"
    )]
    ForbiddenOrigin(String),
    #[error("this session id belongs to another user: start a new session")]
    OtherUsersSession,
    #[error("not found")]
    NotFound,
    #[error("the agent is temporarily unable to take requests")]
    Unavailable,
    #[error("the agent could not complete this request (request id {0})")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::PromptTooLong(_) | ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ForbiddenOrigin(_) | ApiError::OtherUsersSession => StatusCode::FORBIDDEN,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// With the request id the logs use for it.
    fn with_id(self, request_id: &str) -> Rejected {
        Rejected {
            error: self,
            request_id: request_id.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.with_id(&uuid::Uuid::new_v4().to_string())
            .into_response()
    }
}

/// A refused request: `{"error": "...", "request_id": "..."}`.
#[derive(Debug)]
pub struct Rejected {
    pub error: ApiError,
    pub request_id: String,
}

impl Rejected {
    fn json(&self) -> Value {
        json!({"error": self.error.to_string(), "request_id": self.request_id})
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        (self.error.status(), Json(self.json())).into_response()
    }
}

// ---------------------------------------------------------------- parsing

/// A validated invocation body.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Empty only when `approval` is set.
    pub prompt: String,
    /// `session_id` from the body, if any (the header wins over it).
    pub session_id: Option<String>,
    /// Caller-set budget, already checked against the maximum.
    pub session_budget: Option<Usdc>,
    /// The user's answer to a quote (`approve`), as data.
    pub approval: Option<ApprovalAnswer>,
}

/// Parses an `/invocations` body or a `/ws` message: a prompt and/or an
/// approval (`"approve": {...}`, or a `/ws` message `{"type": "approve", ...}`).
pub fn parse_invocation(body: &[u8], limits: &Limits) -> Result<Invocation, ApiError> {
    if body.len() > limits.max_body_bytes {
        return Err(ApiError::BodyTooLarge(limits.max_body_bytes));
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::InvalidJson);
    };
    let input = obj.get("input").and_then(Value::as_object);
    let field = |name: &str| input.and_then(|i| i.get(name)).or_else(|| obj.get(name));

    let approval = if obj.get("type").and_then(Value::as_str) == Some("approve") {
        let mut m = obj.clone();
        m.remove("type");
        m.remove("session_id");
        Some(parse_approval(Value::Object(m))?)
    } else {
        match field("approve") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_approval(v.clone())?),
        }
    };
    let prompt = match field("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        None | Some(Value::Null) if approval.is_some() => String::new(),
        _ => return Err(ApiError::MissingPrompt),
    };
    if prompt.chars().count() > limits.max_prompt_chars {
        return Err(ApiError::PromptTooLong(limits.max_prompt_chars));
    }
    let session_id = match obj.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_valid_client_id(s) => Some(s.clone()),
        Some(_) => return Err(ApiError::InvalidSessionId),
    };
    let session_budget = match field("session_budget_usdc") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_budget(v, limits.max_session_budget)?),
    };
    Ok(Invocation {
        prompt,
        session_id,
        session_budget,
        approval,
    })
}

fn parse_approval(v: Value) -> Result<ApprovalAnswer, ApiError> {
    let a: ApprovalAnswer =
        serde_json::from_value(v).map_err(|e| ApiError::InvalidApproval(e.to_string()))?;
    if !is_valid_client_id(&a.request_id) {
        return Err(ApiError::InvalidApproval(
            "request_id is not a valid id".into(),
        ));
    }
    Ok(a)
}

/// `Content-Type: application/json` (any parameters, e.g. `charset`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses a browser request from an origin not allowed.
fn check_origin(headers: &HeaderMap, limits: &Limits) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(v) => {
            let origin = v.to_str().unwrap_or("(not text)");
            if limits.origin_allowed(origin) {
                Ok(())
            } else {
                Err(ApiError::ForbiddenOrigin(
                    origin.chars().take(200).collect(),
                ))
            }
        }
    }
}

/// The session is this user's (or new, and now theirs); else refused.
async fn claim(state: &AppState, caller: &Caller, session_id: &str) -> Result<(), ApiError> {
    match state
        .access
        .claim_session(&caller.actor_id, session_id)
        .await
    {
        Ok(Claim::Owned) => Ok(()),
        Ok(Claim::OtherUser) => {
            tracing::warn!(
                requestId = %caller.request_id,
                actor = %caller.actor_id,
                "refused: another user's session id"
            );
            Err(ApiError::OtherUsersSession)
        }
        Err(e) => {
            tracing::error!(requestId = %caller.request_id, error = %e, "session owner check failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Decimal USDC as a string (`"2.50"`) or a JSON number (`2.5`, read from
/// its decimal text, never through a float).
fn parse_budget(v: &Value, max: Usdc) -> Result<Usdc, ApiError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::InvalidBudget(
                "expected decimal USDC like \"2.50\"".into(),
            ));
        }
    };
    let amount: Usdc = text
        .parse()
        .map_err(|e| ApiError::InvalidBudget(format!("{e}")))?;
    if amount > max {
        return Err(ApiError::InvalidBudget(format!(
            "{amount} is above the maximum of {max}"
        )));
    }
    Ok(amount)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| ()),
    }
}

/// Who and which conversation a request belongs to.
#[derive(Debug, Clone)]
struct Caller {
    request_id: String,
    actor_id: String,
    /// From the session header, when present.
    header_session: Option<String>,
}

impl Caller {
    fn from_headers(headers: &HeaderMap, limits: &Limits) -> Result<Caller, Rejected> {
        let request_id = header_str(headers, REQUEST_ID_HEADER)
            .ok()
            .flatten()
            .filter(|s| is_valid_client_id(s))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let header_session = match header_str(headers, SESSION_HEADER) {
            Ok(None) => None,
            Ok(Some(s)) if is_valid_client_id(s) => Some(s.to_owned()),
            _ => return Err(ApiError::InvalidSessionId.with_id(&request_id)),
        };
        let actor_id = match header_str(headers, USER_ID_HEADER) {
            Ok(None) => limits.default_actor_id.clone(),
            Ok(Some(s)) if is_valid_client_id(s) => s.to_owned(),
            _ => return Err(ApiError::InvalidUserId.with_id(&request_id)),
        };
        Ok(Caller {
            request_id,
            actor_id,
            header_session,
        })
    }

    /// Header, else body, else a new id.
    fn session_for(&self, inv: &Invocation) -> String {
        self.header_session
            .clone()
            .or_else(|| inv.session_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}

// ---------------------------------------------------------------- running a turn

/// Starts a turn in its own task. The receiver yields the progress events
/// and then exactly one terminal event (`Complete` or `Error`), then ends:
/// one bounded channel per invocation, which the turn can only send
/// progress into ([`ProgressSender`]) and only this task ends.
fn start_turn(
    state: &AppState,
    caller: &Caller,
    session_id: String,
    inv: Invocation,
) -> mpsc::Receiver<AgentEvent> {
    // Busy from the moment the request is accepted, including the wait for
    // the session lock.
    let busy = state.health.busy();
    let (out_tx, out_rx) = mpsc::channel(EVENT_BUFFER);
    let state = state.clone();
    let request_id = caller.request_id.clone();
    let actor_id = caller.actor_id.clone();
    let span = tracing::info_span!(
        "invoke_agent",
        requestId = %request_id,
        sessionId = %session_id,
        "session.id" = %session_id,
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.agent.name" = AGENT_NAME,
    );
    tokio::spawn(
        async move {
            let _busy = busy;
            let started = Instant::now();
            let _session = state.sessions.lock(&actor_id, &session_id).await;
            tracing::info!(
                prompt_chars = inv.prompt.chars().count(),
                caller_budget = inv.session_budget.map(|b| b.to_string()),
                approval = inv.approval.as_ref().map(|a| a.request_id.as_str()),
                "invocation started"
            );
            let req = TurnRequest {
                session_id: session_id.clone(),
                actor_id,
                prompt: inv.prompt,
                session_budget: inv.session_budget,
                approval: inv.approval,
            };
            // The turn sends its progress into the same channel; a closed
            // receiver (the client left) never stops it. A panic is caught
            // here so the client still gets its terminal event.
            let turn = AssertUnwindSafe(
                state
                    .runner
                    .run_turn(req, ProgressSender::new(out_tx.clone())),
            )
            .catch_unwind()
            .await;
            let terminal = match turn {
                Ok(Ok(output)) => {
                    tracing::info!(
                        elapsed_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        payments = output.payments.len(),
                        images = output.images.len(),
                        "invocation finished"
                    );
                    AgentEvent::Complete { output }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "invocation failed");
                    AgentEvent::Error {
                        message: ApiError::Internal(request_id).to_string(),
                    }
                }
                Err(_) => {
                    tracing::error!("invocation panicked");
                    AgentEvent::Error {
                        message: ApiError::Internal(request_id).to_string(),
                    }
                }
            };
            let _ = out_tx.send(terminal).await;
        }
        .instrument(span),
    );
    out_rx
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

async fn invocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Rejected> {
    let caller = Caller::from_headers(&headers, &state.limits)?;
    let refuse = |e: ApiError| {
        tracing::info!(requestId = %caller.request_id, error = %e, "invocation refused");
        e.with_id(&caller.request_id)
    };
    check_origin(&headers, &state.limits).map_err(refuse)?;
    if !is_json(&headers) {
        return Err(refuse(ApiError::NotJson));
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(refuse(ApiError::BodyTooLarge(state.limits.max_body_bytes)));
        }
        Err(_) => return Err(refuse(ApiError::InvalidJson)),
    };
    let inv = parse_invocation(&body, &state.limits).map_err(refuse)?;
    let session_id = caller.session_for(&inv);
    claim(&state, &caller, &session_id).await.map_err(refuse)?;
    let mut events = start_turn(&state, &caller, session_id, inv);

    if wants_sse(&headers) {
        let stream = ReceiverStream::new(events).map(|event| {
            let data = serde_json::to_string(&event).unwrap_or_else(|_| {
                r#"{"type":"error","message":"event could not be encoded"}"#.into()
            });
            Ok::<_, Infallible>(sse::Event::default().data(data))
        });
        return Ok(Sse::new(stream)
            .keep_alive(sse::KeepAlive::default())
            .into_response());
    }
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::Complete { output } => {
                return Ok(Json(json!({"output": output})).into_response());
            }
            AgentEvent::Error { .. } => {
                return Err(
                    ApiError::Internal(caller.request_id.clone()).with_id(&caller.request_id)
                );
            }
            _ => {}
        }
    }
    Err(ApiError::Internal(caller.request_id.clone()).with_id(&caller.request_id))
}

// ---------------------------------------------------------------- websocket

async fn ws_upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let caller = match Caller::from_headers(&headers, &state.limits) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // Before the upgrade: a foreign page's socket never opens.
    if let Err(e) = check_origin(&headers, &state.limits) {
        tracing::warn!(requestId = %caller.request_id, error = %e, "websocket refused");
        return e.with_id(&caller.request_id).into_response();
    }
    if let Some(session) = &caller.header_session
        && let Err(e) = claim(&state, &caller, session).await
    {
        return e.with_id(&caller.request_id).into_response();
    }
    // Larger messages than this close the socket (code 1009); between the
    // configured limit and this, the client gets an error message instead.
    let hard_limit = state.limits.max_body_bytes.saturating_mul(2);
    ws.max_message_size(hard_limit)
        .on_upgrade(move |socket| ws_session(state, caller, socket))
}

/// One WebSocket connection: prompts are handled in order; a connection
/// without a session header or `session_id` keeps one new session id for
/// all its prompts.
async fn ws_session(state: AppState, caller: Caller, mut socket: WebSocket) {
    let connection_session = uuid::Uuid::new_v4().to_string();
    while let Some(Ok(msg)) = socket.recv().await {
        let body = match msg {
            Message::Text(t) => Bytes::from(t),
            Message::Binary(b) => b,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let caller = Caller {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..caller.clone()
        };
        let refused = |e: ApiError| json!({"type": "error", "message": e.to_string(), "request_id": caller.request_id});
        let inv = match parse_invocation(&body, &state.limits) {
            Ok(inv) => inv,
            Err(e) => {
                if send_json(&mut socket, &refused(e)).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let session_id = caller
            .header_session
            .clone()
            .or_else(|| inv.session_id.clone())
            .unwrap_or_else(|| connection_session.clone());
        if let Err(e) = claim(&state, &caller, &session_id).await {
            if send_json(&mut socket, &refused(e)).await.is_err() {
                break;
            }
            continue;
        }
        let mut events = start_turn(&state, &caller, session_id.clone(), inv);
        let mut gone = false;
        while let Some(event) = events.recv().await {
            let msg = match event {
                AgentEvent::Complete { output } => {
                    json!({"type": "complete", "sessionId": session_id, "response": {"output": output}})
                }
                other => serde_json::to_value(&other).unwrap_or(Value::Null),
            };
            // If the client left, keep draining: the turn runs to its end.
            if !gone && send_json(&mut socket, &msg).await.is_err() {
                gone = true;
            }
        }
        if gone {
            break;
        }
    }
}

async fn send_json(socket: &mut WebSocket, v: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_prompt_chars: 10,
            max_body_bytes: 200,
            max_session_budget: Usdc::from_atomic(5_000_000),
            default_actor_id: "default".into(),
            port: 8080,
            allowed_origins: vec!["https://chat.example.com".into()],
        }
    }

    #[test]
    fn both_body_shapes_are_accepted() {
        let a = parse_invocation(
            br#"{"input":{"prompt":"hi"},"session_id":"s-1"}"#,
            &limits(),
        )
        .unwrap();
        assert_eq!(
            a,
            Invocation {
                prompt: "hi".into(),
                session_id: Some("s-1".into()),
                session_budget: None,
                approval: None,
            }
        );
        let b = parse_invocation(br#"{"prompt":"hi"}"#, &limits()).unwrap();
        assert_eq!(b.prompt, "hi");
        assert_eq!(b.session_id, None);
    }

    #[test]
    fn budgets_are_exact_decimals_within_the_maximum() {
        let l = limits();
        let p = |b: &str| {
            parse_invocation(
                format!(r#"{{"prompt":"x","session_budget_usdc":{b}}}"#).as_bytes(),
                &l,
            )
        };
        assert_eq!(
            p(r#""2.50""#).unwrap().session_budget,
            Some(Usdc::from_atomic(2_500_000))
        );
        assert_eq!(
            p("0.1").unwrap().session_budget,
            Some(Usdc::from_atomic(100_000))
        );
        assert_eq!(p("0").unwrap().session_budget, Some(Usdc::ZERO));
        assert!(matches!(
            p(r#""5.000001""#),
            Err(ApiError::InvalidBudget(_))
        ));
        assert!(matches!(p("-1"), Err(ApiError::InvalidBudget(_))));
        assert!(matches!(p("1e3"), Err(ApiError::InvalidBudget(_))));
        assert!(matches!(
            p(r#""0.0000001""#),
            Err(ApiError::InvalidBudget(_))
        ));
        assert!(matches!(p("true"), Err(ApiError::InvalidBudget(_))));
        let nested =
            parse_invocation(br#"{"input":{"prompt":"x","session_budget_usdc":"3"}}"#, &l).unwrap();
        assert_eq!(nested.session_budget, Some(Usdc::from_atomic(3_000_000)));
    }

    #[test]
    fn bad_bodies_get_the_right_error() {
        let l = limits();
        let cases: &[(&[u8], StatusCode)] = &[
            (b"not json", StatusCode::BAD_REQUEST),
            (b"[1,2]", StatusCode::BAD_REQUEST),
            (b"{}", StatusCode::BAD_REQUEST),
            (br#"{"input":{"prompt":"  "}}"#, StatusCode::BAD_REQUEST),
            (br#"{"input":{"prompt":7}}"#, StatusCode::BAD_REQUEST),
            (
                br#"{"prompt":"12345678901"}"#,
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                br#"{"prompt":"ok","session_id":"../x"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                br#"{"prompt":"ok","session_id":5}"#,
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (body, status) in cases {
            let err = parse_invocation(body, &l).unwrap_err();
            assert_eq!(
                err.status(),
                *status,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let big = format!(r#"{{"prompt":"x","pad":"{}"}}"#, "a".repeat(300));
        assert_eq!(
            parse_invocation(big.as_bytes(), &l).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // Ten characters of multi-byte text are within a ten-character limit.
        assert!(parse_invocation("{\"prompt\":\"éééééééééé\"}".as_bytes(), &l).is_ok());
    }

    #[test]
    fn approvals_are_data_with_or_without_a_prompt() {
        let l = limits();
        let a =
            parse_invocation(br#"{"approve":{"request_id":"img-1","approved":true}}"#, &l).unwrap();
        assert_eq!(a.prompt, "");
        assert_eq!(
            a.approval,
            Some(ApprovalAnswer {
                request_id: "img-1".into(),
                approved: true
            })
        );
        let ws = parse_invocation(
            br#"{"type":"approve","request_id":"img-2","approved":false,"session_id":"s"}"#,
            &l,
        )
        .unwrap();
        assert_eq!(ws.approval.unwrap().request_id, "img-2");
        assert_eq!(ws.session_id.as_deref(), Some("s"));
        let both = parse_invocation(
            br#"{"input":{"prompt":"and a dog","approve":{"request_id":"img-1","approved":true}}}"#,
            &l,
        )
        .unwrap();
        assert_eq!(both.prompt, "and a dog");
        for bad in [
            br#"{"approve":{"request_id":"img-1"}}"#.as_slice(),
            br#"{"approve":{"request_id":"img-1","approved":"yes"}}"#,
            br#"{"approve":{"request_id":"../x","approved":true}}"#,
            br#"{"approve":{"request_id":"a","approved":true,"amount":"9"}}"#,
            br#"{"type":"approve"}"#,
        ] {
            assert!(
                matches!(parse_invocation(bad, &l), Err(ApiError::InvalidApproval(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_the_agents_own_and_configured_origins_are_allowed() {
        let l = limits();
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://LOCALHOST:8080/",
            "https://chat.example.com",
        ] {
            assert!(l.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:9090",
            "http://localhost",
            "null",
            "https://chat.example.com.evil.example",
            "http://chat.example.com",
        ] {
            assert!(!l.origin_allowed(bad), "{bad}");
        }
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, &l).is_ok(), "no Origin: not a browser");
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(
            check_origin(&h, &l).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        let mut h = HeaderMap::new();
        for (ct, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
        ] {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_json(&h), ok, "{ct}");
        }
    }

    #[test]
    fn health_changes_its_timestamp_only_on_transitions() {
        let now = Arc::new(std::sync::atomic::AtomicU64::new(100));
        let clock = now.clone();
        let h = Health::with_clock(move || clock.load(std::sync::atomic::Ordering::SeqCst));
        let set = |t| now.store(t, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(h.status(), (PingStatus::Healthy, 100));
        set(200);
        let a = h.busy();
        assert_eq!(h.status(), (PingStatus::HealthyBusy, 200));
        set(300);
        let b = h.busy(); // already busy: no transition
        drop(a);
        assert_eq!(h.status(), (PingStatus::HealthyBusy, 200));
        set(400);
        drop(b);
        assert_eq!(h.status(), (PingStatus::Healthy, 400));
    }

    #[tokio::test]
    async fn session_locks_serialise_one_session_and_are_cleaned_up() {
        let locks = SessionLocks::default();
        let g1 = locks.lock("a", "s").await;
        // Another session is not blocked.
        let g2 = locks.lock("a", "t").await;
        assert_eq!(locks.len(), 2);
        // The same session waits until the first guard is gone.
        let mut waiter = Box::pin(locks.lock("a", "s"));
        assert!(futures::poll!(&mut waiter).is_pending());
        drop(g1);
        let g3 = waiter.await;
        drop((g2, g3));
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn two_spellings_of_one_stored_session_share_its_lock() {
        use crate::session::ids::storage_id;
        let locks = SessionLocks::default();
        // `user:42.x` is stored under its digest; a client may send that
        // digest itself as a (valid) session id and reach the same store.
        let (spelled, stored) = ("user:42.x", storage_id("user:42.x"));
        assert_ne!(spelled, stored);
        let g1 = locks.lock("a", spelled).await;
        let mut waiter = Box::pin(locks.lock("a", &stored));
        assert!(
            futures::poll!(&mut waiter).is_pending(),
            "a second spelling must wait for the turn of the first"
        );
        assert_eq!(locks.len(), 1);
        drop(g1);
        drop(waiter.await);
        assert_eq!(locks.len(), 0);
    }
}
