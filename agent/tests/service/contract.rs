//! The AgentCore HTTP contract: /ping, /invocations (JSON and SSE), /ws and
//! every bad-input case, in-process (`oneshot`) and over loopback.

use std::sync::Arc;

use agent::server::{self, AppState, Health, PingStatus};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
use tower::ServiceExt as _;
use x402::Usdc;

use crate::support::{ContractRunner, eventually, limits, serve, sse_events};

fn state() -> (AppState, Arc<ContractRunner>) {
    let runner = Arc::new(ContractRunner::default());
    (AppState::new(runner.clone(), limits()), runner)
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, String) {
    let res = server::app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn post() -> axum::http::request::Builder {
    Request::post("/invocations").header("content-type", "application/json")
}

fn invoke(body: &str) -> Request<Body> {
    post().body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn ping_has_agentcore_shape() {
    let (state, _) = state();
    let (status, body) = call(&state, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "Healthy");
    assert!(v["time_of_last_update"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn ping_is_busy_during_a_slow_invocation_and_never_blocked_by_it() {
    let runner = Arc::new(ContractRunner::default());
    let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000));
    let clock = now.clone();
    let health = Health::with_clock(move || clock.load(std::sync::atomic::Ordering::SeqCst));
    let state = AppState::with_health(runner.clone(), limits(), health);
    let url = serve(state).await;
    let http = reqwest::Client::new();
    let ping = || async {
        let v: Value = http
            .get(format!("{url}/ping"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            v["status"].as_str().unwrap().to_owned(),
            v["time_of_last_update"].as_u64().unwrap(),
        )
    };
    assert_eq!(ping().await, ("Healthy".into(), 1_000));

    now.store(2_000, std::sync::atomic::Ordering::SeqCst);
    let slow = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(format!("{url}/invocations"))
                .json(&json!({"prompt": "wait for me"}))
                .send()
                .await
                .unwrap()
        }
    });
    eventually("the turn to start", || async {
        !runner.seen.lock().unwrap().is_empty()
    })
    .await;
    // Pings answer while the invocation is blocked, and the timestamp
    // stays at the transition even as time passes.
    assert_eq!(ping().await, ("HealthyBusy".into(), 2_000));
    now.store(3_000, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(ping().await, ("HealthyBusy".into(), 2_000));
    }
    assert!(!slow.is_finished());

    now.store(4_000, std::sync::atomic::Ordering::SeqCst);
    runner.gate.notify_one();
    let res = slow.await.unwrap();
    assert_eq!(res.status(), 200);
    eventually("idle again", || async {
        ping().await == ("Healthy".into(), 4_000)
    })
    .await;
}

#[tokio::test]
async fn json_invocation_in_both_shapes_matches_the_samples_clients() {
    let (state, runner) = state();
    let (status, body) = call(
        &state,
        invoke(r#"{"input":{"prompt":"hello"},"session_id":"sess-body"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let out = &v["output"];
    assert_eq!(out["message"]["role"], "assistant");
    assert_eq!(out["message"]["content"][0]["text"], "echo: hello");
    assert_eq!(out["images"]["img-1"], "file:///tmp/img-1.png");
    assert!(out["payments"].as_array().unwrap().is_empty());
    assert_eq!(out["session_id"], "sess-body");
    assert_eq!(out["model"], "contract-test");
    assert!(out["timestamp"].is_string());

    let (status, _) = call(&state, invoke(r#"{"prompt":"short form"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    let seen = runner.seen.lock().unwrap();
    assert_eq!(seen[1].prompt, "short form");
    // No session anywhere: a new one.
    assert!(uuid::Uuid::parse_str(&seen[1].session_id).is_ok());
    assert_eq!(seen[1].actor_id, "default");
    assert_eq!(seen[1].session_budget, None);
}

#[tokio::test]
async fn session_header_wins_and_caller_budget_and_user_reach_the_turn() {
    let (state, runner) = state();
    let req = post()
        .header(
            server::SESSION_HEADER,
            "chat-0123456789abcdef0123456789abcdef",
        )
        .header(server::USER_ID_HEADER, "user-7")
        .body(Body::from(
            r#"{"input":{"prompt":"hi","session_budget_usdc":"2.50"},"session_id":"ignored"}"#,
        ))
        .unwrap();
    let (status, body) = call(&state, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = runner.seen.lock().unwrap();
    assert_eq!(seen[0].session_id, "chat-0123456789abcdef0123456789abcdef");
    assert_eq!(seen[0].actor_id, "user-7");
    assert_eq!(seen[0].session_budget, Some(Usdc::from_atomic(2_500_000)));
}

#[tokio::test]
async fn every_bad_input_gets_a_json_error_with_the_right_status() {
    let (state, runner) = state();
    let long_prompt = format!(r#"{{"prompt":"{}"}}"#, "p".repeat(101));
    let huge_body = format!(r#"{{"prompt":"x","pad":"{}"}}"#, "a".repeat(5000));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (invoke("{not json"), StatusCode::BAD_REQUEST, "Invalid JSON"),
        (invoke(""), StatusCode::BAD_REQUEST, "Invalid JSON"),
        (
            invoke(r#""a string""#),
            StatusCode::BAD_REQUEST,
            "Invalid JSON",
        ),
        (
            invoke(r#"{"input":{}}"#),
            StatusCode::BAD_REQUEST,
            "prompt is required",
        ),
        (
            invoke(r#"{"input":{"prompt":""}}"#),
            StatusCode::BAD_REQUEST,
            "prompt is required",
        ),
        (
            invoke(r#"{"message":"hi"}"#),
            StatusCode::BAD_REQUEST,
            "prompt is required",
        ),
        (
            invoke(&long_prompt),
            StatusCode::PAYLOAD_TOO_LARGE,
            "longer than 100",
        ),
        (
            invoke(&huge_body),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 4096",
        ),
        (
            invoke(r#"{"prompt":"x","session_id":"a/b"}"#),
            StatusCode::BAD_REQUEST,
            "invalid session id",
        ),
        (
            post()
                .header(server::SESSION_HEADER, "bad id with spaces")
                .body(Body::from(r#"{"prompt":"x"}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid session id",
        ),
        (
            invoke(r#"{"prompt":"x","session_budget_usdc":"1000"}"#),
            StatusCode::BAD_REQUEST,
            "above the maximum",
        ),
        (
            invoke(r#"{"prompt":"x","session_budget_usdc":"lots"}"#),
            StatusCode::BAD_REQUEST,
            "session_budget_usdc",
        ),
        // What a web page can send cross-origin without a preflight.
        (
            Request::post("/invocations")
                .header("content-type", "text/plain")
                .body(Body::from(r#"{"prompt":"x"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "must be JSON",
        ),
        (
            post()
                .header("origin", "http://evil.example")
                .body(Body::from(r#"{"prompt":"x"}"#))
                .unwrap(),
            StatusCode::FORBIDDEN,
            "not allowed",
        ),
    ];
    for (req, want_status, want_text) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, body) = call(&state, req).await;
        assert_eq!(status, want_status, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(want_text), "{msg:?} lacks {want_text:?}");
        assert!(v["request_id"].is_string(), "{body}");
    }
    assert!(
        runner.seen.lock().unwrap().is_empty(),
        "a refused request reached the agent"
    );

    // A chunked body (no content-length) over the limit is refused too.
    let url = serve(state).await;
    let chunks = futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1000]))),
    );
    let res = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let v: Value = res.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("larger than"));
}

#[tokio::test]
async fn a_failed_turn_is_a_500_that_leaks_nothing() {
    let (state, _) = state();
    let req = post()
        .header(server::REQUEST_ID_HEADER, "req-42")
        .body(Body::from(r#"{"prompt":"fail please"}"#))
        .unwrap();
    let (status, body) = call(&state, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.contains("hunter2"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("req-42"));
}

#[tokio::test]
async fn sse_streams_progress_then_one_complete_with_the_same_output() {
    let (state, _) = state();
    let req = post()
        .header("accept", "text/event-stream")
        .body(Body::from(
            r#"{"input":{"prompt":"stream"},"session_id":"sse-1"}"#,
        ))
        .unwrap();
    let res = server::app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let events = sse_events(&body);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["tool_start", "tool_end", "text", "complete"],
        "{body}"
    );
    assert_eq!(events[2]["delta"], "echo: stream");
    let out = &events[3]["output"];
    assert_eq!(out["session_id"], "sse-1");
    assert_eq!(out["message"]["content"][0]["text"], "echo: stream");

    // A failing turn ends the stream with exactly one error event.
    let req = post()
        .header("accept", "text/event-stream")
        .body(Body::from(r#"{"prompt":"fail"}"#))
        .unwrap();
    let (status, body) = call(&state, req).await;
    assert_eq!(status, StatusCode::OK);
    let events = sse_events(&body);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error");
    assert!(!body.contains("hunter2"));
    assert_eq!(events.iter().filter(|e| e["type"] == "error").count(), 1);
}

#[tokio::test]
async fn one_session_runs_one_turn_at_a_time_while_others_proceed() {
    let (state, runner) = state();
    let url = serve(state).await;
    let http = reqwest::Client::new();
    let send = |session: &str, prompt: &str| {
        let req = http
            .post(format!("{url}/invocations"))
            .json(&json!({"input": {"prompt": prompt}, "session_id": session}));
        tokio::spawn(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    let first = send("shared", "wait 1");
    eventually("first turn running", || async {
        runner.seen.lock().unwrap().len() == 1
    })
    .await;
    let second = send("shared", "wait 2");
    // Another session is not held up by the blocked one.
    let other = send("other", "quick").await.unwrap();
    assert_eq!(other["output"]["session_id"], "other");
    // The second turn of "shared" has not started: only 2 turns were seen.
    assert_eq!(runner.seen.lock().unwrap().len(), 2);
    assert!(!second.is_finished());

    runner.gate.notify_one();
    let a = first.await.unwrap();
    assert_eq!(a["output"]["message"]["content"][0]["text"], "echo: wait 1");
    eventually("second turn running", || async {
        runner.seen.lock().unwrap().len() == 3
    })
    .await;
    runner.gate.notify_one();
    let b = second.await.unwrap();
    assert_eq!(b["output"]["message"]["content"][0]["text"], "echo: wait 2");
    assert_eq!(*runner.max_active_per_session.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_does_not_cut_the_turn_short() {
    let (state, runner) = state();
    let url = serve(state).await;
    let res = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "wait then finish", "session_id": "leaver"}))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("tool_start"));
    drop(stream); // the client goes away mid-turn
    runner.gate.notify_one();
    eventually("the turn to finish anyway", || async {
        runner
            .finished
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == "wait then finish")
    })
    .await;
}

#[tokio::test]
async fn websocket_round_trip_uses_the_chat_lambda_protocol() {
    let (state, runner) = state();
    let url = serve(state).await;
    let ws_url = url.replace("http://", "ws://") + "/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.into_client_request().unwrap())
        .await
        .unwrap();
    ws.send(tungstenite::Message::text(
        json!({"input": {"prompt": "over ws"}, "session_id": "ws-1"}).to_string(),
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    loop {
        let v = ws_next(&mut ws).await.expect("socket closed early");
        let done = v["type"] == "complete" || v["type"] == "error";
        got.push(v);
        if done {
            break;
        }
    }
    let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["tool_start", "tool_end", "text", "complete"]);
    let complete = got.last().unwrap();
    assert_eq!(complete["sessionId"], "ws-1");
    assert_eq!(
        complete["response"]["output"]["message"]["content"][0]["text"],
        "echo: over ws"
    );
    assert_eq!(complete["response"]["output"]["session_id"], "ws-1");

    // A bad message gets an error and the socket stays usable.
    ws.send(tungstenite::Message::text("{oops")).await.unwrap();
    let err = ws_next(&mut ws).await.unwrap();
    assert_eq!(err["type"], "error");
    assert!(err["message"].as_str().unwrap().contains("Invalid JSON"));
    // Over the body limit (4096 bytes in these tests): an error, socket still open.
    let big = json!({"input": {"prompt": "x"}, "pad": "a".repeat(5000)}).to_string();
    ws.send(tungstenite::Message::text(big)).await.unwrap();
    let err = ws_next(&mut ws).await.unwrap();
    assert_eq!(err["type"], "error");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("larger than 4096"),
        "{err}"
    );
    // A message without a prompt.
    ws.send(tungstenite::Message::text(json!({"input": {}}).to_string()))
        .await
        .unwrap();
    let err = ws_next(&mut ws).await.unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("prompt is required"),
        "{err}"
    );
    ws.send(tungstenite::Message::text(
        json!({"input": {"prompt": "again"}}).to_string(),
    ))
    .await
    .unwrap();
    let mut last = Value::Null;
    while last["type"] != "complete" {
        last = ws_next(&mut ws).await.unwrap();
    }
    assert_eq!(
        last["response"]["output"]["message"]["content"][0]["text"],
        "echo: again"
    );
    assert_eq!(runner.seen.lock().unwrap().len(), 2);
    ws.close(None).await.unwrap();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text message, skipping control frames; `None` at close.
async fn ws_next(ws: &mut Ws) -> Option<Value> {
    while let Some(msg) = ws.next().await {
        match msg.unwrap() {
            tungstenite::Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            tungstenite::Message::Close(_) => return None,
            _ => continue,
        }
    }
    None
}

#[test]
fn ping_status_serialises_as_agentcore_expects() {
    assert_eq!(
        serde_json::to_value(PingStatus::HealthyBusy).unwrap(),
        "HealthyBusy"
    );
}
