//! The client's chat message (`$default` route body) and its validation.
//!
//! Wire format, sent by the browser over the WebSocket:
//! - a prompt: `{"input": {"prompt": "draw a cat"}, "session_id": "abc-123"}`,
//!   optionally with `"approve": {"request_id": "...", "approved": true}`
//!   (top level or in `input`);
//! - an answer to a payment question the agent asked (its quote event names
//!   the request): `{"type": "approve", "request_id": "...", "approved": true,
//!   "session_id": "abc-123"}`.
//!
//! The public path forwards only what a signed-in chat user may decide: the
//! prompt and an approval, as data. Everything else the client sends is
//! dropped here, notably `session_budget_usdc` (only a direct, IAM-signed
//! `/invocations` caller may set a budget) and any user or actor id (the user
//! is the one the `$connect` authorizer verified). Bad input is rejected with
//! a message the client can show as-is.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest prompt accepted, in characters. The agent's model context is the real
/// bound; this only stops a client from making us forward megabytes.
pub const MAX_PROMPT_CHARS: usize = 16_000;
/// Longest client session id accepted.
pub const MAX_SESSION_ID_CHARS: usize = 128;
/// Longest payment request id accepted in an approval.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// The user's answer to the agent's question about one quoted payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub request_id: String,
    pub approved: bool,
}

/// A validated chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// The client's session id, as sent (used in the `complete` event).
    pub session_id: String,
    /// The prompt; `None` for an `approve` message.
    pub prompt: Option<String>,
    pub approve: Option<Approval>,
}

/// Why a client message was rejected. `Display` is the text the client sees.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadInput {
    #[error("message body is empty")]
    Empty,
    #[error("message is not valid JSON")]
    NotJson,
    #[error("message must be a JSON object")]
    NotObject,
    #[error("`type` must be \"chat\" (the default) or \"approve\"")]
    UnknownType,
    #[error("`input` must be an object like {{\"prompt\": \"...\"}}")]
    MissingInput,
    #[error("`input.prompt` must be a non-empty string")]
    MissingPrompt,
    #[error("`input.prompt` is longer than {MAX_PROMPT_CHARS} characters")]
    PromptTooLong,
    #[error("`session_id` must be a non-empty string")]
    MissingSessionId,
    #[error(
        "`session_id` must be 1-{MAX_SESSION_ID_CHARS} characters of letters, digits, '-', '_', '.' or ':'"
    )]
    BadSessionId,
    #[error(
        "an approval needs `request_id` (1-{MAX_REQUEST_ID_CHARS} characters of letters, digits, '-', '_', '.' or ':') and `approved` (true or false)"
    )]
    BadApproval,
}

fn is_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.chars().count() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// `{"request_id": "...", "approved": bool}` from the fields of `obj`.
fn approval(obj: &Map<String, Value>) -> Result<Approval, BadInput> {
    match (obj.get("request_id"), obj.get("approved")) {
        (Some(Value::String(id)), Some(Value::Bool(approved)))
            if is_id(id, MAX_REQUEST_ID_CHARS) =>
        {
            Ok(Approval {
                request_id: id.clone(),
                approved: *approved,
            })
        }
        _ => Err(BadInput::BadApproval),
    }
}

impl ChatMessage {
    /// Parses and validates a `$default` route body.
    pub fn parse(body: Option<&str>) -> Result<Self, BadInput> {
        let body = body
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or(BadInput::Empty)?;
        let value: Value = serde_json::from_str(body).map_err(|_| BadInput::NotJson)?;
        let Value::Object(obj) = value else {
            return Err(BadInput::NotObject);
        };
        let session_id = match obj.get("session_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(BadInput::MissingSessionId),
        };
        if !is_id(&session_id, MAX_SESSION_ID_CHARS) {
            return Err(BadInput::BadSessionId);
        }
        match obj.get("type") {
            Some(Value::String(t)) if t == "approve" => {
                return Ok(Self {
                    session_id,
                    prompt: None,
                    approve: Some(approval(&obj)?),
                });
            }
            None => {}
            Some(Value::String(t)) if t == "chat" => {}
            Some(_) => return Err(BadInput::UnknownType),
        }
        let Some(Value::Object(input)) = obj.get("input") else {
            return Err(BadInput::MissingInput);
        };
        let prompt = match input.get("prompt") {
            Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
            _ => return Err(BadInput::MissingPrompt),
        };
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(BadInput::PromptTooLong);
        }
        let approve = match input.get("approve").or_else(|| obj.get("approve")) {
            None | Some(Value::Null) => None,
            Some(Value::Object(a)) => Some(approval(a)?),
            Some(_) => return Err(BadInput::BadApproval),
        };
        Ok(Self {
            session_id,
            prompt: Some(prompt),
            approve,
        })
    }

    /// The body sent to the agent's `/invocations`: the prompt and the
    /// approval, nothing else. No session id: the agent takes the
    /// user-namespaced one from the runtime session header.
    pub fn agent_payload(&self) -> Vec<u8> {
        let mut body = Map::new();
        if let Some(prompt) = &self.prompt {
            body.insert("input".to_owned(), serde_json::json!({ "prompt": prompt }));
        }
        if let Some(approve) = &self.approve {
            body.insert(
                "approve".to_owned(),
                serde_json::to_value(approve).expect("an approval serializes"),
            );
        }
        serde_json::to_vec(&Value::Object(body)).expect("a JSON value always serializes")
    }

    /// The AgentCore `runtimeSessionId` of this conversation of `user_id`.
    pub fn runtime_session_id(&self, user_id: &str) -> String {
        runtime_session_id(user_id, &self.session_id)
    }
}

/// Maps a user's client session id to an AgentCore `runtimeSessionId`
/// (33-256 chars).
///
/// The user id is part of the hash, so one user cannot name, read or continue
/// another user's session even with the same client session id: the client
/// only ever chooses ids inside its own namespace. Stable (same user and
/// client session -> same microVM and memory session), always 69 characters,
/// and opaque: neither id reaches AgentCore verbatim, so odd characters cannot
/// break the header. The NUL separators cannot occur in either id, so no two
/// (user, session) pairs hash the same input.
pub fn runtime_session_id(user_id: &str, client_session_id: &str) -> String {
    let digest = Sha256::digest(format!("x402-chat\0{user_id}\0{client_session_id}").as_bytes());
    format!("chat-{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(m: &ChatMessage) -> Value {
        serde_json::from_slice(&m.agent_payload()).unwrap()
    }

    #[test]
    fn forwards_the_prompt_and_nothing_else() {
        let m = ChatMessage::parse(Some(
            r#"{"input":{"prompt":"draw a cat","size":512,"session_budget_usdc":"10"},
                "session_id":"s-1","session_budget_usdc":10,"user_id":"mallory","actor_id":"x"}"#,
        ))
        .unwrap();
        assert_eq!(m.session_id, "s-1");
        assert_eq!(
            payload(&m),
            serde_json::json!({"input": {"prompt": "draw a cat"}})
        );
    }

    #[test]
    fn approvals_travel_as_data() {
        let m = ChatMessage::parse(Some(
            r#"{"type":"approve","request_id":"req-7","approved":true,"session_id":"s",
                "session_budget_usdc":"9"}"#,
        ))
        .unwrap();
        assert_eq!(m.prompt, None);
        assert_eq!(
            payload(&m),
            serde_json::json!({"approve": {"request_id": "req-7", "approved": true}})
        );
        let m = ChatMessage::parse(Some(
            r#"{"input":{"prompt":"no thanks","approve":{"request_id":"r","approved":false}},"session_id":"s"}"#,
        ))
        .unwrap();
        assert_eq!(
            payload(&m),
            serde_json::json!({"input": {"prompt": "no thanks"},
                               "approve": {"request_id": "r", "approved": false}})
        );
    }

    #[test]
    fn rejects_bad_input_with_a_clear_reason() {
        let cases = [
            (None, BadInput::Empty),
            (Some("  "), BadInput::Empty),
            (Some("hello"), BadInput::NotJson),
            (Some("[1]"), BadInput::NotObject),
            (Some(r#"{"session_id":"a"}"#), BadInput::MissingInput),
            (
                Some(r#"{"input":"x","session_id":"a"}"#),
                BadInput::MissingInput,
            ),
            (
                Some(r#"{"input":{},"session_id":"a"}"#),
                BadInput::MissingPrompt,
            ),
            (
                Some(r#"{"input":{"prompt":" "},"session_id":"a"}"#),
                BadInput::MissingPrompt,
            ),
            (
                Some(r#"{"input":{"prompt":"x"}}"#),
                BadInput::MissingSessionId,
            ),
            (
                Some(r#"{"input":{"prompt":"x"},"session_id":7}"#),
                BadInput::MissingSessionId,
            ),
            (
                Some(r#"{"input":{"prompt":"x"},"session_id":"a b"}"#),
                BadInput::BadSessionId,
            ),
            (
                Some(r#"{"type":"pay","input":{"prompt":"x"},"session_id":"a"}"#),
                BadInput::UnknownType,
            ),
            (
                Some(r#"{"type":"approve","request_id":"r","session_id":"a"}"#),
                BadInput::BadApproval,
            ),
            (
                Some(r#"{"type":"approve","request_id":"r","approved":"yes","session_id":"a"}"#),
                BadInput::BadApproval,
            ),
            (
                Some(r#"{"type":"approve","request_id":"r s","approved":true,"session_id":"a"}"#),
                BadInput::BadApproval,
            ),
            (
                Some(r#"{"input":{"prompt":"x"},"approve":true,"session_id":"a"}"#),
                BadInput::BadApproval,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(ChatMessage::parse(body), Err(want), "{body:?}");
        }
        let long = format!(
            r#"{{"input":{{"prompt":"{}"}},"session_id":"a"}}"#,
            "x".repeat(MAX_PROMPT_CHARS + 1)
        );
        assert_eq!(
            ChatMessage::parse(Some(&long)),
            Err(BadInput::PromptTooLong)
        );
    }

    #[test]
    fn runtime_session_ids_are_stable_long_enough_and_namespaced_by_user() {
        let a = runtime_session_id("alice", "s");
        assert_eq!(a, runtime_session_id("alice", "s"));
        assert_ne!(a, runtime_session_id("alice", "t"));
        assert_ne!(a, runtime_session_id("bob", "s"));
        // No concatenation ambiguity between the two parts.
        assert_ne!(runtime_session_id("ab", "c"), runtime_session_id("a", "bc"));
        assert!((33..=256).contains(&a.len()), "{}", a.len());
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
