//! The client's chat message (`$default` route body) and its validation.
//!
//! Wire format, sent by the browser over the WebSocket:
//! `{"input": {"prompt": "draw a cat"}, "session_id": "abc-123"}`.
//! `input` may carry more fields; they are forwarded to the agent untouched.
//! Anything else is rejected with a message the client can show as-is.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest prompt accepted, in characters. The agent's model context is the real
/// bound; this only stops a client from making us forward megabytes.
pub const MAX_PROMPT_CHARS: usize = 16_000;
/// Longest client session id accepted.
pub const MAX_SESSION_ID_CHARS: usize = 128;

/// A validated chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// The client's session id, as sent (used in the `complete` event).
    pub session_id: String,
    /// The `input` object, forwarded to the agent as-is.
    pub input: Map<String, Value>,
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
}

impl ChatMessage {
    /// Parses and validates a `$default` route body.
    pub fn parse(body: Option<&str>) -> Result<Self, BadInput> {
        let body = body
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or(BadInput::Empty)?;
        let value: Value = serde_json::from_str(body).map_err(|_| BadInput::NotJson)?;
        let Value::Object(mut obj) = value else {
            return Err(BadInput::NotObject);
        };
        let Some(Value::Object(input)) = obj.remove("input") else {
            return Err(BadInput::MissingInput);
        };
        match input.get("prompt") {
            Some(Value::String(p)) if !p.trim().is_empty() => {
                if p.chars().count() > MAX_PROMPT_CHARS {
                    return Err(BadInput::PromptTooLong);
                }
            }
            _ => return Err(BadInput::MissingPrompt),
        }
        let session_id = match obj.remove("session_id") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(BadInput::MissingSessionId),
        };
        let valid = session_id.chars().count() <= MAX_SESSION_ID_CHARS
            && session_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !valid {
            return Err(BadInput::BadSessionId);
        }
        Ok(Self { session_id, input })
    }

    /// The body sent to the agent's `/invocations`.
    pub fn agent_payload(&self) -> Vec<u8> {
        let body = serde_json::json!({ "input": self.input, "session_id": self.session_id });
        serde_json::to_vec(&body).expect("a JSON value always serializes")
    }

    /// The AgentCore `runtimeSessionId` for this conversation.
    pub fn runtime_session_id(&self) -> String {
        runtime_session_id(&self.session_id)
    }
}

/// Maps a client session id to an AgentCore `runtimeSessionId` (33-256 chars).
///
/// Stable (same client session -> same microVM and memory session), always 69
/// characters, and opaque: the client's id never reaches AgentCore verbatim, so
/// short ids are fine and odd characters cannot break the header.
pub fn runtime_session_id(client_session_id: &str) -> String {
    let digest = Sha256::digest(format!("x402-chat\0{client_session_id}").as_bytes());
    format!("chat-{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_well_formed_message() {
        let m = ChatMessage::parse(Some(
            r#"{"input":{"prompt":"draw a cat","size":512},"session_id":"s-1"}"#,
        ))
        .unwrap();
        assert_eq!(m.session_id, "s-1");
        assert_eq!(m.input["size"], 512);
        let payload: Value = serde_json::from_slice(&m.agent_payload()).unwrap();
        assert_eq!(payload["input"]["prompt"], "draw a cat");
        assert_eq!(payload["session_id"], "s-1");
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
    fn runtime_session_id_is_stable_long_enough_and_distinct() {
        let a = runtime_session_id("a");
        assert_eq!(a, runtime_session_id("a"));
        assert_ne!(a, runtime_session_id("b"));
        assert!((33..=256).contains(&a.len()), "{}", a.len());
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
