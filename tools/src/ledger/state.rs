//! Where a request stands and what the session has spent: folds over the
//! ledger's entries, in order.

use x402::{Usdc, catalog::ImageRequest};

use super::{Approval, LedgerEntry, PreparedPayment, Quote, StoredImage};
use crate::{progress::PaymentReceipt, signer::agentcore::PaymentSession};

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
                    quote: quote.as_ref().clone(),
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
