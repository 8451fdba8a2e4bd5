//! `GET /ws`: turns over a WebSocket, in the chat Lambda's protocol.

use axum::{
    body::Bytes,
    extract::{
        State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    http::HeaderMap,
    response::{IntoResponse as _, Response},
};
use serde_json::{Value, json};

use super::{
    ApiError, AppState,
    invoke::start_turn,
    request::{Caller, check_origin, claim, parse_invocation},
};
use crate::events::AgentEvent;

pub(super) async fn ws_upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let caller = match Caller::from_headers(&headers, &state.limits) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // Before the upgrade: a foreign page's socket never opens.
    if let Err(e) = check_origin(&headers, &state.limits) {
        tracing::warn!(requestId = %caller.request_id, error = %e, "websocket refused");
        return e.with_id(&caller.request_id).into_response();
    }
    if let Some(session) = &caller.header_session
        && let Err(e) = claim(&state, &caller, session).await
    {
        return e.with_id(&caller.request_id).into_response();
    }
    // Larger messages than this close the socket (code 1009); between the
    // configured limit and this, the client gets an error message instead.
    let hard_limit = state.limits.max_body_bytes.saturating_mul(2);
    ws.max_message_size(hard_limit)
        .on_upgrade(move |socket| ws_session(state, caller, socket))
}

/// One WebSocket connection: prompts are handled in order; a connection
/// without a session header or `session_id` keeps one new session id for
/// all its prompts.
pub(super) async fn ws_session(state: AppState, caller: Caller, mut socket: WebSocket) {
    let connection_session = uuid::Uuid::new_v4().to_string();
    while let Some(Ok(msg)) = socket.recv().await {
        let body = match msg {
            Message::Text(t) => Bytes::from(t),
            Message::Binary(b) => b,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        let caller = Caller {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..caller.clone()
        };
        let refused = |e: ApiError| json!({"type": "error", "message": e.to_string(), "request_id": caller.request_id});
        let inv = match parse_invocation(&body, &state.limits) {
            Ok(inv) => inv,
            Err(e) => {
                if send_json(&mut socket, &refused(e)).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let session_id = caller
            .header_session
            .clone()
            .or_else(|| inv.session_id.clone())
            .unwrap_or_else(|| connection_session.clone());
        if let Err(e) = claim(&state, &caller, &session_id).await {
            if send_json(&mut socket, &refused(e)).await.is_err() {
                break;
            }
            continue;
        }
        let mut events = start_turn(&state, &caller, session_id.clone(), inv);
        let mut gone = false;
        while let Some(event) = events.recv().await {
            let msg = match event {
                AgentEvent::Complete { output } => {
                    json!({"type": "complete", "sessionId": session_id, "response": {"output": output}})
                }
                other => serde_json::to_value(&other).unwrap_or(Value::Null),
            };
            // If the client left, keep draining: the turn runs to its end.
            if !gone && send_json(&mut socket, &msg).await.is_err() {
                gone = true;
            }
        }
        if gone {
            break;
        }
    }
}

pub(super) async fn send_json(socket: &mut WebSocket, v: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(v.to_string().into())).await
}
