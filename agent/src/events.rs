//! What a turn tells its caller while it runs, and what it returns.
//!
//! The same events feed the SSE stream of `/invocations`, the `/ws` socket and
//! (through the WebSocket chat Lambda) browser clients, so they are one
//! tagged JSON shape: `{"type": "...", ...}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use tools::progress::{PaymentReceipt, QuoteInfo, RefusalInfo, ToolEvent};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// A price, before paying (see [`QuoteInfo`]).
    Quote(QuoteInfo),
    /// A payment refused by the agent's rules.
    Refusal(RefusalInfo),
    /// A piece of assistant text.
    Text {
        delta: String,
    },
    ToolStart {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    ToolEnd {
        id: String,
        name: String,
        status: ToolStatus,
        summary: String,
    },
    Payment {
        receipt: PaymentReceipt,
    },
    Image {
        id: String,
        url: String,
    },
    Complete {
        output: Output,
    },
    Error {
        message: String,
    },
}

impl From<ToolEvent> for AgentEvent {
    fn from(e: ToolEvent) -> Self {
        match e {
            ToolEvent::Quote(q) => AgentEvent::Quote(q),
            ToolEvent::Refusal(r) => AgentEvent::Refusal(r),
            ToolEvent::Payment { receipt } => AgentEvent::Payment { receipt },
            ToolEvent::Image { id, url } => AgentEvent::Image { id, url },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Success,
    Error,
}

/// The `output` object of an invocation, compatible with the original
/// sample's clients: `{"output": {"message": {...}, "images": {...}, ...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub message: OutputMessage,
    /// Image id -> URL (presigned S3 URL in AWS, file URL locally).
    pub images: BTreeMap<String, String>,
    /// Payments made in this turn.
    pub payments: Vec<PaymentReceipt>,
    pub session_id: String,
    /// RFC 3339.
    pub timestamp: String,
    /// The model id; the offline model is labelled as such.
    pub model: String,
    /// What this turn cost in model calls and tokens (as the model reported
    /// them; the offline model estimates). Absent in older outputs.
    #[serde(default)]
    pub usage: TurnUsage,
    /// Quotes of this turn (the same as the `quote` events): a JSON-mode
    /// client finds here the `request_id` to approve.
    #[serde(default)]
    pub quotes: Vec<QuoteInfo>,
    /// Payments refused in this turn (the same as the `refusal` events).
    #[serde(default)]
    pub refusals: Vec<RefusalInfo>,
}

/// Model calls and tokens of one turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnUsage {
    pub model_calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputMessage {
    pub role: String,
    pub content: Vec<TextContent>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextContent {
    pub text: String,
}

impl OutputMessage {
    pub fn assistant(text: impl Into<String>) -> Self {
        OutputMessage {
            role: "assistant".into(),
            content: vec![TextContent { text: text.into() }],
        }
    }
}
