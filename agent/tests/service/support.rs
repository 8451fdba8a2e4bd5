//! Shared helpers: serving the app on loopback, and a turn runner whose
//! timing the test controls.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use agent::{
    events::{Output, OutputMessage, ToolStatus},
    server::{self, AppState, RequestLimits},
    turn::TurnRunner,
    turn::{Progress, ProgressSender, TurnError, TurnRequest},
};
use async_trait::async_trait;
use tokio::sync::Notify;
use x402::Usdc;

pub fn limits() -> RequestLimits {
    RequestLimits {
        max_prompt_chars: 100,
        max_body_bytes: 4096,
        max_session_budget: Usdc::from_atomic(10_000_000),
        default_actor_id: "default".into(),
        port: 8080,
        allowed_origins: vec![],
    }
}

/// Serves `app(state)` on 127.0.0.1 and returns its base URL.
pub async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, server::app(state)).await });
    format!("http://{addr}")
}

/// Polls `cond` until it holds or the deadline passes (no sleeps as sync).
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A turn runner for the HTTP contract: echoes the prompt, emits a tool
/// start/end pair, and for prompts starting `wait` blocks until released.
/// Prompts starting `fail` return an error with an internal detail that must
/// not reach the client. It records what it saw.
#[derive(Default)]
pub struct ContractRunner {
    pub gate: Notify,
    pub seen: Mutex<Vec<TurnRequest>>,
    pub active: Mutex<HashMap<String, usize>>,
    pub max_active_per_session: Mutex<usize>,
    pub finished: Mutex<Vec<String>>,
}

#[async_trait]
impl TurnRunner for ContractRunner {
    async fn run_turn(
        &self,
        req: TurnRequest,
        events: ProgressSender,
    ) -> Result<Output, TurnError> {
        let session = req.session_id.clone();
        {
            let mut active = self.active.lock().unwrap();
            let n = active.entry(session.clone()).or_default();
            *n += 1;
            let mut max = self.max_active_per_session.lock().unwrap();
            *max = (*max).max(*n);
        }
        let prompt = req.prompt.clone();
        self.seen
            .lock()
            .unwrap()
            .push(TurnRequest { ..clone_req(&req) });
        let _ = events
            .send(Progress::ToolStart {
                id: "t1".into(),
                name: "check_balance".into(),
                input: serde_json::json!({}),
            })
            .await;
        if prompt.starts_with("wait") {
            self.gate.notified().await;
        }
        let _ = events
            .send(Progress::ToolEnd {
                id: "t1".into(),
                name: "check_balance".into(),
                status: ToolStatus::Success,
                summary: "ok".into(),
            })
            .await;
        let _ = events
            .send(Progress::Text {
                delta: format!("echo: {prompt}"),
            })
            .await;
        *self.active.lock().unwrap().get_mut(&session).unwrap() -= 1;
        self.finished.lock().unwrap().push(prompt.clone());
        if prompt.starts_with("fail") {
            return Err(TurnError::Internal("database password is hunter2".into()));
        }
        Ok(Output {
            message: OutputMessage::assistant(format!("echo: {prompt}")),
            images: [("img-1".to_owned(), "file:///tmp/img-1.png".to_owned())].into(),
            payments: vec![],
            session_id: session,
            timestamp: "2025-01-01T00:00:00Z".into(),
            model: "contract-test".into(),
            usage: Default::default(),
            quotes: vec![],
            refusals: vec![],
        })
    }
}

pub fn clone_req(r: &TurnRequest) -> TurnRequest {
    TurnRequest {
        session_id: r.session_id.clone(),
        actor_id: r.actor_id.clone(),
        prompt: r.prompt.clone(),
        session_budget: r.session_budget,
        approval: r.approval.clone(),
    }
}

/// `data:` payloads of an SSE body, as JSON.
pub fn sse_events(body: &str) -> Vec<serde_json::Value> {
    let mut p = plumbing::sse::SseParser::new();
    let mut events = p.push(body.as_bytes()).unwrap();
    events.extend(p.finish());
    events
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}
