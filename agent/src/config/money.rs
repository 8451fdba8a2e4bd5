//! The money limits: session budget, auto-approval, daily caps, quote and
//! authorization lifetimes.

use plumbing::env::Env;
use x402::Usdc;

use super::positive;

pub const DEFAULT_SESSION_BUDGET: Usdc = Usdc::from_atomic(1_000_000);
pub const DEFAULT_AUTO_APPROVE_MAX: Usdc = Usdc::from_atomic(100_000);
/// The most a caller may set as a session budget in the invocation payload.
pub const DEFAULT_MAX_SESSION_BUDGET: Usdc = Usdc::from_atomic(10_000_000);
/// What one user may commit per UTC day, across all their sessions.
pub const DEFAULT_USER_DAILY_CAP: Usdc = Usdc::from_atomic(10_000_000);
/// What the wallet may commit per UTC day, across all users.
pub const DEFAULT_WALLET_DAILY_CAP: Usdc = Usdc::from_atomic(100_000_000);
/// How long a quote (and so an approval of it) stays valid.
pub const DEFAULT_QUOTE_TTL_SECONDS: u64 = 300;

/// Money limits. The model can change none of them; the caller may set the
/// session budget (up to `max_session_budget`) in the invocation payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyConfig {
    /// `SESSION_BUDGET_USDC`, default 1.00: cumulative spend limit per session.
    pub session_budget: Usdc,
    /// `AUTO_APPROVE_MAX_USDC`, default 0.10: an image up to this price is
    /// paid without asking the user (if the budget allows).
    pub auto_approve_max: Usdc,
    /// `MAX_SESSION_BUDGET_USDC`, default 10.00: the highest budget a caller
    /// may request per invocation (`session_budget_usdc`); above it, 400.
    pub max_session_budget: Usdc,
    /// `USER_DAILY_CAP_USDC`, default 10.00: what one user may commit per
    /// UTC day across all their sessions.
    pub user_daily_cap: Usdc,
    /// `WALLET_DAILY_CAP_USDC`, default 100.00: what the wallet may commit
    /// per UTC day across all users.
    pub wallet_daily_cap: Usdc,
    /// `QUOTE_TTL_SECONDS`, default 300: how long a quote that needs the
    /// user's approval, and the approval itself, stay valid.
    pub quote_ttl_seconds: u64,
    /// `MAX_PAYMENT_TIMEOUT_SECONDS`, default 600: the longest authorization
    /// window (the seller's `maxTimeoutSeconds`) the agent signs.
    pub max_payment_timeout_seconds: u64,
}

pub(super) fn money(env: &mut Env) -> MoneyConfig {
    let money = MoneyConfig {
        session_budget: env.parse_or("SESSION_BUDGET_USDC", DEFAULT_SESSION_BUDGET),
        auto_approve_max: env.parse_or("AUTO_APPROVE_MAX_USDC", DEFAULT_AUTO_APPROVE_MAX),
        max_session_budget: env.parse_or("MAX_SESSION_BUDGET_USDC", DEFAULT_MAX_SESSION_BUDGET),
        user_daily_cap: env.parse_or("USER_DAILY_CAP_USDC", DEFAULT_USER_DAILY_CAP),
        wallet_daily_cap: env.parse_or("WALLET_DAILY_CAP_USDC", DEFAULT_WALLET_DAILY_CAP),
        quote_ttl_seconds: positive(env, "QUOTE_TTL_SECONDS", DEFAULT_QUOTE_TTL_SECONDS),
        max_payment_timeout_seconds: env.parse_or(
            "MAX_PAYMENT_TIMEOUT_SECONDS",
            tools::policy::DEFAULT_MAX_TIMEOUT_SECONDS,
        ),
    };
    if money.session_budget > money.max_session_budget {
        env.problem(format!(
            "SESSION_BUDGET_USDC ({}) is above MAX_SESSION_BUDGET_USDC ({})",
            money.session_budget, money.max_session_budget
        ));
    }
    money
}
