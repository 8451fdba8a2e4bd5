//! A local stand-in for Bedrock Runtime that speaks its wire formats: the
//! Converse JSON API and the ConverseStream event stream
//! (`application/vnd.amazon.eventstream`, framed with `aws-smithy-eventstream`),
//! replaying the fixtures in `tests/fixtures/bedrock/`. The agent reaches it
//! through the real `aws-sdk-bedrockruntime` client with an endpoint override.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{StatusCode, header},
    response::Response,
    routing::post,
};
use serde_json::Value;

/// One scripted answer.
pub enum Reply {
    /// `*.stream.json` fixture served as an event stream.
    Stream(&'static str),
    /// `*.converse.json` fixture served as JSON.
    Json(&'static str),
    /// An HTTP error as Bedrock sends it: status, `x-amzn-ErrorType`, message.
    Error(u16, &'static str, &'static str),
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub model_id: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct BedrockServer {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/bedrock/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Frames a fixture's messages as an event stream body.
fn frame_stream(events: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events.as_array().unwrap() {
        let headers = e["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                Header::new(
                    k.clone(),
                    HeaderValue::String(v.as_str().unwrap().to_owned().into()),
                )
            })
            .collect();
        let payload = serde_json::to_vec(&e["payload"]).unwrap();
        let msg = Message::new_from_parts(headers, payload);
        aws_smithy_eventstream::frame::write_message_to(&msg, &mut out).unwrap();
    }
    out
}

impl BedrockServer {
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        BedrockServer {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            seen: Arc::default(),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Serves on 127.0.0.1 and returns an `SdkConfig` pointing at it, with
    /// static test credentials (requests are SigV4-signed as usual).
    pub async fn start(&self) -> SdkConfig {
        let app = Router::new()
            .route("/model/{model_id}/converse", post(handle))
            .route("/model/{model_id}/converse-stream", post(handle))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .endpoint_url(format!("http://{addr}"))
            .build()
    }
}

async fn handle(
    State(s): State<BedrockServer>,
    Path(model_id): Path<String>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    s.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        model_id,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = s.replies.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Stream(name)) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
            .header("x-amzn-requestid", "8d3c5f0a-test")
            .body(Body::from(frame_stream(&fixture(name))))
            .unwrap(),
        Some(Reply::Json(name)) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(fixture(name).to_string()))
            .unwrap(),
        Some(Reply::Error(status, kind, message)) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "x-amzn-ErrorType",
                format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            )
            .body(Body::from(
                serde_json::json!({ "message": message }).to_string(),
            ))
            .unwrap(),
        None => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from("no scripted reply left"))
            .unwrap(),
    }
}
