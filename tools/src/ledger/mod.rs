//! The payment ledger: every money decision, as pure functions over the
//! session's ledger entries.
//!
//! Each paid image is one *request*, identified by [`request_id`]: a digest
//! of the session and the exact [`ImageRequest`], so a repeated tool call, a
//! retried invocation or a restarted process all find the same request. A
//! request moves through one state machine, and each step is appended to the
//! session store *before* the next one starts:
//!
//! ```text
//!  New ──quote──▶ Quoted ──approve (from the caller, as data)──▶ Approved
//!                   │  (within auto-approve)                     │
//!                   └──────────────┬─────────────────────────────┘
//!                                  ▼
//!              Prepared  (signed authorization persisted, nothing sent yet)
//!                                  │  send; on any doubt re-send the SAME payment
//!                                  ▼
//!                 Paid (settled, receipt) ──▶ Stored (image kept, URL known)
//! ```
//!
//! Why this order keeps the money rules:
//! - **Never pay twice.** The signed EIP-3009 authorization is stored before
//!   it is sent. After a crash, timeout or retry the same authorization is
//!   re-sent: it carries one nonce, the token honours a nonce once, and the
//!   gateway answers a repeated payment with the content it already sold.
//!   A new authorization is only ever signed for a request in `Quoted`
//!   state (approved, or within the auto-approve limit).
//! - **Never lose paid content.** `Paid` and `Stored` are separate steps; a
//!   request stuck in `Prepared` or `Paid` is finished by re-sending.
//! - **Never exceed the budget.** [`committed_spend`] counts every prepared
//!   payment, settled or not (a prepared payment *may* settle), so the budget
//!   check is conservative.
//! - **Never pay anyone else.** [`check_quote`] refuses a quote whose payee,
//!   asset or network differs from configuration (the `tools` payment policy,
//!   the same rule the client applies again at signing time); the model
//!   supplies none of them (tool arguments cannot name a payee, an amount or a
//!   budget).
//! - **Consent comes from the user, bound to the quote.** Above the
//!   auto-approve limit a payment needs an [`Approval`] that arrived from the
//!   caller as data (the `approve` field of `/invocations`, an `approve`
//!   message on `/ws`, the terminal chat's y/n), never from model text:
//!   [`approve`] records it for exactly one quoted request, for at most its
//!   quoted amount, and only until the quote expires. A re-quote at a higher
//!   price, another request id or an expired quote is not covered. The
//!   model's `make_payment` only checks for such an approval
//!   ([`check_approved`]); it can record none. Caps across sessions (per user
//!   and per wallet, per day) are reserved atomically just before signing:
//!   see [`crate::access`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x402::{Usdc, catalog::ImageRequest};

use crate::{progress::PaymentReceipt, signer::agentcore::PaymentSession};

mod rules;
mod state;
#[cfg(test)]
mod tests;

pub use rules::{
    Approval, Decision, MoneyRules, Refusal, approve, check_approved, check_quote, decide, decline,
};
pub use state::{
    RequestState, committed_spend, images, payment_session, payment_sessions_opened, request_state,
    settled_spend,
};

/// The seller's quote and the signed payment, as the `tools` client makes
/// them; stored in the ledger as they are (their serde shape is the ledger's).
pub use crate::purchase::{PreparedPayment, Quote};

/// The ledger's stored format. An entry is stored as its JSON (the
/// [`LedgerEntry`] serde shape, including the quote, payment, receipt and
/// payment session it holds) plus `"format": FORMAT`. Entries written before
/// the format was numbered carry none and are format 1. Every field of every
/// variant is pinned by `tests::the_stored_format_is_pinned` against
/// `format_v1.json`: a change to any type an entry holds that would change
/// what is stored fails that test instead of silently changing the format
/// (a new format then gets a new number and a reader of the old one).
pub const FORMAT: u64 = 1;

/// A stored ledger entry could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("ledger entry of format {0}, newer than this agent reads ({FORMAT})")]
    Newer(u64),
    #[error("ledger entry: {0}")]
    Invalid(String),
}

/// An entry as it is stored.
pub fn encode(entry: &LedgerEntry) -> serde_json::Value {
    let mut v = serde_json::to_value(entry).expect("ledger entries serialise");
    if let Some(o) = v.as_object_mut() {
        o.insert("format".into(), FORMAT.into());
    }
    v
}

/// A stored entry, of this format or an earlier one.
pub fn decode(mut stored: serde_json::Value) -> Result<LedgerEntry, DecodeError> {
    let format = match stored.as_object_mut().and_then(|o| o.remove("format")) {
        None => 1,
        Some(f) => f
            .as_u64()
            .ok_or_else(|| DecodeError::Invalid(format!("format {f} is not a number")))?,
    };
    if format > FORMAT {
        return Err(DecodeError::Newer(format));
    }
    serde_json::from_value(stored).map_err(|e| DecodeError::Invalid(e.to_string()))
}

/// An image kept for the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    pub image_id: String,
    /// Key in the image store.
    pub key: String,
    pub url: String,
    pub prompt: String,
}

/// One ledger entry, stored as `Record::Ledger { entry }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LedgerEntry {
    Quoted {
        request_id: String,
        turn_id: String,
        request: ImageRequest,
        /// Boxed: the largest thing an entry holds (stored the same).
        quote: Box<Quote>,
        /// Unix seconds after which neither this quote nor an approval of
        /// it may be paid (0 in ledgers written before quotes expired).
        #[serde(default)]
        expires_at: u64,
    },
    /// Legacy: consent the model recorded through `make_payment`. Kept so old
    /// ledgers still load; no longer honoured (consent must come from the
    /// user, as data: [`LedgerEntry::Approved`]).
    Consented {
        request_id: String,
        turn_id: String,
        amount: Usdc,
    },
    /// The user approved paying up to `amount` for this request, as data
    /// from their client, valid until `expires_at` (the quote's expiry).
    Approved {
        request_id: String,
        turn_id: String,
        amount: Usdc,
        expires_at: u64,
    },
    /// The user declined this request.
    Declined { request_id: String, turn_id: String },
    Prepared {
        request_id: String,
        payment: PreparedPayment,
    },
    Paid {
        request_id: String,
        receipt: PaymentReceipt,
    },
    Stored {
        request_id: String,
        image: StoredImage,
    },
    /// The seller refused the prepared payment, and the chain confirmed it
    /// never settles (unused at a block past `validBefore`: see
    /// [`crate::declined`]). The amount stays counted as spent: conservative.
    Rejected { request_id: String, reason: String },
    /// An AgentCore payment session opened for this agent session
    /// (`SIGNER=agentcore`), for `budget`; the newest usable one is reused
    /// across turns and restarts ([`payment_session`]).
    PaymentSession {
        session: PaymentSession,
        budget: Usdc,
    },
    /// AgentCore Payments itself refused to pay for a request (its session
    /// limit, an expired session, an inactive instrument). Nothing was
    /// signed: the request's state does not change.
    ServiceRefused {
        request_id: String,
        turn_id: String,
        rule: String,
        amount: Usdc,
        limit: Option<Usdc>,
        reason: String,
    },
}

impl LedgerEntry {
    pub fn request_id(&self) -> &str {
        match self {
            LedgerEntry::Quoted { request_id, .. }
            | LedgerEntry::Consented { request_id, .. }
            | LedgerEntry::Approved { request_id, .. }
            | LedgerEntry::Declined { request_id, .. }
            | LedgerEntry::Prepared { request_id, .. }
            | LedgerEntry::Paid { request_id, .. }
            | LedgerEntry::Stored { request_id, .. }
            | LedgerEntry::Rejected { request_id, .. }
            | LedgerEntry::ServiceRefused { request_id, .. } => request_id,
            LedgerEntry::PaymentSession { session, .. } => &session.payment_session_id,
        }
    }

    /// The session-store idempotency key of this entry: one write per step
    /// of a request (per turn for quotes and consents, which may repeat).
    pub fn idempotency_key(&self) -> String {
        match self {
            LedgerEntry::Quoted {
                request_id,
                turn_id,
                ..
            } => format!("ledger:{request_id}:quoted:{turn_id}"),
            LedgerEntry::Consented {
                request_id,
                turn_id,
                ..
            } => format!("ledger:{request_id}:consented:{turn_id}"),
            LedgerEntry::Approved {
                request_id,
                turn_id,
                ..
            } => format!("ledger:{request_id}:approved:{turn_id}"),
            LedgerEntry::Declined {
                request_id,
                turn_id,
            } => format!("ledger:{request_id}:declined:{turn_id}"),
            LedgerEntry::Prepared { request_id, .. } => format!("ledger:{request_id}:prepared"),
            LedgerEntry::Paid { request_id, .. } => format!("ledger:{request_id}:paid"),
            LedgerEntry::Stored { request_id, .. } => format!("ledger:{request_id}:stored"),
            LedgerEntry::Rejected { request_id, .. } => format!("ledger:{request_id}:rejected"),
            LedgerEntry::PaymentSession { session, .. } => {
                format!("ledger:payment_session:{}", session.payment_session_id)
            }
            LedgerEntry::ServiceRefused {
                request_id,
                turn_id,
                ..
            } => format!("ledger:{request_id}:service_refused:{turn_id}"),
        }
    }
}

/// The stable id of an image request within a session.
pub fn request_id(session_id: &str, req: &ImageRequest) -> String {
    let mut h = Sha256::new();
    h.update(session_id.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(req).expect("ImageRequest serialises"));
    format!("img-{}", &hex::encode(h.finalize())[..20])
}
