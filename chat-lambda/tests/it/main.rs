//! End-to-end tests of the chat Lambda handler through the real AWS SDK clients:
//! DynamoDB is moto, InvokeAgentRuntime and the API Gateway Management API are a
//! local axum server speaking their wire formats (`fake_aws`). Authorizer
//! contexts are the ones chat-authorizer returns for a verified user.

mod fake_aws;
mod moto;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use chat_lambda::callback::ApiGatewaySink;
use chat_lambda::connections::{
    CONNECTION_TTL_SECONDS, DynamoConnections, KEY_ATTRIBUTE, TTL_ATTRIBUTE, USER_ATTRIBUTE,
};
use chat_lambda::handler::Caller;
use chat_lambda::outbound::{API_GATEWAY_FRAME_LIMIT, MAX_MESSAGE_BYTES};
use chat_lambda::runtime::AgentCoreRuntime;
use chat_lambda::{Handler, Outcome};
use fake_aws::{AgentScript, FakeAws, Step};
use serde_json::json;

const RUNTIME_ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-AbC123";
/// The signed-in user of most tests (a Cognito `sub`).
const USER: &str = "8c3f0a52-user-a";

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("test", "test", None, None, "tests"),
            ),
        )
        .build()
}

/// A handler whose agent and client sink are `fake`, and whose table is `table`
/// on `dynamo_endpoint` (unused by tests that never connect).
fn handler(fake: &FakeAws, dynamo_endpoint: &str, table: &str) -> Handler {
    let aws = sdk_config(&fake.url());
    Handler::new(
        Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&sdk_config(dynamo_endpoint)),
            table,
        )),
        Arc::new(ApiGatewaySink::new(aws.clone())),
        Arc::new(AgentCoreRuntime::new(
            aws_sdk_bedrockagentcore::Client::new(&aws),
            RUNTIME_ARN,
            Some("DEFAULT".to_owned()),
        )),
        Some(fake.callback_url()),
    )
}

/// The `requestContext.authorizer` API Gateway passes on for a connection
/// chat-authorizer allowed: its real response's context, plus `principalId`.
fn authorizer_context(user: &str) -> serde_json::Value {
    let allowed = chat_authorizer::AuthorizerResponse::allow(
        &chat_authorizer::token::User {
            sub: user.to_owned(),
            token_use: chat_authorizer::token::TokenUse::Id,
        },
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect",
    );
    let mut ctx = serde_json::to_value(allowed.context.unwrap()).unwrap();
    ctx["principalId"] = json!(allowed.principal_id);
    ctx
}

/// An API Gateway WebSocket proxy event as Lambda receives it; `user` is the
/// authorizer's verified user, if API Gateway passes one.
fn ws_event(
    route: &str,
    connection_id: &str,
    user: Option<&str>,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let mut event = json!({
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "messageDirection": "IN",
            "connectionId": connection_id,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "prod",
            "apiId": "abc123",
            "requestId": "req-1",
            "connectedAt": 1_700_000_000_000_i64,
            "requestTimeEpoch": 1_700_000_000_500_i64
        },
        "body": body,
        "isBase64Encoded": false
    });
    if let Some(user) = user {
        event["requestContext"]["authorizer"] = authorizer_context(user);
    }
    serde_json::from_value(event).expect("valid websocket event")
}

fn chat(prompt: &str, session: &str) -> String {
    json!({"input": {"prompt": prompt}, "session_id": session}).to_string()
}

/// Sends a message as [`USER`] on `conn`.
async fn send_message(h: &Handler, fake: &FakeAws, conn: &str, body: &str) -> Outcome {
    send_as(h, fake, USER, conn, body).await
}

async fn send_as(h: &Handler, fake: &FakeAws, user: &str, conn: &str, body: &str) -> Outcome {
    let caller = Caller {
        connection_id: conn,
        request_id: "req-1",
        user_id: Some(user),
    };
    h.on_message(&fake.callback_url(), &caller, Some(body))
        .await
}

#[tokio::test]
async fn connect_and_disconnect_track_the_connection_with_a_ttl() {
    let moto = moto::Moto::start().await;
    let table = moto.create_connections_table().await;
    let fake = FakeAws::start(AgentScript::default()).await;
    let h = handler(&fake, &moto.endpoint, &table);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&moto.endpoint));
    let key = aws_sdk_dynamodb::types::AttributeValue::S("conn-A=".to_owned());

    let resp = h
        .handle(ws_event("$connect", "conn-A=", Some(USER), None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(KEY_ATTRIBUTE, key.clone())
        .send()
        .await
        .unwrap()
        .item
        .expect("connection stored");
    let expires: i64 = item[TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    let connected: i64 = item["connectedAt"].as_n().unwrap().parse().unwrap();
    assert_eq!(expires - connected, CONNECTION_TTL_SECONDS);
    assert_eq!(
        item[USER_ATTRIBUTE].as_s().unwrap(),
        USER,
        "the verified user is recorded"
    );

    let resp = h
        .handle(ws_event("$disconnect", "conn-A=", None, None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(KEY_ATTRIBUTE, key)
        .send()
        .await
        .unwrap()
        .item;
    assert!(item.is_none(), "connection deleted on $disconnect");

    // A table that does not exist refuses the connection instead of pretending.
    let broken = handler(&fake, &moto.endpoint, "no-such-table");
    let resp = broken
        .handle(ws_event("$connect", "conn-B", Some(USER), None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 500);

    // No authorizer context (an API deployed without the authorizer): refused,
    // nothing recorded.
    let resp = h
        .handle(ws_event("$connect", "conn-C", None, None))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 403);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key(
            KEY_ATTRIBUTE,
            aws_sdk_dynamodb::types::AttributeValue::S("conn-C".to_owned()),
        )
        .send()
        .await
        .unwrap()
        .item;
    assert!(item.is_none());
}

#[tokio::test]
async fn streamed_conversation_is_relayed_in_order_as_it_arrives() {
    let events = vec![
        json!({"type": "text", "delta": "Let me "}),
        json!({"type": "text", "delta": "draw that."}),
        json!({"type": "tool_start", "tool": "generate_image", "id": "t1"}),
        json!({"type": "payment", "amount": "10000", "asset": "USDC", "tx": "0xabc"}),
        json!({"type": "image", "url": "https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=1"}),
        json!({"type": "tool_end", "tool": "generate_image", "id": "t1"}),
    ];
    let mut steps: Vec<Step> = events
        .iter()
        // Each event waits until the client holds everything before it: the
        // relay must post as events arrive, not after the stream ends.
        .map(|e| Step::EventAfterClientHas(e.clone()))
        .collect();
    steps.push(Step::Raw(": keep-alive\n\n".to_owned()));
    steps.push(Step::Event(
        json!({"type": "complete", "output": {"text": "Here is your cat."}}),
    ));
    let fake = FakeAws::start(AgentScript::sse(steps)).await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");

    let outcome = send_message(&h, &fake, "conn-1", &chat("draw a cat", "session-1")).await;
    assert_eq!(outcome, Outcome::Completed);

    let mut want = vec![json!({"type": "processing"})];
    want.extend(events);
    want.push(json!({"type": "complete", "sessionId": "session-1",
                     "response": {"output": {"text": "Here is your cat."}}}));
    assert_eq!(fake.received("conn-1"), want);

    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.arn, RUNTIME_ARN);
    assert_eq!(call.qualifier.as_deref(), Some("DEFAULT"));
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(call.accept.as_deref(), Some("text/event-stream"));
    assert_eq!(
        call.session_id.as_deref(),
        Some(chat_lambda::message::runtime_session_id(USER, "session-1").as_str())
    );
    assert_eq!(call.user_id.as_deref(), Some(USER));
    assert_eq!(call.body, json!({"input": {"prompt": "draw a cat"}}));
}

#[tokio::test]
async fn an_agent_error_event_ends_the_turn() {
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(json!({"type": "text", "delta": "Paying..."})),
        Step::Event(json!({"type": "error", "message": "session budget exceeded"})),
        Step::Event(json!({"type": "text", "delta": "never relayed"})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let outcome = send_message(&h, &fake, "conn-1", &chat("draw", "s")).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        fake.received("conn-1"),
        vec![
            json!({"type": "processing"}),
            json!({"type": "text", "delta": "Paying..."}),
            json!({"type": "error", "message": "session budget exceeded (request id req-1)",
                   "requestId": "req-1"}),
        ]
    );
}

/// No error text a client gets names an ARN or an account id.
fn assert_no_aws_internals(message: &serde_json::Value) {
    let text = message.to_string();
    assert!(!text.contains("arn:"), "{text}");
    assert!(!text.contains("123456789012"), "{text}");
    assert!(!text.contains("ChatRole"), "{text}");
}

#[tokio::test]
async fn errors_say_what_happened_with_a_request_id_and_no_aws_internals() {
    // What AgentCore really answers when the chat Lambda's role lacks access.
    let denied = "User: arn:aws:sts::123456789012:assumed-role/X402AgentChat-ChatRole/chat \
                  is not authorized to perform: bedrock-agentcore:InvokeAgentRuntime on resource: \
                  arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent-AbC123";
    let cases = [
        (
            403,
            "AccessDeniedException",
            denied,
            "the chat service could not invoke the agent",
        ),
        (
            429,
            "ThrottlingException",
            "Rate exceeded for account 123456789012",
            "the agent is busy; try again in a moment",
        ),
        (
            424,
            "RuntimeClientError",
            "container returned 500",
            "the agent failed while answering",
        ),
    ];
    for (status, error_type, message, want) in cases {
        let fake = FakeAws::start(AgentScript::Fail {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
        })
        .await;
        let h = handler(&fake, "http://127.0.0.1:9", "unused");
        let resp = h
            .handle(ws_event(
                "$default",
                "c",
                Some(USER),
                Some(&chat("hi", "s")),
            ))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 200);
        let got = fake.received("c");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[1],
            json!({"type": "error", "message": format!("{want} (request id req-1)"),
                   "requestId": "req-1"}),
            "{error_type}"
        );
        assert_no_aws_internals(&got[1]);
        // (The SDK retries throttling itself, so it may have asked more than once.)
        assert!(!fake.invocations().is_empty(), "the agent was called");
    }

    // The agent itself reports an error naming AWS internals mid-stream.
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(json!({
        "type": "error",
        "message": format!("S3 PutObject denied: {denied}")
    }))]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let last = fake.received("c").pop().unwrap();
    assert_eq!(last["message"], "the agent failed (request id req-1)");
    assert_no_aws_internals(&last);

    // The agent is unreachable: the SDK's error names the endpoint and ARN.
    let fake = FakeAws::start(AgentScript::default()).await;
    let aws = sdk_config(&fake.url());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let h = Handler::new(
        Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&aws),
            "t",
        )),
        Arc::new(ApiGatewaySink::new(aws.clone())),
        Arc::new(AgentCoreRuntime::new(
            aws_sdk_bedrockagentcore::Client::new(&sdk_config(&dead)),
            RUNTIME_ARN,
            None,
        )),
        Some(fake.callback_url()),
    );
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let last = fake.received("c").pop().unwrap();
    assert_eq!(
        last["message"],
        "the agent could not be reached (request id req-1)"
    );
    assert_no_aws_internals(&last);
}

#[tokio::test]
async fn a_stream_without_a_result_ends_with_an_error() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "text", "delta": "hm"}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("hi", "s")).await,
        Outcome::Failed
    );
    let got = fake.received("c");
    assert_eq!(
        got.last().unwrap()["message"],
        "the agent's stream ended without a result (request id req-1)"
    );
}

#[tokio::test]
async fn a_gone_connection_ends_relaying_quietly() {
    let steps = (0..20)
        .map(|i| Step::Event(json!({"type": "text", "delta": format!("{i} ")})))
        .collect();
    let fake = FakeAws::start(AgentScript::sse(steps)).await;
    // The browser closes after it has seen `processing` and two deltas.
    fake.gone_after("conn-g", 3);
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let resp = h
        .handle(ws_event(
            "$default",
            "conn-g",
            Some(USER),
            Some(&chat("hi", "s")),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    assert_eq!(fake.received("conn-g").len(), 3);
    // Exactly one post was refused with 410; nothing was tried after it.
    assert_eq!(fake.posts_refused("conn-g"), 1);
    assert_eq!(
        send_message(&h, &fake, "conn-g", &chat("again", "s")).await,
        Outcome::Gone
    );
    assert_eq!(
        fake.posts_refused("conn-g"),
        2,
        "a gone client stops the turn at `processing`"
    );
}

#[tokio::test]
async fn an_oversized_image_event_travels_as_its_presigned_url() {
    let base64 = "iVBORw0KGgo".repeat(30_000); // ~330 KB of "PNG"
    let image = json!({
        "type": "image",
        "url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
        "base64": base64,
        "mime": "image/png",
    });
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(image),
        Step::Event(json!({"type": "complete", "output": {
            "text": "done",
            "images": [{"url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
                        "data": format!("data:image/png;base64,{base64}")}]
        }})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("draw", "s")).await,
        Outcome::Completed
    );
    // The fake refuses any post over the real 128 KiB limit (413), so arriving
    // at all proves the size; check the content survived.
    let got = fake.received("c");
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1],
        json!({"type": "image", "url": "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc",
               "mime": "image/png", "inlineDataOmitted": true})
    );
    let img = &got[2]["response"]["output"]["images"][0];
    assert_eq!(
        img["url"],
        "https://images.s3.amazonaws.com/s/1.png?X-Amz-Signature=abc"
    );
    assert_eq!(img["inlineDataOmitted"], true);
    assert!(
        fake.largest_post() <= MAX_MESSAGE_BYTES && MAX_MESSAGE_BYTES < API_GATEWAY_FRAME_LIMIT
    );
}

#[tokio::test]
async fn an_oversized_text_event_is_replaced_by_a_notice() {
    let fake = FakeAws::start(AgentScript::sse(vec![
        Step::Event(json!({"type": "text", "delta": "lorem ipsum ".repeat(20_000)})),
        Step::Event(json!({"type": "complete", "output": {"text": "ok"}})),
    ]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    assert_eq!(
        send_message(&h, &fake, "c", &chat("write", "s")).await,
        Outcome::Completed
    );
    let got = fake.received("c");
    assert_eq!(got[1]["type"], "notice");
    assert_eq!(got[1]["originalType"], "text");
    assert_eq!(got[2]["type"], "complete");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_never_reaches_the_agent() {
    let fake = FakeAws::start(AgentScript::sse(vec![])).await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let cases = [
        ("not json", "message is not valid JSON"),
        (r#"{"session_id":"s"}"#, "`input` must be an object"),
        (
            r#"{"input":{"prompt":""},"session_id":"s"}"#,
            "`input.prompt` must be a non-empty string",
        ),
        (
            r#"{"input":{"prompt":"hi"}}"#,
            "`session_id` must be a non-empty string",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let conn = format!("bad-{i}");
        let resp = h
            .handle(ws_event("$default", &conn, Some(USER), Some(body)))
            .await
            .unwrap();
        assert_eq!(resp.status_code, 200);
        let got = fake.received(&conn);
        assert_eq!(got.len(), 1, "{body}");
        assert_eq!(got[0]["type"], "error");
        assert!(
            got[0]["message"].as_str().unwrap().starts_with(want),
            "{body}: {}",
            got[0]
        );
    }
    assert!(fake.invocations().is_empty());
}

#[tokio::test]
async fn the_callback_endpoint_defaults_to_the_request_domain_and_stage() {
    // No override: the handler must target https://{domain}/{stage}. That host
    // is not reachable from here, so record what the sink is asked for.
    let fake = FakeAws::start(AgentScript::sse(vec![])).await;
    let aws = sdk_config(&fake.url());
    let sink = Arc::new(RecordingSink::default());
    let h = Handler::new(
        Arc::new(DynamoConnections::new(
            aws_sdk_dynamodb::Client::new(&aws),
            "t",
        )),
        sink.clone(),
        Arc::new(AgentCoreRuntime::new(
            aws_sdk_bedrockagentcore::Client::new(&aws),
            RUNTIME_ARN,
            None,
        )),
        None,
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        h.handle(ws_event("$default", "c", Some(USER), Some("{}"))),
    )
    .await
    .expect("bad input handled quickly")
    .unwrap();
    assert_eq!(
        sink.endpoints.lock().unwrap().as_slice(),
        ["https://abc123.execute-api.us-east-1.amazonaws.com/prod".to_owned()]
    );
}

/// A sink that only records the endpoints it was asked to post to.
#[derive(Debug, Default)]
struct RecordingSink {
    endpoints: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl chat_lambda::callback::ClientSink for RecordingSink {
    async fn post(
        &self,
        endpoint: &str,
        _connection_id: &str,
        _data: Vec<u8>,
    ) -> Result<(), chat_lambda::callback::PostError> {
        self.endpoints.lock().unwrap().push(endpoint.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn the_user_comes_from_the_authorizer_and_a_client_sent_one_is_ignored() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let forged = json!({
        "input": {"prompt": "hi", "user_id": "mallory", "actor_id": "mallory"},
        "session_id": "s", "user_id": "mallory", "runtimeUserId": "mallory",
        "requestContext": {"authorizer": {"userId": "mallory"}}
    })
    .to_string();
    let resp = h
        .handle(ws_event("$default", "c", Some(USER), Some(&forged)))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 200);
    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some(USER));
    assert_eq!(
        calls[0].session_id.as_deref(),
        Some(chat_lambda::message::runtime_session_id(USER, "s").as_str())
    );
    assert!(
        !calls[0].raw_body.contains("mallory"),
        "{}",
        calls[0].raw_body
    );
    assert_eq!(fake.received("c").last().unwrap()["type"], "complete");
}

#[tokio::test]
async fn a_message_without_authorizer_context_uses_the_user_recorded_at_connect() {
    let moto = moto::Moto::start().await;
    let table = moto.create_connections_table().await;
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, &moto.endpoint, &table);
    let connect = h
        .handle(ws_event("$connect", "conn-r", Some("user-b"), None))
        .await
        .unwrap();
    assert_eq!(connect.status_code, 200);
    // The message event carries no authorizer context; the body claims another user.
    let body = json!({"input": {"prompt": "hi"}, "session_id": "s", "user_id": USER}).to_string();
    h.handle(ws_event("$default", "conn-r", None, Some(&body)))
        .await
        .unwrap();
    let calls = fake.invocations();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].user_id.as_deref(), Some("user-b"));

    // A connection nobody recorded (no $connect through the authorizer):
    // refused before the agent is called.
    h.handle(ws_event("$default", "conn-unknown", None, Some(&body)))
        .await
        .unwrap();
    assert_eq!(fake.invocations().len(), 1, "no second invocation");
    let got = fake.received("conn-unknown");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["message"],
        "you are not signed in: reconnect with a fresh token (request id req-1)"
    );
}

#[tokio::test]
async fn a_budget_from_the_client_never_reaches_the_agent() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    let bodies = [
        json!({"input": {"prompt": "draw", "session_budget_usdc": "10"}, "session_id": "s"}),
        json!({"input": {"prompt": "draw"}, "session_id": "s", "session_budget_usdc": 10}),
        json!({"type": "approve", "request_id": "req-9", "approved": true, "session_id": "s",
               "session_budget_usdc": "10", "input": {"session_budget_usdc": "10"}}),
    ];
    for body in &bodies {
        send_message(&h, &fake, "c", &body.to_string()).await;
    }
    let calls = fake.invocations();
    assert_eq!(calls.len(), bodies.len());
    for call in &calls {
        assert!(!call.raw_body.contains("budget"), "{}", call.raw_body);
    }
    assert_eq!(calls[0].body, json!({"input": {"prompt": "draw"}}));
    assert_eq!(calls[1].body, json!({"input": {"prompt": "draw"}}));
    // An approval travels as data, for the agent to match against its quote.
    assert_eq!(
        calls[2].body,
        json!({"approve": {"request_id": "req-9", "approved": true}})
    );
}

#[tokio::test]
async fn two_users_with_the_same_client_session_id_get_different_runtime_sessions() {
    let fake = FakeAws::start(AgentScript::sse(vec![Step::Event(
        json!({"type": "complete", "output": {"text": "ok"}}),
    )]))
    .await;
    let h = handler(&fake, "http://127.0.0.1:9", "unused");
    send_as(&h, &fake, "user-a", "ca", &chat("hi", "shared-session")).await;
    send_as(&h, &fake, "user-b", "cb", &chat("hi", "shared-session")).await;
    send_as(&h, &fake, "user-a", "ca2", &chat("again", "shared-session")).await;
    let calls = fake.invocations();
    let sessions: Vec<_> = calls
        .iter()
        .map(|c| c.session_id.clone().unwrap())
        .collect();
    let users: Vec<_> = calls.iter().map(|c| c.user_id.clone().unwrap()).collect();
    assert_eq!(users, ["user-a", "user-b", "user-a"]);
    assert_ne!(
        sessions[0], sessions[1],
        "another user's session is out of reach"
    );
    assert_eq!(
        sessions[0], sessions[2],
        "a user continues their own session"
    );
    for s in &sessions {
        assert!(!s.contains("shared-session"));
    }
    // Each client sees its own session id in `complete`.
    assert_eq!(
        fake.received("cb").last().unwrap()["sessionId"],
        "shared-session"
    );
}
