//! Route dispatch and the relay loop. All outside systems are injected, so
//! tests drive this with the real SDK clients pointed at local servers.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use futures::StreamExt;
use serde_json::Value;

use crate::callback::{ClientSink, PostError};
use crate::connections::ConnectionStore;
use crate::message::ChatMessage;
use crate::outbound::Outbound;
use crate::runtime::{AgentResponse, AgentRuntime};
use plumbing::sse::SseParser;

/// Largest non-streamed (`application/json`) agent answer we buffer.
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How a `$default` message ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client got a `complete` message.
    Completed,
    /// The client got an `error` message.
    Failed,
    /// The client went away (410); relaying stopped.
    Gone,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    #[error("request has no {0}")]
    MissingContext(&'static str),
}

pub struct Handler {
    store: Arc<dyn ConnectionStore>,
    sink: Arc<dyn ClientSink>,
    agent: Arc<dyn AgentRuntime>,
    /// Overrides `https://{domainName}/{stage}` (custom domains, local tests).
    callback_url: Option<String>,
}

impl Handler {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        sink: Arc<dyn ClientSink>,
        agent: Arc<dyn AgentRuntime>,
        callback_url: Option<String>,
    ) -> Self {
        Self {
            store,
            sink,
            agent,
            callback_url,
        }
    }

    /// Handles one API Gateway WebSocket event. The status code matters only for
    /// `$connect` (non-2xx refuses the connection); messages reach the client
    /// through `PostToConnection`.
    ///
    /// Who is calling comes from the `$connect` authorizer only
    /// (`requestContext.authorizer.userId`, set by chat-authorizer after it
    /// verified the user's Cognito token). `$connect` records it with the
    /// connection; a message uses the authorizer context if API Gateway
    /// passes it along and the recorded user otherwise. Nothing the client
    /// sends can name a user.
    pub async fn handle(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> Result<ApiGatewayProxyResponse, HandlerError> {
        let ctx = &event.request_context;
        let connection_id = ctx
            .connection_id
            .as_deref()
            .ok_or(HandlerError::MissingContext("connectionId"))?;
        let route = ctx.route_key.as_deref().unwrap_or("$default");
        let request_id = ctx
            .request_id
            .clone()
            .unwrap_or_else(|| format!("{connection_id}-{}", now_epoch_seconds()));
        let authorized_user = authorizer_user(&event);
        tracing::info!(
            route,
            connection_id,
            request_id,
            user = authorized_user,
            "websocket event"
        );
        let status = match route {
            "$connect" => match authorized_user {
                // No authorizer ran: the API is misdeployed; refuse.
                None => {
                    tracing::error!("no user in the authorizer context; refusing the connection");
                    403
                }
                Some(user) => match self
                    .store
                    .put(connection_id, user, now_epoch_seconds())
                    .await
                {
                    Ok(()) => 200,
                    Err(e) => {
                        tracing::error!(error = %e, "could not record connection");
                        500
                    }
                },
            },
            "$disconnect" => {
                if let Err(e) = self.store.delete(connection_id).await {
                    tracing::warn!(error = %e, "could not delete connection");
                }
                200
            }
            _ => {
                let endpoint = self.endpoint(&event)?;
                let user = match authorized_user {
                    Some(user) => Some(user.to_owned()),
                    None => self.store.user(connection_id).await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "could not read the connection's user");
                        None
                    }),
                };
                let caller = Caller {
                    connection_id,
                    request_id: &request_id,
                    user_id: user.as_deref(),
                };
                let outcome = self
                    .on_message(&endpoint, &caller, event.body.as_deref())
                    .await;
                tracing::info!(?outcome, "message handled");
                200
            }
        };
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = status;
        Ok(response)
    }

    fn endpoint(&self, event: &ApiGatewayWebsocketProxyRequest) -> Result<String, HandlerError> {
        if let Some(url) = &self.callback_url {
            return Ok(url.clone());
        }
        let ctx = &event.request_context;
        let domain = ctx
            .domain_name
            .as_deref()
            .ok_or(HandlerError::MissingContext("domainName"))?;
        let stage = ctx
            .stage
            .as_deref()
            .ok_or(HandlerError::MissingContext("stage"))?;
        Ok(format!("https://{domain}/{stage}"))
    }

    /// `$default`: validate, call the agent as the caller's user, relay its
    /// events in order.
    pub async fn on_message(
        &self,
        endpoint: &str,
        caller: &Caller<'_>,
        body: Option<&str>,
    ) -> Outcome {
        let client = Client {
            sink: self.sink.as_ref(),
            endpoint,
            connection_id: caller.connection_id,
            request_id: caller.request_id,
        };
        let Some(user_id) = caller.user_id.filter(|u| is_valid_user_id(u)) else {
            tracing::error!(
                user = caller.user_id,
                "message on a connection without a valid user"
            );
            return client
                .finish(&Outbound::error(
                    "you are not signed in: reconnect with a fresh token",
                ))
                .await;
        };
        let message = match ChatMessage::parse(body) {
            Ok(m) => m,
            Err(bad) => return client.finish(&Outbound::error(bad.to_string())).await,
        };
        if client.send(&Outbound::processing()).await == Some(Outcome::Gone) {
            return Outcome::Gone;
        }
        let response = match self
            .agent
            .invoke(
                &message.runtime_session_id(user_id),
                user_id,
                message.agent_payload(),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "InvokeAgentRuntime failed");
                return client.finish(&Outbound::error(e.client_text())).await;
            }
        };
        relay(&client, response, &message.session_id).await
    }
}

/// Who sent a message: the connection, API Gateway's id for this request, and
/// the signed-in user (from the authorizer; `None` if none is known).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub connection_id: &'a str,
    pub request_id: &'a str,
    pub user_id: Option<&'a str>,
}

/// Context key the authorizer puts the user id under (chat-authorizer's
/// `USER_ID_CONTEXT_KEY`).
pub const USER_ID_CONTEXT_KEY: &str = "userId";

/// The user id the `$connect` authorizer verified, if this event carries it.
pub fn authorizer_user(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event
        .request_context
        .authorizer
        .fields
        .get(USER_ID_CONTEXT_KEY)
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
}

/// AgentCore's `runtimeUserId` and Memory `actorId` rules, which a Cognito
/// `sub` (a UUID) always meets: 1-128 characters, starting alphanumeric.
fn is_valid_user_id(user: &str) -> bool {
    user.len() <= 128
        && user.starts_with(|c: char| c.is_ascii_alphanumeric())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

/// One connection's outgoing side, for one request.
struct Client<'a> {
    sink: &'a dyn ClientSink,
    endpoint: &'a str,
    connection_id: &'a str,
    request_id: &'a str,
}

impl Client<'_> {
    /// Posts one message. Returns the outcome if this message ended the turn
    /// (terminal sent, or the client is gone); `None` means keep going.
    async fn send(&self, out: &Outbound) -> Option<Outcome> {
        let out = out.for_client(self.request_id);
        match self
            .sink
            .post(self.endpoint, self.connection_id, out.to_frame())
            .await
        {
            Err(PostError::Gone) => {
                tracing::info!("client disconnected; stop relaying");
                return Some(Outcome::Gone);
            }
            // One lost message (throttling, a blip) should not end the turn.
            Err(e) => tracing::warn!(error = %e, "could not post to client"),
            Ok(()) => {}
        }
        out.terminal.then(|| terminal_outcome(&out))
    }

    /// Posts a terminal message and returns how the turn ended.
    async fn finish(&self, out: &Outbound) -> Outcome {
        debug_assert!(out.terminal);
        self.send(out).await.unwrap_or(Outcome::Failed)
    }
}

fn terminal_outcome(out: &Outbound) -> Outcome {
    if out.message.get("type").and_then(Value::as_str) == Some("complete") {
        Outcome::Completed
    } else {
        Outcome::Failed
    }
}

async fn relay(client: &Client<'_>, response: AgentResponse, session_id: &str) -> Outcome {
    let AgentResponse {
        content_type,
        mut body,
    } = response;
    if !content_type.starts_with("text/event-stream") {
        return relay_json(client, body, session_id).await;
    }
    let mut parser = SseParser::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "agent stream broke");
                return client
                    .finish(&Outbound::error("the connection to the agent broke"))
                    .await;
            }
        };
        let events = match parser.push(&chunk) {
            Ok(events) => events,
            Err(e) => return client.finish(&Outbound::error(e.to_string())).await,
        };
        for data in events {
            if let Some(outcome) = client
                .send(&Outbound::from_agent_event(&data, session_id))
                .await
            {
                return outcome;
            }
        }
    }
    if let Some(data) = parser.finish()
        && let Some(outcome) = client
            .send(&Outbound::from_agent_event(&data, session_id))
            .await
    {
        return outcome;
    }
    client
        .finish(&Outbound::error(
            "the agent's stream ended without a result",
        ))
        .await
}

/// A non-streamed answer: the whole body is the output (or a complete/error event).
async fn relay_json(
    client: &Client<'_>,
    mut body: futures::stream::BoxStream<
        'static,
        Result<bytes::Bytes, crate::runtime::InvokeError>,
    >,
    session_id: &str,
) -> Outcome {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) if buf.len() + c.len() <= MAX_JSON_BODY_BYTES => buf.extend_from_slice(&c),
            Ok(_) => {
                return client
                    .finish(&Outbound::error("the agent's answer is too large"))
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "agent answer broke");
                return client
                    .finish(&Outbound::error("the connection to the agent broke"))
                    .await;
            }
        }
    }
    let out = match serde_json::from_slice::<Value>(&buf) {
        Ok(v) if v.get("type").is_some() || v.get("error").is_some() => {
            Outbound::from_agent_event(&v.to_string(), session_id)
        }
        Ok(v) => Outbound::complete(session_id, v),
        Err(_) => Outbound::complete(
            session_id,
            Value::String(String::from_utf8_lossy(&buf).into_owned()),
        ),
    };
    let out = if out.terminal {
        out
    } else {
        Outbound::complete(session_id, out.message)
    };
    client.finish(&out).await
}

fn now_epoch_seconds() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}
