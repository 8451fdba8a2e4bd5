//! What the tools show the user as they run: quotes, refusals, payments and
//! images. The agent streams them to its clients (one tagged JSON shape,
//! `{"type": "...", ...}`, shared with its own progress events) and lists
//! them in the turn's output.

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

/// One thing a tool shows while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolEvent {
    /// A price, before paying (see [`QuoteInfo`]).
    Quote(QuoteInfo),
    /// A payment refused by the agent's rules.
    Refusal(RefusalInfo),
    Payment {
        receipt: PaymentReceipt,
    },
    Image {
        id: String,
        url: String,
    },
}
