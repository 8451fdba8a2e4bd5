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

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tools::{
    policy::{self, Limits, PaymentPolicy, PolicyRefusal, caps::CapRefusal},
    signer::agentcore::PaymentSession,
};
use x402::{Network, Usdc, catalog::ImageRequest};

use crate::events::PaymentReceipt;

/// The seller's quote and the signed payment, as the `tools` client makes
/// them; stored in the ledger as they are (their serde shape is the ledger's).
pub use tools::client::{PreparedPayment, Quote};

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
        quote: Quote,
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

/// Where one request stands, folded from the ledger in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestState {
    New,
    Quoted {
        request: ImageRequest,
        quote: Quote,
        quoted_in: String,
        /// When the latest quote expires (unix seconds).
        expires_at: u64,
        /// The user's approval, if any (bound to its own amount and expiry).
        approval: Option<Approval>,
    },
    Prepared {
        request: ImageRequest,
        payment: PreparedPayment,
    },
    Paid {
        request: ImageRequest,
        payment: PreparedPayment,
        receipt: PaymentReceipt,
    },
    Stored {
        receipt: Option<PaymentReceipt>,
        image: StoredImage,
    },
    Rejected {
        reason: String,
    },
}

/// Folds the ledger entries of `request_id` into its current state. Later
/// quotes replace earlier ones until a payment is prepared; after that the
/// prepared payment is final (a duplicate entry from a retried write changes
/// nothing).
pub fn request_state(entries: &[LedgerEntry], request_id: &str) -> RequestState {
    let mut state = RequestState::New;
    let mut request: Option<ImageRequest> = None;
    for e in entries.iter().filter(|e| e.request_id() == request_id) {
        state = match (state, e) {
            (
                s @ (RequestState::New | RequestState::Quoted { .. }),
                LedgerEntry::Quoted {
                    request: r,
                    quote,
                    turn_id,
                    expires_at,
                    ..
                },
            ) => {
                request = Some(r.clone());
                let approval = match s {
                    RequestState::Quoted { approval, .. } => approval,
                    _ => None,
                };
                RequestState::Quoted {
                    request: r.clone(),
                    quote: quote.clone(),
                    quoted_in: turn_id.clone(),
                    expires_at: *expires_at,
                    approval,
                }
            }
            (
                RequestState::Quoted {
                    request,
                    quote,
                    quoted_in,
                    expires_at: quote_expiry,
                    ..
                },
                LedgerEntry::Approved {
                    amount, expires_at, ..
                },
            ) => RequestState::Quoted {
                request,
                quote,
                quoted_in,
                expires_at: quote_expiry,
                approval: Some(Approval {
                    amount: *amount,
                    expires_at: *expires_at,
                }),
            },
            (
                RequestState::Quoted {
                    request,
                    quote,
                    quoted_in,
                    expires_at,
                    ..
                },
                LedgerEntry::Declined { .. },
            ) => RequestState::Quoted {
                request,
                quote,
                quoted_in,
                expires_at,
                approval: None,
            },
            (
                RequestState::New | RequestState::Quoted { .. },
                LedgerEntry::Prepared { payment, .. },
            ) => RequestState::Prepared {
                request: request.clone().unwrap_or_else(|| ImageRequest {
                    prompt: String::new(),
                    size: Default::default(),
                    quality: Default::default(),
                    seed: None,
                }),
                payment: payment.clone(),
            },
            (RequestState::Prepared { request, payment }, LedgerEntry::Paid { receipt, .. }) => {
                RequestState::Paid {
                    request,
                    payment,
                    receipt: receipt.clone(),
                }
            }
            (RequestState::Prepared { .. }, LedgerEntry::Rejected { reason, .. }) => {
                RequestState::Rejected {
                    reason: reason.clone(),
                }
            }
            (RequestState::Paid { receipt, .. }, LedgerEntry::Stored { image, .. }) => {
                RequestState::Stored {
                    receipt: Some(receipt),
                    image: image.clone(),
                }
            }
            // Anything else is a duplicate or out-of-order write: ignore it.
            (s, _) => s,
        };
    }
    state
}

/// Money committed in the session: every prepared payment, settled or not.
pub fn committed_spend(entries: &[LedgerEntry]) -> Usdc {
    let mut seen = std::collections::BTreeSet::new();
    entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Prepared {
                request_id,
                payment,
            } if seen.insert(request_id.as_str()) => Some(payment.amount),
            _ => None,
        })
        .fold(Usdc::ZERO, |a, b| {
            a.checked_add(b).unwrap_or(Usdc::from_atomic(u64::MAX))
        })
}

/// Money that settled (receipts), for display.
pub fn settled_spend(entries: &[LedgerEntry]) -> Usdc {
    let mut seen = std::collections::BTreeSet::new();
    entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Paid {
                request_id,
                receipt,
            } if seen.insert(request_id.as_str()) => Some(receipt.amount),
            _ => None,
        })
        .fold(Usdc::ZERO, |a, b| {
            a.checked_add(b).unwrap_or(Usdc::from_atomic(u64::MAX))
        })
}

/// Images of the session, oldest first.
pub fn images(entries: &[LedgerEntry]) -> Vec<&StoredImage> {
    entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Stored { image, .. } => Some(image),
            _ => None,
        })
        .collect()
}

/// The fixed money settings: from configuration only, never from the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyRules {
    /// The only payee.
    pub seller: Address,
    /// The only asset (USDC on `network`).
    pub asset: Address,
    pub network: Network,
    /// Largest price paid without asking the user.
    pub auto_approve_max: Usdc,
    /// Longest authorization window signed (the policy's `max_timeout`).
    pub max_timeout_seconds: u64,
}

impl MoneyRules {
    /// The `tools` payment policy these rules stand for: this network, this
    /// asset, this one payee, this longest authorization window.
    pub fn policy(&self) -> PaymentPolicy {
        PaymentPolicy {
            network: self.network,
            asset: self.asset,
            allowed_pay_to: vec![self.seller],
            max_timeout_seconds: self.max_timeout_seconds,
        }
    }
}

/// Why a payment is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Wrong payee, asset or network, or a zero price.
    #[error("refused by the payment policy: {0}")]
    Policy(#[from] PolicyRefusal),
    #[error(
        "this image costs {amount} USDC but only {remaining} USDC of the session budget of {budget} USDC is left"
    )]
    OverBudget {
        amount: Usdc,
        remaining: Usdc,
        budget: Usdc,
    },
    #[error("there is no quote for request {0}; call generate_image or estimate_image_cost first")]
    NoQuote(String),
    #[error(
        "approval required: paying {amount} USDC for request {request_id} is above the auto-approve limit of {limit} USDC and the user has not approved it. Tell the user the price; they approve in their app (not by chat text), and the payment then happens without you"
    )]
    NotApproved {
        request_id: String,
        amount: Usdc,
        limit: Usdc,
    },
    #[error(
        "the quote for request {0} has expired, so it can no longer be approved or paid; ask for a new quote"
    )]
    QuoteExpired(String),
    #[error("request {0} is already paid")]
    AlreadyPaid(String),
    #[error("request {0} was refused by the image service earlier and cannot be paid")]
    Closed(String),
    /// Over a daily cap across sessions.
    #[error("{0}")]
    Cap(#[from] CapRefusal),
    /// AgentCore Payments refused (see [`LedgerEntry::ServiceRefused`]).
    #[error("{rule}: the payment service refused {amount} USDC{}: {message}", .limit.map(|l| format!(" (it allows {l} USDC more)")).unwrap_or_default())]
    Service {
        rule: String,
        amount: Usdc,
        limit: Option<Usdc>,
        message: String,
    },
}

impl Refusal {
    /// Short stable name of the rule that refused (the `rule` of a refusal event).
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::Policy(p) => p.rule(),
            Refusal::OverBudget { .. } => "session_budget",
            Refusal::NoQuote(_) => "unknown_request",
            Refusal::NotApproved { .. } => "approval_required",
            Refusal::QuoteExpired(_) => "quote_expired",
            Refusal::AlreadyPaid(_) => "already_paid",
            Refusal::Closed(_) => "closed",
            Refusal::Cap(c) => c.rule(),
            Refusal::Service { .. } => "payment_service",
        }
    }

    /// The amount refused and the limit it met, where there are such.
    pub fn amount_and_limit(&self) -> (Option<Usdc>, Option<Usdc>) {
        match self {
            Refusal::OverBudget { amount, budget, .. } => (Some(*amount), Some(*budget)),
            Refusal::NotApproved { amount, limit, .. } => (Some(*amount), Some(*limit)),
            Refusal::Cap(c) => (Some(c.amount()), Some(c.limit())),
            Refusal::Service { amount, limit, .. } => (Some(*amount), *limit),
            Refusal::Policy(PolicyRefusal::OverAuthorised { asked, limit }) => {
                (Some(*asked), Some(*limit))
            }
            _ => (None, None),
        }
    }
}

/// The user's approval of one quoted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The most it covers: the quoted amount the user saw.
    pub amount: Usdc,
    /// Unix seconds: the approved quote's expiry.
    pub expires_at: u64,
}

impl Approval {
    /// Whether this approval pays `amount` at `now`.
    pub fn covers(&self, amount: Usdc, now: u64) -> bool {
        amount <= self.amount && now < self.expires_at
    }
}

/// The AgentCore payment session to pay from at `now` under `budget`: the
/// newest one opened, if it was opened for this budget and is not about to
/// expire. `None`: open a new one for what remains of the budget.
pub fn payment_session(entries: &[LedgerEntry], now: u64, budget: Usdc) -> Option<&PaymentSession> {
    entries
        .iter()
        .rev()
        .find_map(|e| match e {
            LedgerEntry::PaymentSession { session, budget: b } => Some((session, *b)),
            _ => None,
        })
        .filter(|(s, b)| *b == budget && s.usable_at(now))
        .map(|(s, _)| s)
}

/// How many AgentCore payment sessions this agent session has opened (the
/// next one's idempotency generation).
pub fn payment_sessions_opened(entries: &[LedgerEntry]) -> usize {
    entries
        .iter()
        .filter(|e| matches!(e, LedgerEntry::PaymentSession { .. }))
        .count()
}

/// Refuses a quote that would pay anyone or anything but what configuration
/// allows. Amount limits are the ledger's ([`decide`]); here the quote is
/// checked as a payment of exactly its own amount.
pub fn check_quote(quote: &Quote, rules: &MoneyRules) -> Result<(), Refusal> {
    policy::check(&rules.policy(), &quote.ask(), &Limits::single(quote.amount))
        .map_err(Refusal::Policy)
}

/// What to do with a valid quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sign and send now.
    Pay,
    /// Above the auto-approve limit and not yet consented: ask the user.
    NeedsConsent {
        amount: Usdc,
        auto_approve_max: Usdc,
    },
}

/// Whether a quote may be paid now. The budget applies to everything,
/// approvals included; an approval covers at most the amount the user saw,
/// until its quote expired.
pub fn decide(
    entries: &[LedgerEntry],
    quote: &Quote,
    approval: Option<Approval>,
    rules: &MoneyRules,
    budget: Usdc,
    now: u64,
) -> Result<Decision, Refusal> {
    check_quote(quote, rules)?;
    let spent = committed_spend(entries);
    let remaining = budget.saturating_sub(spent);
    if quote.amount > remaining {
        return Err(Refusal::OverBudget {
            amount: quote.amount,
            remaining,
            budget,
        });
    }
    if quote.amount <= rules.auto_approve_max
        || approval.is_some_and(|a| a.covers(quote.amount, now))
    {
        Ok(Decision::Pay)
    } else {
        Ok(Decision::NeedsConsent {
            amount: quote.amount,
            auto_approve_max: rules.auto_approve_max,
        })
    }
}

/// Records the user's approval (data from the caller) of a quoted request:
/// the entry to append. Refused for a request this session never quoted
/// (another or a made-up id), for an expired quote, and for a request
/// already paid or refused. The approval covers the amount of the quote the
/// user was shown, until that quote expires.
pub fn approve(
    entries: &[LedgerEntry],
    request_id: &str,
    turn_id: &str,
    now: u64,
) -> Result<LedgerEntry, Refusal> {
    match request_state(entries, request_id) {
        RequestState::Quoted {
            quote, expires_at, ..
        } => {
            if now >= expires_at {
                return Err(Refusal::QuoteExpired(request_id.into()));
            }
            Ok(LedgerEntry::Approved {
                request_id: request_id.into(),
                turn_id: turn_id.into(),
                amount: quote.amount,
                expires_at,
            })
        }
        RequestState::New => Err(Refusal::NoQuote(request_id.into())),
        RequestState::Rejected { .. } => Err(Refusal::Closed(request_id.into())),
        _ => Err(Refusal::AlreadyPaid(request_id.into())),
    }
}

/// Records that the user declined a quoted request.
pub fn decline(
    entries: &[LedgerEntry],
    request_id: &str,
    turn_id: &str,
) -> Result<LedgerEntry, Refusal> {
    match request_state(entries, request_id) {
        RequestState::Quoted { .. } => Ok(LedgerEntry::Declined {
            request_id: request_id.into(),
            turn_id: turn_id.into(),
        }),
        RequestState::New => Err(Refusal::NoQuote(request_id.into())),
        RequestState::Rejected { .. } => Err(Refusal::Closed(request_id.into())),
        _ => Err(Refusal::AlreadyPaid(request_id.into())),
    }
}

/// What the model's `make_payment` may do: nothing unless the user approved
/// this request (as data) for at least its latest quoted amount, and the
/// approval has not expired. The model can record no consent of its own.
pub fn check_approved(
    entries: &[LedgerEntry],
    request_id: &str,
    rules: &MoneyRules,
    now: u64,
) -> Result<Approval, Refusal> {
    match request_state(entries, request_id) {
        RequestState::Quoted {
            quote, approval, ..
        } => match approval {
            Some(a) if a.covers(quote.amount, now) => Ok(a),
            Some(a) if now >= a.expires_at => Err(Refusal::QuoteExpired(request_id.into())),
            _ => Err(Refusal::NotApproved {
                request_id: request_id.into(),
                amount: quote.amount,
                limit: rules.auto_approve_max,
            }),
        },
        RequestState::New => Err(Refusal::NoQuote(request_id.into())),
        RequestState::Rejected { .. } => Err(Refusal::Closed(request_id.into())),
        _ => Err(Refusal::AlreadyPaid(request_id.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const SELLER: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    const EVIL: Address = address!("0x000000000000000000000000000000000000dEaD");

    fn usdc(s: &str) -> Usdc {
        s.parse().unwrap()
    }

    fn rules() -> MoneyRules {
        MoneyRules {
            seller: SELLER,
            asset: Network::BaseSepolia.default_usdc(),
            network: Network::BaseSepolia,
            auto_approve_max: usdc("0.10"),
            max_timeout_seconds: 600,
        }
    }

    fn quote(amount: &str) -> Quote {
        Quote {
            version: 2,
            amount: usdc(amount),
            pay_to: SELLER,
            asset: Network::BaseSepolia.default_usdc(),
            network: Network::BaseSepolia,
            resource: "http://127.0.0.1/generate_image".into(),
            max_timeout_seconds: 300,
            requirement: serde_json::json!({}),
            resource_info: None,
        }
    }

    fn req(prompt: &str) -> ImageRequest {
        ImageRequest {
            prompt: prompt.into(),
            size: Default::default(),
            quality: Default::default(),
            seed: None,
        }
    }

    fn prepared(id: &str, amount: &str) -> LedgerEntry {
        LedgerEntry::Prepared {
            request_id: id.into(),
            payment: PreparedPayment {
                header_name: "PAYMENT-SIGNATURE".into(),
                header_value: "secret".into(),
                amount: usdc(amount),
                pay_to: SELLER,
                payer: EVIL,
                nonce: "0x01".into(),
                valid_before: 0,
            },
        }
    }

    fn quoted(id: &str, amount: &str, turn: &str) -> LedgerEntry {
        LedgerEntry::Quoted {
            request_id: id.into(),
            turn_id: turn.into(),
            request: req("a cat"),
            quote: quote(amount),
            expires_at: 1_000,
        }
    }

    fn approval(amount: &str, expires_at: u64) -> Option<Approval> {
        Some(Approval {
            amount: usdc(amount),
            expires_at,
        })
    }

    fn receipt(id: &str, amount: &str) -> PaymentReceipt {
        PaymentReceipt {
            request_id: id.into(),
            amount: usdc(amount),
            asset: "USDC".into(),
            network: "base-sepolia".into(),
            pay_to: SELLER.to_string(),
            payer: EVIL.to_string(),
            transaction: "0xabc".into(),
            transaction_url: String::new(),
            resource: String::new(),
        }
    }

    #[test]
    fn request_ids_are_stable_per_session_and_request() {
        assert_eq!(request_id("s1", &req("cat")), request_id("s1", &req("cat")));
        assert_ne!(request_id("s1", &req("cat")), request_id("s2", &req("cat")));
        assert_ne!(request_id("s1", &req("cat")), request_id("s1", &req("dog")));
        let mut seeded = req("cat");
        seeded.seed = Some(7);
        assert_ne!(request_id("s1", &req("cat")), request_id("s1", &seeded));
    }

    #[test]
    fn a_quote_for_anyone_or_anything_else_is_refused() {
        let mut q = quote("0.04");
        q.pay_to = EVIL;
        let rule = |q: &Quote| match check_quote(q, &rules()) {
            Err(Refusal::Policy(r)) => r.rule(),
            other => panic!("not a policy refusal: {other:?}"),
        };
        assert_eq!(rule(&q), "pay_to");
        let mut q = quote("0.04");
        q.asset = EVIL;
        assert_eq!(rule(&q), "asset");
        let mut q = quote("0.04");
        q.network = Network::Base;
        assert_eq!(rule(&q), "network");
        assert_eq!(rule(&quote("0")), "amount");
        let mut q = quote("0.04");
        q.max_timeout_seconds = u64::MAX;
        assert_eq!(rule(&q), "max_timeout");
        assert_eq!(check_quote(&quote("0.04"), &rules()), Ok(()));
    }

    #[test]
    fn auto_approve_approval_and_budget() {
        let none: &[LedgerEntry] = &[];
        let budget = usdc("1.00");
        let d = |q: &str, a: Option<Approval>, now: u64| {
            decide(none, &quote(q), a, &rules(), budget, now)
        };
        assert_eq!(d("0.10", None, 0), Ok(Decision::Pay));
        assert_eq!(
            d("0.11", None, 0),
            Ok(Decision::NeedsConsent {
                amount: usdc("0.11"),
                auto_approve_max: usdc("0.10")
            })
        );
        // (quote, approval amount, approval expiry, now, pays?)
        let table: &[(&str, &str, u64, u64, bool)] = &[
            ("0.11", "0.11", 100, 99, true),   // approved, in time
            ("0.11", "0.11", 100, 100, false), // expired with its quote
            ("0.20", "0.11", 100, 50, false),  // re-quoted higher: not covered
            ("0.10", "0.50", 100, 500, true),  // within auto-approve anyway
            ("0.11", "0.50", 100, 50, true),   // re-quoted lower: covered
        ];
        for (q, a, exp, now, pays) in table {
            let got = d(q, approval(a, *exp), *now);
            assert_eq!(
                got == Ok(Decision::Pay),
                *pays,
                "quote {q}, approval {a} until {exp}, at {now}: {got:?}"
            );
        }
        // The budget binds even with approval; prepared-but-unsettled payments count.
        let spent = [
            prepared("a", "0.50"),
            prepared("b", "0.45"),
            prepared("b", "0.45"),
        ];
        assert_eq!(
            committed_spend(&spent),
            usdc("0.95"),
            "duplicates count once"
        );
        assert_eq!(
            decide(
                &spent,
                &quote("0.06"),
                approval("0.06", 9),
                &rules(),
                budget,
                0
            ),
            Err(Refusal::OverBudget {
                amount: usdc("0.06"),
                remaining: usdc("0.05"),
                budget
            })
        );
        assert_eq!(
            decide(&spent, &quote("0.05"), None, &rules(), budget, 0),
            Ok(Decision::Pay)
        );
        // A zero budget refuses everything.
        assert!(decide(none, &quote("0.01"), None, &rules(), Usdc::ZERO, 0).is_err());
    }

    #[test]
    fn approvals_bind_to_one_quoted_request_until_it_expires() {
        let id = "img-1";
        let mut ledger = vec![quoted(id, "0.20", "t1")];
        let r = rules();
        // The model alone can do nothing above the limit.
        let refused = check_approved(&ledger, id, &r, 10).unwrap_err();
        assert_eq!(refused.rule(), "approval_required");
        assert_eq!(
            refused.amount_and_limit(),
            (Some(usdc("0.20")), Some(usdc("0.10")))
        );
        // Another request id, an expired quote: refused.
        assert_eq!(
            approve(&ledger, "img-other", "t2", 10),
            Err(Refusal::NoQuote("img-other".into()))
        );
        assert_eq!(
            approve(&ledger, id, "t2", 1_000),
            Err(Refusal::QuoteExpired(id.into()))
        );
        let entry = approve(&ledger, id, "t2", 10).unwrap();
        assert_eq!(
            entry,
            LedgerEntry::Approved {
                request_id: id.into(),
                turn_id: "t2".into(),
                amount: usdc("0.20"),
                expires_at: 1_000
            }
        );
        ledger.push(entry);
        assert_eq!(
            check_approved(&ledger, id, &r, 10),
            Ok(Approval {
                amount: usdc("0.20"),
                expires_at: 1_000
            })
        );
        assert_eq!(
            check_approved(&ledger, id, &r, 1_000),
            Err(Refusal::QuoteExpired(id.into()))
        );
        // A later quote at a higher price is not covered by the approval.
        ledger.push(quoted(id, "0.30", "t3"));
        assert_eq!(
            check_approved(&ledger, id, &r, 10).unwrap_err().rule(),
            "approval_required"
        );
        // Declining clears it; legacy model consent is not honoured.
        ledger.push(quoted(id, "0.20", "t4"));
        assert!(check_approved(&ledger, id, &r, 10).is_ok());
        ledger.push(decline(&ledger, id, "t5").unwrap());
        assert!(check_approved(&ledger, id, &r, 10).is_err());
        ledger.push(LedgerEntry::Consented {
            request_id: id.into(),
            turn_id: "t6".into(),
            amount: usdc("0.20"),
        });
        assert!(check_approved(&ledger, id, &r, 10).is_err());
    }

    #[test]
    fn the_state_machine_moves_forward_only() {
        let id = "img-1";
        let mut ledger = vec![quoted(id, "0.20", "t1")];
        assert!(matches!(
            request_state(&ledger, id),
            RequestState::Quoted { approval: None, .. }
        ));
        ledger.push(approve(&ledger, id, "t2", 5).unwrap());
        assert!(matches!(
            request_state(&ledger, id),
            RequestState::Quoted { approval: Some(a), .. } if a.amount == usdc("0.20")
        ));
        ledger.push(prepared(id, "0.20"));
        let RequestState::Prepared { payment, request } = request_state(&ledger, id) else {
            panic!("prepared")
        };
        assert_eq!(request.prompt, "a cat");
        // A later quote or a second prepared payment never replaces the first.
        ledger.push(quoted(id, "0.01", "t3"));
        ledger.push(prepared(id, "0.01"));
        assert!(
            matches!(request_state(&ledger, id), RequestState::Prepared { payment: p, .. } if p == payment)
        );
        assert_eq!(
            approve(&ledger, id, "t4", 5),
            Err(Refusal::AlreadyPaid(id.into()))
        );
        ledger.push(LedgerEntry::Paid {
            request_id: id.into(),
            receipt: receipt(id, "0.20"),
        });
        ledger.push(LedgerEntry::Stored {
            request_id: id.into(),
            image: StoredImage {
                image_id: "i1".into(),
                key: "k".into(),
                url: "file:///k".into(),
                prompt: "a cat".into(),
            },
        });
        assert!(matches!(
            request_state(&ledger, id),
            RequestState::Stored {
                receipt: Some(_),
                ..
            }
        ));
        assert_eq!(settled_spend(&ledger), usdc("0.20"));
        assert_eq!(committed_spend(&ledger), usdc("0.20"));
        assert_eq!(images(&ledger).len(), 1);
    }

    #[test]
    fn a_payment_session_is_reused_until_it_expires_or_the_budget_changes() {
        let open = |id: &str, expires_at: u64, budget: &str| LedgerEntry::PaymentSession {
            session: PaymentSession {
                payment_session_id: id.into(),
                max_spend: usdc(budget),
                expires_at,
            },
            budget: usdc(budget),
        };
        let mut ledger = vec![quoted("img-1", "0.04", "t1")];
        assert_eq!(payment_session(&ledger, 100, usdc("1.00")), None);
        ledger.push(open("ps-1", 10_000, "1.00"));
        let found = |l: &[LedgerEntry], now, b| {
            payment_session(l, now, usdc(b)).map(|s| s.payment_session_id.clone())
        };
        assert_eq!(found(&ledger, 100, "1.00").as_deref(), Some("ps-1"));
        assert_eq!(found(&ledger, 9_990, "1.00"), None, "about to expire");
        assert_eq!(found(&ledger, 100, "2.00"), None, "another budget");
        ledger.push(open("ps-2", 20_000, "1.00"));
        assert_eq!(found(&ledger, 9_990, "1.00").as_deref(), Some("ps-2"));
        assert_eq!(payment_sessions_opened(&ledger), 2);
        // Sessions and service refusals never move a request's state.
        ledger.push(LedgerEntry::ServiceRefused {
            request_id: "img-1".into(),
            turn_id: "t1".into(),
            rule: "agentcore_session_limit".into(),
            amount: usdc("0.04"),
            limit: Some(usdc("0.01")),
            reason: "over".into(),
        });
        assert!(matches!(
            request_state(&ledger, "img-1"),
            RequestState::Quoted { .. }
        ));
        assert_eq!(committed_spend(&ledger), Usdc::ZERO);
    }

    #[test]
    fn entries_round_trip_and_never_print_the_payment() {
        let e = prepared("x", "0.04");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "prepared");
        assert_eq!(serde_json::from_value::<LedgerEntry>(json).unwrap(), e);
        assert!(!format!("{e:?}").contains("secret"));
    }
}
