//! The Bedrock adapter against a local server speaking Converse JSON and the
//! ConverseStream event stream, through the real SDK client.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use agent::model::{
    ContentBlock, ImageFormat, Message, Model, ModelError, ModelRequest, StopReason,
    bedrock::{self, BedrockModel},
    retry::{Backoff, Retry},
};
use serde_json::json;

use crate::bedrock_server::{BedrockServer, Reply};

const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn fast_backoff() -> Backoff {
    Backoff {
        max_attempts: 4,
        base: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn request() -> ModelRequest {
    ModelRequest {
        system: "be brief".into(),
        messages: vec![Message::user_text(
            "Generate an image of a futuristic city at sunset",
        )],
        tools: tools::toolbox::specs(),
        max_tokens: 512,
    }
}

async fn model(server: &BedrockServer) -> BedrockModel {
    let sdk = server.start().await;
    BedrockModel::new(bedrock::client(&sdk), MODEL)
}

#[tokio::test]
async fn converse_stream_assembles_text_and_a_tool_call_from_split_input() {
    let server = BedrockServer::new([Reply::Stream("tool_use.stream.json")]);
    let m = model(&server).await;
    let deltas = Arc::new(Mutex::new(Vec::<String>::new()));
    let d = deltas.clone();
    let r = m
        .converse(&request(), &move |t: &str| {
            d.lock().unwrap().push(t.to_owned());
        })
        .await
        .unwrap();

    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (1422, 88));
    assert_eq!(
        *deltas.lock().unwrap(),
        ["I'll create", " that image for you."]
    );
    assert_eq!(r.message.text(), "I'll create that image for you.");
    let call = r.message.tool_uses().next().unwrap();
    assert_eq!(call.tool_use_id, "tooluse_Xq3b1a2TQ8mYwZ0v");
    assert_eq!(call.name, "generate_image");
    assert_eq!(
        call.input,
        json!({"prompt": "a futuristic city at sunset", "quality": "standard"})
    );

    // What went over the wire: the Converse request shape.
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path.rsplit('/').next(), Some("converse-stream"));
    assert_eq!(seen[0].model_id, MODEL);
    let body = &seen[0].body;
    assert_eq!(body["system"], json!([{"text": "be brief"}]));
    assert_eq!(body["inferenceConfig"]["maxTokens"], 512);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text": "Generate an image of a futuristic city at sunset"}]}])
    );
    let tools = body["toolConfig"]["tools"].as_array().unwrap();
    let generate = tools
        .iter()
        .find(|t| t["toolSpec"]["name"] == "generate_image")
        .expect("generate_image spec");
    let schema = &generate["toolSpec"]["inputSchema"]["json"];
    assert_eq!(schema["type"], "object");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown arguments are refused"
    );
    assert!(schema["properties"]["prompt"].is_object());
    assert!(schema["properties"].get("pay_to").is_none());
}

#[tokio::test]
async fn converse_json_and_vision_send_the_image_bytes() {
    let server = BedrockServer::new([Reply::Json("vision.converse.json")]);
    let m = model(&server).await;
    let answer = m
        .describe_image(b"\x89PNG fake", ImageFormat::Png, "What is in it?")
        .await
        .unwrap();
    assert!(answer.contains("city skyline"), "{answer}");
    let body = &server.seen()[0].body;
    assert_eq!(server.seen()[0].path.rsplit('/').next(), Some("converse"));
    let content = &body["messages"][0]["content"];
    assert_eq!(content[0]["image"]["format"], "png");
    assert_eq!(content[0]["image"]["source"]["bytes"], "iVBORyBmYWtl");
    assert_eq!(content[1]["text"], "What is in it?");
}

#[tokio::test]
async fn converse_without_streaming_returns_tool_calls() {
    let server = BedrockServer::new([Reply::Json("tool_use.converse.json")]);
    let m = model(&server).await.without_streaming();
    let r = m.converse(&request(), &|_| {}).await.unwrap();
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.message.tool_uses().next().unwrap().name, "check_balance");
    assert_eq!(r.usage.input_tokens, 1400);
}

#[tokio::test]
async fn throttling_before_the_stream_is_retried_with_backoff() {
    let server = BedrockServer::new([
        Reply::Error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        Reply::Error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        Reply::Stream("answer.stream.json"),
    ]);
    let m = Retry::new(model(&server).await, fast_backoff());
    let r = m.converse(&request(), &|_| {}).await.unwrap();
    assert_eq!(
        r.message.text(),
        "Here is your image: a city skyline at dusk."
    );
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn throttling_mid_stream_in_either_spelling_is_retried() {
    let server = BedrockServer::new([
        Reply::Stream("throttled_mid_stream_lower.stream.json"),
        Reply::Stream("throttled_mid_stream_upper.stream.json"),
        Reply::Stream("answer.stream.json"),
    ]);
    let bare = model(&server).await;
    // Without the layer the mid-stream exception surfaces as throttling.
    let err = bare.converse(&request(), &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, ModelError::Throttled(ref m) if m.contains("Too many tokens")),
        "{err:?}"
    );
    let err = bare.converse(&request(), &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, ModelError::Throttled(ref m) if m.contains("Too many requests")),
        "{err:?}"
    );

    let server = BedrockServer::new([
        Reply::Stream("throttled_mid_stream_lower.stream.json"),
        Reply::Stream("throttled_mid_stream_upper.stream.json"),
        Reply::Stream("answer.stream.json"),
    ]);
    let m = Retry::new(model(&server).await, fast_backoff());
    let r = m.converse(&request(), &|_| {}).await.unwrap();
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert_eq!(
        r.message.text(),
        "Here is your image: a city skyline at dusk."
    );
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt_with_the_service_message() {
    let server =
        BedrockServer::new((0..4).map(|_| Reply::Error(429, "ThrottlingException", "slow down")));
    let m = Retry::new(model(&server).await, fast_backoff());
    let err = m.converse(&request(), &|_| {}).await.unwrap_err();
    assert!(
        matches!(err, ModelError::Throttled(ref m) if m == "slow down"),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn context_overflow_and_other_errors_are_not_retried() {
    let server = BedrockServer::new([
        Reply::Error(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        ),
        Reply::Error(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
    ]);
    let m = Retry::new(model(&server).await, fast_backoff());
    let err = m.converse(&request(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, ModelError::ContextOverflow(_)), "{err:?}");
    let err = m.converse(&request(), &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("You don't have access"), "{err}");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_max_tokens_stop_keeps_the_cut_off_tool_input_unparsed() {
    let server = BedrockServer::new([Reply::Stream("max_tokens.stream.json")]);
    let r = model(&server)
        .await
        .converse(&request(), &|_| {})
        .await
        .unwrap();
    assert_eq!(r.stop_reason, StopReason::MaxTokens);
    assert!(
        matches!(&r.message.content[1], ContentBlock::ToolUse(u) if u.input == json!("{\"prompt\": \"a ca"))
    );
}
