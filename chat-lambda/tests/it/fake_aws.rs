//! A local server speaking two AWS wire formats, reached through the real SDKs:
//! - Bedrock AgentCore `InvokeAgentRuntime`: `POST /runtimes/{arn}/invocations`
//!   answering `text/event-stream` (scripted) or a restJson error;
//! - API Gateway Management API `PostToConnection`:
//!   `POST /{stage}/@connections/{id}`, refusing bodies over 128 KiB (413) and
//!   connections marked gone (410 `GoneException`), like the real service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chat_lambda::outbound::API_GATEWAY_FRAME_LIMIT;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// How long a gated step waits for the relay before giving up.
const RELAY_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub enum Step {
    /// `data: {json}\n\n`, immediately.
    Event(Value),
    /// Same, but only once the client has received every earlier event (and
    /// `processing`): proves events are relayed as they arrive.
    EventAfterClientHas(Value),
    /// Raw SSE text (comments, keep-alives).
    Raw(String),
}

#[derive(Debug, Clone)]
pub enum AgentScript {
    Sse(Vec<Step>),
    Fail {
        status: u16,
        error_type: String,
        message: String,
    },
}

impl AgentScript {
    pub fn sse(steps: Vec<Step>) -> Self {
        Self::Sse(steps)
    }
}

impl Default for AgentScript {
    fn default() -> Self {
        Self::Sse(Vec::new())
    }
}

/// One recorded InvokeAgentRuntime call.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub arn: String,
    pub qualifier: Option<String>,
    pub session_id: Option<String>,
    /// `X-Amzn-Bedrock-AgentCore-Runtime-User-Id` (`runtimeUserId`).
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Value,
    pub raw_body: String,
}

#[derive(Default)]
struct Shared {
    script: Mutex<AgentScript>,
    invocations: Mutex<Vec<Invocation>>,
    received: Mutex<HashMap<String, Vec<Value>>>,
    refused: Mutex<HashMap<String, usize>>,
    gone_after: Mutex<HashMap<String, usize>>,
    largest: AtomicUsize,
    posted: Notify,
}

impl Shared {
    fn total_received(&self) -> usize {
        self.received.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Waits until `n` messages were delivered in total.
    async fn wait_for_received(&self, n: usize) -> bool {
        let deadline = tokio::time::Instant::now() + RELAY_DEADLINE;
        loop {
            let notified = self.posted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.total_received() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

pub struct FakeAws {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeAws {
    pub async fn start(script: AgentScript) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/runtimes/{arn}/invocations", post(invoke))
            .route("/{stage}/@connections/{id}", post(post_to_connection))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// Endpoint for the AgentCore client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `WEBSOCKET_CALLBACK_URL` for the management API (stage `prod`).
    pub fn callback_url(&self) -> String {
        format!("http://{}/prod", self.addr)
    }

    /// Messages delivered to `connection_id`, in order.
    pub fn received(&self, connection_id: &str) -> Vec<Value> {
        self.shared
            .received
            .lock()
            .unwrap()
            .get(connection_id)
            .cloned()
            .unwrap_or_default()
    }

    /// After `n` delivered messages, `connection_id` answers 410 Gone.
    pub fn gone_after(&self, connection_id: &str, n: usize) {
        self.shared
            .gone_after
            .lock()
            .unwrap()
            .insert(connection_id.to_owned(), n);
    }

    /// How many posts to `connection_id` were refused with 410.
    pub fn posts_refused(&self, connection_id: &str) -> usize {
        self.shared
            .refused
            .lock()
            .unwrap()
            .get(connection_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.invocations.lock().unwrap().clone()
    }

    /// Size of the largest body accepted by `PostToConnection`.
    pub fn largest_post(&self) -> usize {
        self.shared.largest.load(Ordering::SeqCst)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn aws_error(status: u16, error_type: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", error_type),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(arn): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session_id = header(&headers, "x-amzn-bedrock-agentcore-runtime-session-id");
    shared.invocations.lock().unwrap().push(Invocation {
        arn,
        qualifier: query.get("qualifier").cloned(),
        session_id: session_id.clone(),
        user_id: header(&headers, "x-amzn-bedrock-agentcore-runtime-user-id"),
        content_type: header(&headers, "content-type"),
        accept: header(&headers, "accept"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
    });
    let script = shared.script.lock().unwrap().clone();
    let steps = match script {
        AgentScript::Fail {
            status,
            error_type,
            message,
        } => {
            return aws_error(status, &error_type, &message);
        }
        AgentScript::Sse(steps) => steps,
    };
    // The client has `processing` (1 message) before the agent is called.
    let stream = futures::stream::unfold(
        (shared, steps.into_iter(), 1_usize),
        |(shared, mut steps, mut events_sent)| async move {
            let text = match steps.next()? {
                Step::Raw(raw) => raw,
                Step::Event(v) => {
                    events_sent += 1;
                    format!("data: {v}\n\n")
                }
                Step::EventAfterClientHas(v) => {
                    let marker = if shared.wait_for_received(events_sent).await {
                        v
                    } else {
                        json!({"type": "text", "delta": "FAKE: relay did not deliver in time"})
                    };
                    events_sent += 1;
                    format!("data: {marker}\n\n")
                }
            };
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(text)),
                (shared, steps, events_sent),
            ))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    if let Some(id) = session_id {
        h.insert(
            "x-amzn-bedrock-agentcore-runtime-session-id",
            id.parse().unwrap(),
        );
    }
    response
}

async fn post_to_connection(
    State(shared): State<Arc<Shared>>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if body.len() > API_GATEWAY_FRAME_LIMIT {
        return aws_error(413, "PayloadTooLargeException", "Message too long");
    }
    let limit = shared.gone_after.lock().unwrap().get(&id).copied();
    let delivered = shared.received.lock().unwrap().get(&id).map_or(0, Vec::len);
    if limit.is_some_and(|n| delivered >= n) {
        *shared.refused.lock().unwrap().entry(id).or_default() += 1;
        return aws_error(410, "GoneException", "Gone");
    }
    let value: Value = serde_json::from_slice(&body).expect("the Lambda posts JSON");
    shared.largest.fetch_max(body.len(), Ordering::SeqCst);
    shared
        .received
        .lock()
        .unwrap()
        .entry(id)
        .or_default()
        .push(value);
    shared.posted.notify_waiters();
    StatusCode::OK.into_response()
}
