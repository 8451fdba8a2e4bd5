//! Reading a request: its body, its caller, its origin, its session.

use axum::http::{HeaderMap, header};
use serde_json::Value;
use tools::access::Claim;
use x402::Usdc;

use super::{
    ApiError, AppState, REQUEST_ID_HEADER, Rejected, RequestLimits, SESSION_HEADER, USER_ID_HEADER,
};
use crate::{session::ids::is_valid_client_id, turn::ApprovalAnswer};

/// A validated invocation body.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Empty only when `approval` is set.
    pub prompt: String,
    /// `session_id` from the body, if any (the header wins over it).
    pub session_id: Option<String>,
    /// Caller-set budget, already checked against the maximum.
    pub session_budget: Option<Usdc>,
    /// The user's answer to a quote (`approve`), as data.
    pub approval: Option<ApprovalAnswer>,
}

/// Parses an `/invocations` body or a `/ws` message: a prompt and/or an
/// approval (`"approve": {...}`, or a `/ws` message `{"type": "approve", ...}`).
pub fn parse_invocation(body: &[u8], limits: &RequestLimits) -> Result<Invocation, ApiError> {
    if body.len() > limits.max_body_bytes {
        return Err(ApiError::BodyTooLarge(limits.max_body_bytes));
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::InvalidJson);
    };
    let input = obj.get("input").and_then(Value::as_object);
    let field = |name: &str| input.and_then(|i| i.get(name)).or_else(|| obj.get(name));

    let approval = if obj.get("type").and_then(Value::as_str) == Some("approve") {
        let mut m = obj.clone();
        m.remove("type");
        m.remove("session_id");
        Some(parse_approval(Value::Object(m))?)
    } else {
        match field("approve") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_approval(v.clone())?),
        }
    };
    let prompt = match field("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        None | Some(Value::Null) if approval.is_some() => String::new(),
        _ => return Err(ApiError::MissingPrompt),
    };
    if prompt.chars().count() > limits.max_prompt_chars {
        return Err(ApiError::PromptTooLong(limits.max_prompt_chars));
    }
    let session_id = match obj.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_valid_client_id(s) => Some(s.clone()),
        Some(_) => return Err(ApiError::InvalidSessionId),
    };
    let session_budget = match field("session_budget_usdc") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_budget(v, limits.max_session_budget)?),
    };
    Ok(Invocation {
        prompt,
        session_id,
        session_budget,
        approval,
    })
}

pub(super) fn parse_approval(v: Value) -> Result<ApprovalAnswer, ApiError> {
    let a: ApprovalAnswer =
        serde_json::from_value(v).map_err(|e| ApiError::InvalidApproval(e.to_string()))?;
    if !is_valid_client_id(&a.request_id) {
        return Err(ApiError::InvalidApproval(
            "request_id is not a valid id".into(),
        ));
    }
    Ok(a)
}

/// `Content-Type: application/json` (any parameters, e.g. `charset`).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses a browser request from an origin not allowed.
pub(super) fn check_origin(headers: &HeaderMap, limits: &RequestLimits) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        None => Ok(()),
        Some(v) => {
            let origin = v.to_str().unwrap_or("(not text)");
            if limits.origin_allowed(origin) {
                Ok(())
            } else {
                Err(ApiError::ForbiddenOrigin(
                    origin.chars().take(200).collect(),
                ))
            }
        }
    }
}

/// The session is this user's (or new, and now theirs); else refused.
pub(super) async fn claim(
    state: &AppState,
    caller: &Caller,
    session_id: &str,
) -> Result<(), ApiError> {
    match state
        .access
        .claim_session(&caller.actor_id, session_id)
        .await
    {
        Ok(Claim::Owned) => Ok(()),
        Ok(Claim::OtherUser) => {
            tracing::warn!(
                requestId = %caller.request_id,
                actor = %caller.actor_id,
                "refused: another user's session id"
            );
            Err(ApiError::OtherUsersSession)
        }
        Err(e) => {
            tracing::error!(requestId = %caller.request_id, error = %e, "session owner check failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Decimal USDC as a string (`"2.50"`) or a JSON number (`2.5`, read from
/// its decimal text, never through a float).
pub(super) fn parse_budget(v: &Value, max: Usdc) -> Result<Usdc, ApiError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::InvalidBudget(
                "expected decimal USDC like \"2.50\"".into(),
            ));
        }
    };
    let amount: Usdc = text
        .parse()
        .map_err(|e| ApiError::InvalidBudget(format!("{e}")))?;
    if amount > max {
        return Err(ApiError::InvalidBudget(format!(
            "{amount} is above the maximum of {max}"
        )));
    }
    Ok(amount)
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| ()),
    }
}

/// Who and which conversation a request belongs to.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) request_id: String,
    pub(super) actor_id: String,
    /// From the session header, when present.
    pub(super) header_session: Option<String>,
}

impl Caller {
    pub(super) fn from_headers(
        headers: &HeaderMap,
        limits: &RequestLimits,
    ) -> Result<Caller, Rejected> {
        let request_id = header_str(headers, REQUEST_ID_HEADER)
            .ok()
            .flatten()
            .filter(|s| is_valid_client_id(s))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let header_session = match header_str(headers, SESSION_HEADER) {
            Ok(None) => None,
            Ok(Some(s)) if is_valid_client_id(s) => Some(s.to_owned()),
            _ => return Err(ApiError::InvalidSessionId.with_id(&request_id)),
        };
        let actor_id = match header_str(headers, USER_ID_HEADER) {
            Ok(None) => limits.default_actor_id.clone(),
            Ok(Some(s)) if is_valid_client_id(s) => s.to_owned(),
            _ => return Err(ApiError::InvalidUserId.with_id(&request_id)),
        };
        Ok(Caller {
            request_id,
            actor_id,
            header_session,
        })
    }

    /// Header, else body, else a new id.
    pub(super) fn session_for(&self, inv: &Invocation) -> String {
        self.header_session
            .clone()
            .or_else(|| inv.session_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}
