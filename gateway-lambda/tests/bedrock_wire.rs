//! The Bedrock generator through the real `aws-sdk-bedrockruntime` client
//! against a local server that speaks the Bedrock runtime wire format:
//! `InvokeModel` (Nova Canvas), `Converse` (Nova 2 Lite), `CountTokens`, and
//! error responses (`x-amzn-ErrorType`).

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use gateway_lambda::{
    aws::bedrock::BedrockGenerator,
    generate::{GenerationError, Generator, ImageJob},
};
use serde_json::{Value, json};

#[derive(Default)]
struct Bedrock {
    /// (path, body) of every request.
    seen: Mutex<Vec<(String, Value)>>,
    /// The next answer: status, error type, body.
    next: Mutex<Option<(u16, &'static str, Value)>>,
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot-really-but-bytes";

fn answer(s: &Bedrock, default: Value) -> Response {
    match s.next.lock().unwrap().take() {
        Some((status, kind, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [("x-amzn-ErrorType", kind)],
            Json(body),
        )
            .into_response(),
        None => Json(default).into_response(),
    }
}

async fn invoke(
    State(s): State<Arc<Bedrock>>,
    Path(model): Path<String>,
    body: Json<Value>,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((format!("invoke {model}"), body.0));
    answer(
        &s,
        json!({"images": [base64::engine::general_purpose::STANDARD.encode(PNG)], "error": null}),
    )
}

async fn converse(
    State(s): State<Arc<Bedrock>>,
    Path(model): Path<String>,
    body: Json<Value>,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((format!("converse {model}"), body.0));
    answer(
        &s,
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "x402 is "}, {"text": "HTTP 402 for payments."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 9, "outputTokens": 7, "totalTokens": 16},
            "metrics": {"latencyMs": 3}
        }),
    )
}

async fn count(
    State(s): State<Arc<Bedrock>>,
    Path(model): Path<String>,
    body: Json<Value>,
) -> Response {
    s.seen
        .lock()
        .unwrap()
        .push((format!("count {model}"), body.0));
    answer(&s, json!({"inputTokens": 12}))
}

async fn standin() -> (Arc<Bedrock>, BedrockGenerator) {
    let state = Arc::new(Bedrock::default());
    let router = Router::new()
        .route("/model/{model}/invoke", post(invoke))
        .route("/model/{model}/converse", post(converse))
        .route("/model/{model}/count-tokens", post(count))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(url)
        // One attempt: the error mapping is under test, not the SDK's retries.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let generator = BedrockGenerator::new(
        aws_sdk_bedrockruntime::Client::from_conf(conf),
        "amazon.nova-canvas-v1:0".into(),
        "us.amazon.nova-2-lite-v1:0".into(),
    );
    (state, generator)
}

fn job() -> ImageJob {
    ImageJob {
        prompt: "a futuristic city at sunset".into(),
        width: 1024,
        height: 1024,
        premium: true,
        seed: 42,
    }
}

#[tokio::test]
async fn nova_canvas_gets_a_text_image_task_and_returns_the_png() {
    let (s, g) = standin().await;
    let img = g.image(&job()).await.unwrap();
    assert_eq!(img.png, PNG);
    assert_eq!((img.width, img.height, img.seed), (1024, 1024, 42));
    let (path, body) = s.seen.lock().unwrap()[0].clone();
    assert_eq!(path, "invoke amazon.nova-canvas-v1:0");
    assert_eq!(body["taskType"], "TEXT_IMAGE");
    assert_eq!(
        body["textToImageParams"]["text"],
        "a futuristic city at sunset"
    );
    let cfg = &body["imageGenerationConfig"];
    assert_eq!(cfg["numberOfImages"], 1);
    assert_eq!(cfg["width"], 1024);
    assert_eq!(cfg["quality"], "premium");
    assert_eq!(cfg["seed"], 42);
}

#[tokio::test]
async fn bedrock_errors_map_to_refused_unavailable_and_timeout() {
    let (s, g) = standin().await;
    let cases = [
        (
            400,
            "ValidationException",
            "content filters blocked the request",
            "refused",
        ),
        (
            429,
            "ThrottlingException",
            "Too many requests",
            "unavailable",
        ),
        (500, "InternalServerException", "boom", "unavailable"),
        (408, "ModelTimeoutException", "slow", "timeout"),
    ];
    for (status, kind, message, expect) in cases {
        *s.next.lock().unwrap() = Some((status, kind, json!({"message": message})));
        let e = g.image(&job()).await.unwrap_err();
        let got = match &e {
            GenerationError::Refused(m) => {
                assert!(m.contains(message), "{m}");
                "refused"
            }
            GenerationError::Unavailable(_) => "unavailable",
            GenerationError::Timeout => "timeout",
            _ => "other",
        };
        assert_eq!(got, expect, "{kind}: {e}");
    }
    // Nova Canvas reporting an error in a 200 body is a refusal too.
    *s.next.lock().unwrap() = Some((200, "", json!({"images": [], "error": "blocked by filter"})));
    assert!(matches!(
        g.image(&job()).await,
        Err(GenerationError::Refused(_))
    ));
}

#[tokio::test]
async fn nova_lite_text_and_token_counts() {
    let (s, g) = standin().await;
    let text = g.text("Explain x402").await.unwrap();
    assert_eq!(text, "x402 is HTTP 402 for payments.");
    assert_eq!(g.count_input_tokens("Explain x402").await.unwrap(), 12);
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "converse us.amazon.nova-2-lite-v1:0");
    assert_eq!(
        seen[0].1["messages"][0]["content"][0]["text"],
        "Explain x402"
    );
    assert_eq!(
        seen[0].1["inferenceConfig"]["maxTokens"], 4096,
        "the priced output cap"
    );
    // CountTokens takes the foundation model, not the inference profile.
    assert_eq!(seen[1].0, "count amazon.nova-2-lite-v1:0");
    assert_eq!(
        seen[1].1["input"]["converse"]["messages"][0]["content"][0]["text"],
        "Explain x402"
    );

    // A model without CountTokens: the conservative estimate (chars / 3, up).
    *s.next.lock().unwrap() = Some((
        400,
        "ValidationException",
        json!({"message": "not supported"}),
    ));
    assert_eq!(g.count_input_tokens("0123456789").await.unwrap(), 4);
}

#[tokio::test]
async fn nova_lite_is_called_with_the_output_tokens_priced() {
    let (s, g) = standin().await;
    let priced = gateway_lambda::pricing::text_output_estimate(40);
    g.text_within("Explain x402", priced).await.unwrap();
    // Never above the cap, whatever the caller asks.
    g.text_within("Explain x402", 1_000_000).await.unwrap();
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen[0].1["inferenceConfig"]["maxTokens"], priced);
    assert_eq!(
        seen[1].1["inferenceConfig"]["maxTokens"],
        gateway_lambda::pricing::TEXT_MAX_OUTPUT_TOKENS
    );
}
