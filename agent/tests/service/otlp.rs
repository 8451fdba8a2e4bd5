//! Spans reach an OTLP/HTTP collector: a loopback server that accepts
//! `POST /v1/traces` (protobuf) like the OpenTelemetry Collector does.

use std::sync::{Arc, Mutex};

use agent::{
    config::{LogFormat, TelemetryConfig},
    observability,
};
use axum::{Router, body::Bytes, extract::State, routing::post};
use plumbing::logs::LogBuffer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_http_with_gen_ai_attributes() {
    let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(b): State<Arc<Mutex<Vec<Vec<u8>>>>>, body: Bytes| async move {
                    b.lock().unwrap().push(body.to_vec());
                    "" // an empty ExportTraceServiceResponse
                },
            ),
        )
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cfg = TelemetryConfig {
        otlp_endpoint: Some(endpoint),
        service_name: "agent-otlp-test".into(),
        log_format: LogFormat::Json,
    };
    let (sub, telemetry) = observability::subscriber(&cfg, LogBuffer::default()).unwrap();
    tracing::subscriber::with_default(sub, || {
        let invoke = tracing::info_span!(
            "invoke_agent",
            requestId = "req-otlp",
            sessionId = "sess-otlp",
            "gen_ai.operation.name" = "invoke_agent",
        );
        let _g = invoke.enter();
        let tool = tracing::info_span!(
            "execute_tool",
            "gen_ai.tool.name" = "check_balance",
            "gen_ai.tool.call.id" = "tooluse-1",
        );
        drop(tool.enter());
    });
    // force_flush blocks until the batch is exported.
    tokio::task::spawn_blocking(move || {
        telemetry.flush();
        drop(telemetry);
    })
    .await
    .unwrap();

    let all: Vec<u8> = bodies.lock().unwrap().concat();
    assert!(!all.is_empty(), "nothing exported");
    let text = String::from_utf8_lossy(&all);
    for needle in [
        "invoke_agent",
        "execute_tool",
        "gen_ai.tool.name",
        "check_balance",
        "gen_ai.tool.call.id",
        "tooluse-1",
        "agent-otlp-test",
    ] {
        assert!(text.contains(needle), "{needle} not in the exported spans");
    }
}
