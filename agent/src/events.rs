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

/// A seller's price for something the agent is about to buy: what a client
/// needs to show the user, and to ask them when `needs_approval` is true.
///
/// Approval protocol: above the auto-approve limit the agent stops and emits
/// this with `needs_approval: true`. The caller answers *as data* (never as
/// chat text): `{"approve": {"request_id", "approved": true|false}}` in an
/// `/invocations` body (with or without a prompt), or
/// `{"type": "approve", "request_id", "approved"}` on `/ws`. An approval
/// covers exactly this `request_id`, at most this `amount`, until
/// `expires_at`; the agent then pays and continues the turn itself. Quotes
/// within the limit are emitted too, with `needs_approval: false`, so
/// clients can show what is bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteInfo {
    pub request_id: String,
    /// Decimal USDC, e.g. "0.04".
    pub amount: x402::Usdc,
    pub pay_to: String,
    pub asset: String,
    pub network: String,
    /// What is bought, e.g. `image: a castle at dawn`.
    pub description: String,
    /// Unix seconds: the quote, and an approval of it, are void from then on.
    pub expires_at: u64,
    pub needs_approval: bool,
}

/// A payment the agent refused, in code: the rule, the amount and the limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalInfo {
    pub request_id: String,
    /// Stable rule name, e.g. `session_budget`, `user_daily_cap`,
    /// `wallet_daily_cap`, `approval_required`, `quote_expired`, `pay_to`.
    pub rule: String,
    pub amount: Option<x402::Usdc>,
    pub limit: Option<x402::Usdc>,
    pub message: String,
}

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
