//! The money rules of one request: whether a quote may be paid, and how
//! consent is recorded and checked. Pure functions over the ledger.

use alloy::primitives::Address;
use x402::{Network, Usdc};

use super::{LedgerEntry, Quote, RequestState, committed_spend, request_state};
use crate::policy::{self, Limits, PaymentPolicy, PolicyRefusal, caps::CapRefusal};

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
    /// Wrong payee, asset or network, a zero price or too long a window.
    #[error("refused by the payment policy: {0}")]
    Policy(#[from] PolicyRefusal),
    /// The policy's budget rule ([`PolicyRefusal::OverBudget`]), in the
    /// words the user and the model see.
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

/// Refuses a quote that would pay anyone or anything but what configuration
/// allows, before any budget applies (an estimate); [`decide`] checks the
/// same policy with the session's budget and spend.
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
    // The budget is the payment policy's rule, fed what the session has
    // committed (every prepared payment, settled or not).
    let limits = Limits {
        authorised: quote.amount,
        spent: committed_spend(entries),
        budget,
    };
    policy::check(&rules.policy(), &quote.ask(), &limits).map_err(|r| match r {
        PolicyRefusal::OverBudget {
            asked,
            spent,
            budget,
            ..
        } => Refusal::OverBudget {
            amount: asked,
            remaining: budget.saturating_sub(spent),
            budget,
        },
        other => Refusal::Policy(other),
    })?;
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
