//! Who may make the agent spend, across sessions: which user owns a session
//! id, and how much each user and the whole wallet committed today.
//!
//! One port, [`AccessStore`], implemented by DynamoDB (AWS, every runtime
//! microVM sees the same counters: `dynamodb.rs`) and by a local file (one
//! process: `local.rs`).
//!
//! **Session owners.** The first user to use a session id owns it
//! ([`AccessStore::claim_session`], a conditional insert). Another user
//! presenting that id is refused before any turn runs: they get no data and
//! cause no spending. Session state is also stored under the user (the
//! Memory actor), so even a bug here would show them an empty session.
//!
//! **Daily caps.** Before a payment is signed, its amount is *reserved*
//! against the user's and the wallet's counters for the UTC day
//! ([`AccessStore::reserve`]): in one atomic step, both counters grow only
//! if each stays within its cap ([`crate::policy::caps`], the same rule),
//! and a reservation record keyed by the request makes a retry of the same
//! request reserve nothing more. Concurrent sessions therefore cannot pass a
//! cap together. A reservation is released ([`AccessStore::release`]) only
//! when the payment can no longer settle (signing failed, or the seller
//! refused it); otherwise it stays, settled or not: conservative, like the
//! session budget.
//!
//! ```text
//! quote ─▶ reserve(user+wallet, amount) ─▶ sign ─▶ ledger: prepared ─▶ send
//!               │ over a cap: refused,               │ refused by the seller
//!               ▼ nothing signed                     ▼
//!           refusal event                      release(reservation)
//! ```

pub mod dynamodb;
pub mod local;

use crate::policy::caps::{CapRefusal, DailyCaps};
use alloy::primitives::Address;
use async_trait::async_trait;
use x402::Usdc;

/// One payment's claim on the daily caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Stable per paid request (actor and ledger request id): a retry of the
    /// same request finds its reservation instead of adding another.
    pub id: String,
    pub user: String,
    /// The paying wallet (all users share its cap).
    pub wallet: Address,
    /// UTC day, `YYYY-MM-DD` ([`crate::policy::caps::utc_day`]).
    pub day: String,
    pub amount: Usdc,
}

impl Reservation {
    pub fn new(user: &str, request_id: &str, wallet: Address, now: u64, amount: Usdc) -> Self {
        Reservation {
            // '\n' never occurs in a valid id: no collisions between users.
            id: format!("{user}\n{request_id}"),
            user: user.to_owned(),
            wallet,
            day: crate::policy::caps::utc_day(now),
            amount,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// Over a cap: nothing was reserved.
    #[error(transparent)]
    Cap(#[from] CapRefusal),
    #[error("spending store unavailable: {0}")]
    Unavailable(String),
}

/// Whether a session id may be used by this user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// New, or already this user's.
    Owned,
    /// Another user's: refuse without running anything.
    OtherUser,
}

/// Durable, shared across sessions (and, for DynamoDB, across processes).
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Makes `user` the owner of `session` if nobody is; says whose it is.
    async fn claim_session(&self, user: &str, session: &str) -> Result<Claim, AccessError>;

    /// Reserves `r.amount` against the user's and the wallet's caps for
    /// `r.day`, atomically; `Ok` without reserving again when `r.id` is
    /// already reserved.
    async fn reserve(&self, r: &Reservation, caps: &DailyCaps) -> Result<(), AccessError>;

    /// Gives a reservation back (the payment cannot settle). Releasing one
    /// that is not (or no longer) reserved does nothing.
    async fn release(&self, r: &Reservation) -> Result<(), AccessError>;

    /// What the user and the wallet committed on `day` (for display and tests).
    async fn committed(
        &self,
        user: &str,
        wallet: Address,
        day: &str,
    ) -> Result<crate::policy::caps::Committed, AccessError>;
}
