//! The language model behind the tool loop, as one trait with three
//! implementations side by side:
//!
//! - [`bedrock::BedrockModel`]: Amazon Bedrock `ConverseStream` (or
//!   `Converse`) through `aws-sdk-bedrockruntime`, Claude Sonnet 4.5 by default;
//! - [`offline::OfflineModel`]: a deterministic planner for the local demo and
//!   tests without AWS, labelled `offline` in every response;
//! - a scripted model that replays scripted replies and counts calls and
//!   input tokens lives with the tests (`agent/tests/core/scripted.rs`).
//!
//! Messages use the Converse JSON shape (`{"role", "content": [{"text"} |
//! {"toolUse"} | {"toolResult"}]}`), so what the session store keeps is what
//! Bedrock reads, and a recorded conversation replays on any model.
//!
//! Cross-cutting behaviour is a layer, not copy-pasted into each adapter:
//! [`retry::Retry`] retries throttling with jittered backoff, and
//! [`trim_oldest_turn`] drops the oldest turns when the context overflows.

pub mod bedrock;
pub mod offline;
pub mod prompt;
pub mod retry;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who said a message. Converse requires user and assistant to alternate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One conversation message (Converse `Message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![ContentBlock::Text(text.into())],
        }
    }

    pub fn assistant_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::Text(text.into())],
        }
    }

    /// All text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn tool_uses(&self) -> impl Iterator<Item = &ToolUse> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::ToolUse(u) => Some(u),
            _ => None,
        })
    }

    pub fn has_tool_results(&self) -> bool {
        self.content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolResult(_)))
    }

    /// A user message that starts a turn (typed by a person, not tool results).
    pub fn starts_turn(&self) -> bool {
        self.role == Role::User && !self.has_tool_results()
    }
}

/// A content block, serialised as Converse does: `{"text": "..."}`,
/// `{"toolUse": {...}}`, `{"toolResult": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock {
    Text(String),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
}

/// The model asks for a tool call. `input` is whatever JSON the model wrote;
/// tools parse it into their typed arguments before anything runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    pub tool_use_id: String,
    pub name: String,
    pub input: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: Vec<ToolResultContent>,
    pub status: ToolResultStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent {
    Json(serde_json::Value),
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultStatus {
    Success,
    Error,
}

/// The tools' specs and the vision call's formats are the tools' own.
pub use tools::toolbox::{ImageFormat, ToolSpec};

/// One model call.
#[derive(Clone, Debug)]
pub struct ModelRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Output limit for this call (`maxTokens` of the inference config).
    pub max_tokens: u32,
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    /// The output limit cut the reply short.
    MaxTokens,
    /// Anything else the service reports (content filtered, guardrail...).
    Other(String),
}

impl StopReason {
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::ToolUse => "tool_use",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Other(s) => s,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// The model's reply: an assistant message.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelResponse {
    pub message: Message,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// A model call failed. Messages keep the service's own wording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// `ThrottlingException` (either spelling), before or during the stream.
    #[error("model throttled: {0}")]
    Throttled(String),
    /// Temporarily unavailable (`ServiceUnavailableException`,
    /// `ModelNotReadyException`): as retryable as throttling.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The input is longer than the model's context window.
    #[error("conversation too long for the model: {0}")]
    ContextOverflow(String),
    /// Anything else the service said (validation, access denied...).
    #[error("model error: {0}")]
    Service(String),
}

impl ModelError {
    /// Worth retrying after a pause.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ModelError::Throttled(_) | ModelError::Unavailable(_))
    }
}

/// Receives text as the model produces it (SSE/WebSocket deltas).
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A chat model with tool use and vision.
#[async_trait]
pub trait Model: Send + Sync {
    /// What responses report in `model`: the model id, or an `offline` label.
    fn label(&self) -> String;

    /// One model call. Text is streamed to `on_text` as it arrives; the
    /// returned message is complete and authoritative.
    async fn converse(
        &self,
        req: &ModelRequest,
        on_text: TextSink<'_>,
    ) -> Result<ModelResponse, ModelError>;

    /// Answers `question` about an image (Claude vision on Bedrock).
    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        question: &str,
    ) -> Result<String, ModelError>;
}

/// Drops the oldest turn from `messages` to make room in the context window.
///
/// A turn starts at a user message a person typed (not tool results), so
/// cutting just before one never separates a `toolUse` from its `toolResult`
/// (they sit in one assistant message and the user message after it), and
/// the remaining history still starts with a user message, as Converse
/// requires. The newest turn is never dropped. Returns `false` when there is
/// nothing left to drop.
pub fn trim_oldest_turn(messages: &mut Vec<Message>) -> bool {
    let next_start = messages
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, m)| m.starts_turn())
        .map(|(i, _)| i);
    match next_start {
        Some(i) => {
            messages.drain(..i);
            true
        }
        None => false,
    }
}

/// The same estimate for one message (a reply's output tokens).
pub fn estimate_message_tokens(message: &Message) -> u32 {
    u32::try_from(serde_json::to_string(message).map_or(0, |s| s.len().div_ceil(4)))
        .unwrap_or(u32::MAX)
}

/// A rough input-size estimate (about four characters per token), used by
/// the offline model and the tests' scripted model to simulate a context window.
pub fn estimate_tokens(req: &ModelRequest) -> u32 {
    let chars = req.system.len()
        + serde_json::to_string(&req.messages).map_or(0, |s| s.len())
        + serde_json::to_string(&req.tools).map_or(0, |s| s.len());
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

/// A [`Model`] as the `analyze_image` tool sees it.
pub struct ModelVision(pub std::sync::Arc<dyn Model>);

#[async_trait]
impl tools::toolbox::Vision for ModelVision {
    async fn describe_image(
        &self,
        image: &[u8],
        format: ImageFormat,
        question: &str,
    ) -> Result<String, tools::toolbox::VisionError> {
        self.0
            .describe_image(image, format, question)
            .await
            .map_err(|e| tools::toolbox::VisionError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_round(id: &str) -> [Message; 2] {
        [
            Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse(ToolUse {
                    tool_use_id: id.into(),
                    name: "check_balance".into(),
                    input: json!({}),
                })],
            },
            Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult(ToolResult {
                    tool_use_id: id.into(),
                    content: vec![ToolResultContent::Json(json!({"ok": true}))],
                    status: ToolResultStatus::Success,
                })],
            },
        ]
    }

    #[test]
    fn messages_serialise_in_the_converse_shape() {
        let [use_msg, result_msg] = tool_round("t1");
        assert_eq!(
            serde_json::to_value(&use_msg).unwrap(),
            json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "check_balance", "input": {}}}]})
        );
        assert_eq!(
            serde_json::to_value(&result_msg).unwrap(),
            json!({"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"ok": true}}], "status": "success"}}]})
        );
        assert_eq!(
            serde_json::to_value(Message::user_text("hi")).unwrap(),
            json!({"role": "user", "content": [{"text": "hi"}]})
        );
    }

    #[test]
    fn trimming_drops_whole_turns_and_never_splits_tool_pairs() {
        let mut msgs = vec![Message::user_text("turn 1")];
        msgs.extend(tool_round("a"));
        msgs.push(Message::assistant_text("done 1"));
        msgs.push(Message::user_text("turn 2"));
        msgs.extend(tool_round("b"));
        msgs.extend(tool_round("c"));
        msgs.push(Message::assistant_text("done 2"));
        msgs.push(Message::user_text("turn 3"));
        msgs.extend(tool_round("d"));

        assert!(trim_oldest_turn(&mut msgs));
        assert_eq!(msgs[0], Message::user_text("turn 2"));
        assert!(trim_oldest_turn(&mut msgs));
        assert_eq!(msgs[0], Message::user_text("turn 3"));
        assert_eq!(msgs.len(), 3, "the newest turn with its tool pair stays");
        assert!(
            !trim_oldest_turn(&mut msgs),
            "the newest turn is never dropped"
        );

        // Every toolUse left has its toolResult right after it.
        for (i, m) in msgs.iter().enumerate() {
            for u in m.tool_uses() {
                let next = &msgs[i + 1];
                assert!(next.content.iter().any(
                    |b| matches!(b, ContentBlock::ToolResult(r) if r.tool_use_id == u.tool_use_id)
                ));
            }
        }
    }
}
