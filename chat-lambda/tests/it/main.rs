//! End-to-end tests of the chat Lambda handler through the real AWS SDK clients:
//! DynamoDB is moto, InvokeAgentRuntime and the API Gateway Management API are a
//! local axum server speaking their wire formats (`fake_aws`). Authorizer
//! contexts are the ones chat-authorizer returns for a verified user.
//!
//! This file holds the shared set-up; the tests are grouped by concern in
//! `lifecycle.rs`, `relay.rs`, `errors.rs` and `identity.rs`.

mod errors;
mod fake_aws;
mod identity;
mod lifecycle;
mod moto;
mod relay;

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
