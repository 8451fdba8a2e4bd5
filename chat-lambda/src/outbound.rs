//! What the browser receives: agent SSE events mapped to client messages, and
//! the rule that keeps every message inside one API Gateway WebSocket frame.
//!
//! Client protocol (one JSON object per WebSocket message):
//! - `{"type":"processing"}` first, as soon as the message is accepted;
//! - every agent event that is a JSON object, forwarded as-is (`text`,
//!   `tool_start`, `tool_end`, `payment`, `image`, ... whatever the agent emits);
//! - exactly one terminal message: `{"type":"complete","sessionId","response":{"output"}}`
//!   or `{"type":"error","message","requestId"}`.
//!
//! ## Errors
//! Every error a client sees says what happened in its terms and ends with
//! the request id of the message that caused it (`requestContext.requestId`,
//! which the chat Lambda's logs carry too). AWS internals stay in the logs:
//! an error text naming an ARN or a 12-digit account id is replaced whole
//! ([`Outbound::for_client`]).
//!
//! ## Oversized messages
//! API Gateway rejects a `PostToConnection` body over 128 KiB. Images must travel
//! as S3 presigned URLs, which the agent includes next to (or instead of) any
//! inline bytes. So a message over [`MAX_MESSAGE_BYTES`] is never sent whole:
//! 1. every inline blob in it (a string of at least [`INLINE_BLOB_MIN_CHARS`]
//!    that is a `data:` URL or pure base64) is removed, and the object that held
//!    it gets `"inlineDataOmitted": true`; the presigned URLs stay;
//! 2. if it is still too large, it is replaced: a terminal message becomes
//!    `{"type":"error","message":...}` (the client must always get an end), any
//!    other becomes `{"type":"notice","originalType":...,"message":...}`.

use std::borrow::Cow;

use serde_json::{Value, json};

/// API Gateway's WebSocket frame (and `PostToConnection` payload) limit.
pub const API_GATEWAY_FRAME_LIMIT: usize = 128 * 1024;
/// What we allow ourselves: the limit minus a safety margin for API Gateway's
/// own accounting (it counts bytes after its framing; we stay well clear).
pub const MAX_MESSAGE_BYTES: usize = API_GATEWAY_FRAME_LIMIT - 8 * 1024;
/// Strings shorter than this are never treated as inline binary data.
pub const INLINE_BLOB_MIN_CHARS: usize = 1024;

/// One message for the client, and whether it ends the conversation turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub message: Value,
    pub terminal: bool,
}

impl Outbound {
    pub fn processing() -> Self {
        Self {
            message: json!({"type": "processing"}),
            terminal: false,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            message: json!({"type": "error", "message": message.into()}),
            terminal: true,
        }
    }

    /// The message as this client may see it: errors get the request id, and
    /// an error text that names AWS internals is replaced (the original is
    /// logged). Other messages are unchanged.
    pub fn for_client(&self, request_id: &str) -> Cow<'_, Self> {
        if self.message.get("type").and_then(Value::as_str) != Some("error") {
            return Cow::Borrowed(self);
        }
        let text = self
            .message
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the agent failed");
        let text = if leaks_internals(text) {
            tracing::warn!(original = text, "error text names AWS internals; replaced");
            "the agent failed"
        } else {
            text
        };
        Cow::Owned(Self {
            message: json!({
                "type": "error",
                "message": format!("{text} (request id {request_id})"),
                "requestId": request_id,
            }),
            terminal: self.terminal,
        })
    }

    pub fn complete(session_id: &str, output: Value) -> Self {
        let mut response = serde_json::Map::new();
        response.insert("output".to_owned(), output);
        let mut message = json!({"type": "complete", "sessionId": session_id});
        message["response"] = Value::Object(response);
        Self {
            message,
            terminal: true,
        }
    }

    /// Maps one SSE `data` payload from the agent.
    pub fn from_agent_event(data: &str, session_id: &str) -> Self {
        let value = match serde_json::from_str::<Value>(data) {
            Ok(v) => v,
            // Not JSON: plain text is still text for the user.
            Err(_) => return Self::passthrough(json!({"type": "text", "delta": data})),
        };
        let obj = match value {
            Value::Object(obj) => obj,
            Value::String(s) => return Self::passthrough(json!({"type": "text", "delta": s})),
            other => return Self::passthrough(json!({"type": "data", "data": other})),
        };
        match obj.get("type").and_then(Value::as_str) {
            Some("complete") => Self::complete(
                session_id,
                obj.get("output").cloned().unwrap_or(Value::Null),
            ),
            Some("error") => Self::error(error_text(&obj)),
            // The AgentCore Python reference server's mid-stream failure shape.
            None if obj.contains_key("error") => Self::error(error_text(&obj)),
            _ => Self::passthrough(Value::Object(obj)),
        }
    }

    fn passthrough(message: Value) -> Self {
        Self {
            message,
            terminal: false,
        }
    }

    /// The bytes to post: the message itself if it fits in a frame, otherwise
    /// the stripped or replaced message described in the module docs.
    pub fn to_frame(&self) -> Vec<u8> {
        let bytes = serde_json::to_vec(&self.message).expect("JSON value serializes");
        if bytes.len() <= MAX_MESSAGE_BYTES {
            return bytes;
        }
        let mut stripped = self.message.clone();
        strip_inline_blobs(&mut stripped);
        let stripped_bytes = serde_json::to_vec(&stripped).expect("JSON value serializes");
        if stripped_bytes.len() <= MAX_MESSAGE_BYTES {
            tracing::info!(
                from = bytes.len(),
                to = stripped_bytes.len(),
                "stripped inline data"
            );
            return stripped_bytes;
        }
        let original_type = self
            .message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        tracing::warn!(
            size = bytes.len(),
            original_type,
            "message too large for a WebSocket frame"
        );
        let replacement = if self.terminal {
            json!({
                "type": "error",
                "message": format!(
                    "the agent's {original_type} message ({} bytes) is too large to deliver over the WebSocket",
                    bytes.len()
                ),
            })
        } else {
            json!({
                "type": "notice",
                "originalType": original_type,
                "message": format!(
                    "a {original_type} message ({} bytes) was too large for the WebSocket and was dropped",
                    bytes.len()
                ),
            })
        };
        serde_json::to_vec(&replacement).expect("JSON value serializes")
    }
}

fn error_text(obj: &serde_json::Map<String, Value>) -> String {
    ["message", "error"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .filter(|m| !m.is_empty())
        .unwrap_or("the agent failed")
        .to_owned()
}

/// Whether `text` names an ARN or an AWS account id (12 digits standing alone).
pub fn leaks_internals(text: &str) -> bool {
    text.contains("arn:aws")
        || text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word.len() == 12 && word.bytes().all(|b| b.is_ascii_digit()))
}

fn is_inline_blob(s: &str) -> bool {
    s.len() >= INLINE_BLOB_MIN_CHARS
        && (s.starts_with("data:")
            || s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
            }))
}

/// Removes inline binary data (see module docs), recursively.
fn strip_inline_blobs(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            let before = obj.len();
            obj.retain(|_, v| !matches!(v, Value::String(s) if is_inline_blob(s)));
            if obj.len() != before {
                obj.insert("inlineDataOmitted".to_owned(), Value::Bool(true));
            }
            obj.values_mut().for_each(strip_inline_blobs);
        }
        Value::Array(items) => {
            items.retain(|v| !matches!(v, Value::String(s) if is_inline_blob(s)));
            items.iter_mut().for_each(strip_inline_blobs);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_json(o: &Outbound) -> Value {
        serde_json::from_slice(&o.to_frame()).unwrap()
    }

    #[test]
    fn maps_agent_events() {
        let text = Outbound::from_agent_event(r#"{"type":"text","delta":"hi"}"#, "s");
        assert_eq!(text.message, json!({"type":"text","delta":"hi"}));
        assert!(!text.terminal);

        let done = Outbound::from_agent_event(r#"{"type":"complete","output":{"text":"ok"}}"#, "s");
        assert_eq!(
            done.message,
            json!({"type":"complete","sessionId":"s","response":{"output":{"text":"ok"}}})
        );
        assert!(done.terminal);

        let err = Outbound::from_agent_event(r#"{"type":"error","message":"budget"}"#, "s");
        assert_eq!(err.message, json!({"type":"error","message":"budget"}));
        assert!(err.terminal);

        let py = Outbound::from_agent_event(r#"{"error":"boom","error_type":"X"}"#, "s");
        assert_eq!(py.message, json!({"type":"error","message":"boom"}));

        let s = Outbound::from_agent_event(r#""plain""#, "s");
        assert_eq!(s.message, json!({"type":"text","delta":"plain"}));
        let raw = Outbound::from_agent_event("not json", "s");
        assert_eq!(raw.message, json!({"type":"text","delta":"not json"}));
    }

    #[test]
    fn client_errors_carry_the_request_id_and_no_aws_internals() {
        let plain = Outbound::error("session budget exceeded")
            .for_client("req-1")
            .into_owned();
        assert_eq!(
            plain.message,
            json!({"type": "error", "message": "session budget exceeded (request id req-1)",
                   "requestId": "req-1"})
        );
        assert!(plain.terminal);
        for leak in [
            "User: arn:aws:sts::123456789012:assumed-role/Chat/fn is not authorized",
            "AccessDenied for account 123456789012",
            "role arn:aws-us-gov:iam::role/x",
        ] {
            let o = Outbound::error(leak).for_client("r").into_owned();
            assert_eq!(
                o.message["message"], "the agent failed (request id r)",
                "{leak}"
            );
        }
        // Hashes and amounts are not account ids.
        assert!(!leaks_internals(
            "tx 0xab123456789012cd failed; paid 10000 units"
        ));
        let text = Outbound::from_agent_event(r#"{"type":"text","delta":"123456789012"}"#, "s");
        assert!(matches!(text.for_client("r"), Cow::Borrowed(_)));
    }

    #[test]
    fn small_messages_are_sent_unchanged() {
        let o = Outbound::from_agent_event(r#"{"type":"image","url":"https://x/y.png"}"#, "s");
        assert_eq!(frame_json(&o), o.message);
    }

    #[test]
    fn oversized_image_keeps_its_url_and_loses_its_bytes() {
        let b64 = "A".repeat(200 * 1024);
        let o = Outbound::from_agent_event(
            &json!({"type":"image","url":"https://s3/presigned","image":{"base64":b64,"format":"png"}})
                .to_string(),
            "s",
        );
        let frame = o.to_frame();
        assert!(frame.len() <= MAX_MESSAGE_BYTES);
        let v: Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(
            v,
            json!({"type":"image","url":"https://s3/presigned",
                   "image":{"format":"png","inlineDataOmitted":true}})
        );
    }

    #[test]
    fn data_urls_in_complete_output_are_stripped() {
        let data_url = format!("data:image/png;base64,{}", "Q".repeat(150 * 1024));
        let o = Outbound::complete("s", json!({"images":[{"url":"https://u","data":data_url}]}));
        let v = frame_json(&o);
        assert_eq!(v["response"]["output"]["images"][0]["url"], "https://u");
        assert_eq!(
            v["response"]["output"]["images"][0]["inlineDataOmitted"],
            true
        );
    }

    #[test]
    fn unstrippable_messages_are_replaced() {
        let prose = "words ".repeat(30 * 1024);
        let text =
            Outbound::from_agent_event(&json!({"type":"text","delta":prose}).to_string(), "s");
        let v = frame_json(&text);
        assert_eq!(v["type"], "notice");
        assert_eq!(v["originalType"], "text");

        let done = Outbound::complete("s", json!({"text": prose}));
        let v = frame_json(&done);
        assert_eq!(v["type"], "error");
        assert!(v["message"].as_str().unwrap().contains("too large"));
    }

    #[test]
    fn short_base64_like_strings_are_not_blobs() {
        assert!(!is_inline_blob("abc"));
        assert!(!is_inline_blob(&"a b".repeat(1000)));
        assert!(is_inline_blob(&"ab".repeat(1000)));
    }
}
