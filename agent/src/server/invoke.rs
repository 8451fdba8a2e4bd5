//! `POST /invocations`: one turn, answered as JSON or as an SSE stream.

use std::{convert::Infallible, panic::AssertUnwindSafe, time::Instant};

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response, Sse, sse},
};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument as _;

use super::{
    ApiError, AppState, EVENT_BUFFER, Rejected,
    request::{Caller, Invocation, check_origin, claim, is_json, parse_invocation},
};
use crate::{
    events::AgentEvent,
    observability::AGENT_NAME,
    turn::{ProgressSender, TurnRequest},
};

/// Starts a turn in its own task. The receiver yields the progress events
/// and then exactly one terminal event (`Complete` or `Error`), then ends:
/// one bounded channel per invocation, which the turn can only send
/// progress into ([`ProgressSender`]) and only this task ends.
pub(super) fn start_turn(
    state: &AppState,
    caller: &Caller,
    session_id: String,
    inv: Invocation,
) -> mpsc::Receiver<AgentEvent> {
    // Busy from the moment the request is accepted, including the wait for
    // the session lock.
    let busy = state.health.busy();
    let (out_tx, out_rx) = mpsc::channel(EVENT_BUFFER);
    let state = state.clone();
    let request_id = caller.request_id.clone();
    let actor_id = caller.actor_id.clone();
    let span = tracing::info_span!(
        "invoke_agent",
        requestId = %request_id,
        sessionId = %session_id,
        "session.id" = %session_id,
        "gen_ai.operation.name" = "invoke_agent",
        "gen_ai.agent.name" = AGENT_NAME,
    );
    tokio::spawn(
        async move {
            let _busy = busy;
            let started = Instant::now();
            let _session = state.sessions.lock(&actor_id, &session_id).await;
            tracing::info!(
                prompt_chars = inv.prompt.chars().count(),
                caller_budget = inv.session_budget.map(|b| b.to_string()),
                approval = inv.approval.as_ref().map(|a| a.request_id.as_str()),
                "invocation started"
            );
            let req = TurnRequest {
                session_id: session_id.clone(),
                actor_id,
                prompt: inv.prompt,
                session_budget: inv.session_budget,
                approval: inv.approval,
            };
            // The turn sends its progress into the same channel; a closed
            // receiver (the client left) never stops it. A panic is caught
            // here so the client still gets its terminal event.
            let turn = AssertUnwindSafe(
                state
                    .runner
                    .run_turn(req, ProgressSender::new(out_tx.clone())),
            )
            .catch_unwind()
            .await;
            let terminal = match turn {
                Ok(Ok(output)) => {
                    tracing::info!(
                        elapsed_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        payments = output.payments.len(),
                        images = output.images.len(),
                        "invocation finished"
                    );
                    AgentEvent::Complete { output }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "invocation failed");
                    AgentEvent::Error {
                        message: ApiError::Internal(request_id).to_string(),
                    }
                }
                Err(_) => {
                    tracing::error!("invocation panicked");
                    AgentEvent::Error {
                        message: ApiError::Internal(request_id).to_string(),
                    }
                }
            };
            let _ = out_tx.send(terminal).await;
        }
        .instrument(span),
    );
    out_rx
}

pub(super) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

pub(super) async fn invocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Rejected> {
    let caller = Caller::from_headers(&headers, &state.limits)?;
    let refuse = |e: ApiError| {
        tracing::info!(requestId = %caller.request_id, error = %e, "invocation refused");
        e.with_id(&caller.request_id)
    };
    check_origin(&headers, &state.limits).map_err(refuse)?;
    if !is_json(&headers) {
        return Err(refuse(ApiError::NotJson));
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(refuse(ApiError::BodyTooLarge(state.limits.max_body_bytes)));
        }
        Err(_) => return Err(refuse(ApiError::InvalidJson)),
    };
    let inv = parse_invocation(&body, &state.limits).map_err(refuse)?;
    let session_id = caller.session_for(&inv);
    claim(&state, &caller, &session_id).await.map_err(refuse)?;
    let mut events = start_turn(&state, &caller, session_id, inv);

    if wants_sse(&headers) {
        let stream = ReceiverStream::new(events).map(|event| {
            let data = serde_json::to_string(&event).unwrap_or_else(|_| {
                r#"{"type":"error","message":"event could not be encoded"}"#.into()
            });
            Ok::<_, Infallible>(sse::Event::default().data(data))
        });
        return Ok(Sse::new(stream)
            .keep_alive(sse::KeepAlive::default())
            .into_response());
    }
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::Complete { output } => {
                return Ok(Json(json!({"output": output})).into_response());
            }
            AgentEvent::Error { .. } => {
                return Err(
                    ApiError::Internal(caller.request_id.clone()).with_id(&caller.request_id)
                );
            }
            _ => {}
        }
    }
    Err(ApiError::Internal(caller.request_id.clone()).with_id(&caller.request_id))
}
