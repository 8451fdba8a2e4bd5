//! What a turn tells its caller while it runs, and what it returns.
//!
//! The same events feed the SSE stream of `/invocations`, the `/ws` socket and
//! (through the WebSocket chat Lambda) browser clients, so they are one
//! tagged JSON shape: `{"type": "...", ...}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A payment receipt as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceipt {
    /// Idempotency key of the paid request (stable across retries/restarts).
    pub request_id: String,
    /// Decimal USDC, e.g. "0.04".
    pub amount: x402::Usdc,
    pub asset: String,
    pub network: String,
    pub pay_to: String,
    pub payer: String,
    pub transaction: String,
    pub transaction_url: String,
    pub resource: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
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
