//! Whether a payment may be made: a pure function of the seller's quote,
//! configuration and what the user authorised. The model decides *what* to
//! buy; this decides *whether* paying for it is allowed. Nothing is signed
//! unless [`check`] says yes.

pub mod caps;

use alloy::primitives::Address;
use x402::{Network, Usdc};

/// Default for [`PaymentPolicy::max_timeout_seconds`]: ten minutes. The
/// seller's `maxTimeoutSeconds` becomes the authorization's `validBefore`,
/// i.e. how long a signed payment can still be settled by whoever holds it.
/// Our gateway asks 300 s; a seller asking for more than this is refused.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u64 = 600;

/// Fixed by configuration, never by the model or the seller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentPolicy {
    pub network: Network,
    /// The USDC contract payments may be made in.
    pub asset: Address,
    /// Who may be paid (default: just `SELLER_WALLET`).
    pub allowed_pay_to: Vec<Address>,
    /// The longest validity window a seller may ask for (its
    /// `maxTimeoutSeconds`); default [`DEFAULT_MAX_TIMEOUT_SECONDS`].
    pub max_timeout_seconds: u64,
}

impl PaymentPolicy {
    /// Payments on `network` in `asset` to one of `allowed_pay_to`, with the
    /// default timeout cap.
    pub fn new(network: Network, asset: Address, allowed_pay_to: Vec<Address>) -> Self {
        PaymentPolicy {
            network,
            asset,
            allowed_pay_to,
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
        }
    }
}

/// What this payment may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most the caller authorised for this one request.
    pub authorised: Usdc,
    /// Already committed in this session (settled or possibly settling).
    pub spent: Usdc,
    /// The session's budget.
    pub budget: Usdc,
}

impl Limits {
    /// One payment of at most `max`, no session around it (the CLI).
    pub fn single(max: Usdc) -> Limits {
        Limits {
            authorised: max,
            spent: Usdc::ZERO,
            budget: max,
        }
    }
}

/// What a seller asks, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    pub network: Network,
    pub asset: Address,
    pub pay_to: Address,
    pub amount: Usdc,
    /// How long the signed authorization would stay valid (seconds).
    pub max_timeout_seconds: u64,
}

/// Why a payment was refused: the rule, what was asked and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyRefusal {
    #[error("network: the seller asks {amount} USDC on {asked}, only {allowed} is allowed")]
    Network {
        asked: Network,
        allowed: Network,
        amount: Usdc,
    },
    #[error("asset: the seller asks {amount} in token {asked}, only {allowed} is allowed")]
    Asset {
        asked: Address,
        allowed: Address,
        amount: Usdc,
    },
    #[error("payee: the seller asks {amount} USDC paid to {asked}, which is not an allowed payee")]
    PayTo { asked: Address, amount: Usdc },
    #[error(
        "authorised amount: the seller asks {asked} USDC, more than the {limit} USDC authorised for this request"
    )]
    OverAuthorised { asked: Usdc, limit: Usdc },
    #[error(
        "session budget: {asked} USDC more would make {total} USDC, over the budget of {budget} USDC ({spent} USDC already spent)"
    )]
    OverBudget {
        asked: Usdc,
        spent: Usdc,
        total: Usdc,
        budget: Usdc,
    },
    #[error("amount: the seller asks for a zero payment")]
    Zero,
    #[error(
        "max timeout: the seller asks {amount} USDC with an authorization valid for {asked} s, longer than the {limit} s allowed"
    )]
    Timeout {
        asked: u64,
        limit: u64,
        amount: Usdc,
    },
}

impl PolicyRefusal {
    /// Short stable name of the rule that refused.
    pub fn rule(&self) -> &'static str {
        match self {
            PolicyRefusal::Network { .. } => "network",
            PolicyRefusal::Asset { .. } => "asset",
            PolicyRefusal::PayTo { .. } => "pay_to",
            PolicyRefusal::OverAuthorised { .. } => "authorised_amount",
            PolicyRefusal::OverBudget { .. } => "session_budget",
            PolicyRefusal::Zero => "amount",
            PolicyRefusal::Timeout { .. } => "max_timeout",
        }
    }
}

/// Allows `ask` under `policy` and `limits`, or names the rule that refuses.
pub fn check(policy: &PaymentPolicy, ask: &Ask, limits: &Limits) -> Result<(), PolicyRefusal> {
    if ask.network != policy.network {
        return Err(PolicyRefusal::Network {
            asked: ask.network,
            allowed: policy.network,
            amount: ask.amount,
        });
    }
    if ask.asset != policy.asset {
        return Err(PolicyRefusal::Asset {
            asked: ask.asset,
            allowed: policy.asset,
            amount: ask.amount,
        });
    }
    if !policy.allowed_pay_to.contains(&ask.pay_to) {
        return Err(PolicyRefusal::PayTo {
            asked: ask.pay_to,
            amount: ask.amount,
        });
    }
    if ask.amount == Usdc::ZERO {
        return Err(PolicyRefusal::Zero);
    }
    // A long window leaves a signed payment redeemable long after the
    // request is over (and `now + u64::MAX` overflows).
    if ask.max_timeout_seconds > policy.max_timeout_seconds {
        return Err(PolicyRefusal::Timeout {
            asked: ask.max_timeout_seconds,
            limit: policy.max_timeout_seconds,
            amount: ask.amount,
        });
    }
    if ask.amount > limits.authorised {
        return Err(PolicyRefusal::OverAuthorised {
            asked: ask.amount,
            limit: limits.authorised,
        });
    }
    // Overflow of u64 micro-USDC is over any budget.
    let total = limits.spent.checked_add(ask.amount);
    if total.is_none_or(|t| t > limits.budget) {
        return Err(PolicyRefusal::OverBudget {
            asked: ask.amount,
            spent: limits.spent,
            total: total.unwrap_or(Usdc::from_atomic(u64::MAX)),
            budget: limits.budget,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;

    use super::*;

    const SELLER: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

    fn policy() -> PaymentPolicy {
        PaymentPolicy::new(
            Network::BaseSepolia,
            x402::network::BASE_SEPOLIA_USDC,
            vec![SELLER],
        )
    }

    fn ask(amount: u64) -> Ask {
        Ask {
            network: Network::BaseSepolia,
            asset: x402::network::BASE_SEPOLIA_USDC,
            pay_to: SELLER,
            amount: Usdc::from_atomic(amount),
            max_timeout_seconds: 300,
        }
    }

    fn limits(authorised: u64, spent: u64, budget: u64) -> Limits {
        Limits {
            authorised: Usdc::from_atomic(authorised),
            spent: Usdc::from_atomic(spent),
            budget: Usdc::from_atomic(budget),
        }
    }

    #[test]
    fn within_every_limit_is_allowed() {
        assert_eq!(
            check(&policy(), &ask(40_000), &limits(40_000, 960_000, 1_000_000)),
            Ok(())
        );
    }

    #[test]
    fn each_rule_refuses_and_says_why() {
        let p = policy();
        let l = limits(100_000, 0, 1_000_000);
        let mut a = ask(40_000);
        a.network = Network::Base;
        assert_eq!(check(&p, &a, &l).unwrap_err().rule(), "network");
        let mut a = ask(40_000);
        a.asset = x402::network::BASE_USDC;
        assert_eq!(check(&p, &a, &l).unwrap_err().rule(), "asset");
        let mut a = ask(40_000);
        a.pay_to = Address::repeat_byte(9);
        assert_eq!(check(&p, &a, &l).unwrap_err().rule(), "pay_to");
        let e = check(&p, &ask(100_001), &l).unwrap_err();
        assert_eq!(e.rule(), "authorised_amount");
        assert_eq!(
            e.to_string(),
            "authorised amount: the seller asks 0.100001 USDC, more than the 0.10 USDC authorised for this request"
        );
        assert_eq!(check(&p, &ask(0), &l).unwrap_err().rule(), "amount");
    }

    #[test]
    fn the_authorization_window_is_capped() {
        let p = policy();
        let l = limits(100_000, 0, 1_000_000);
        let at = |secs: u64| Ask {
            max_timeout_seconds: secs,
            ..ask(40_000)
        };
        assert_eq!(check(&p, &at(DEFAULT_MAX_TIMEOUT_SECONDS), &l), Ok(()));
        let e = check(&p, &at(DEFAULT_MAX_TIMEOUT_SECONDS + 1), &l).unwrap_err();
        assert_eq!(e.rule(), "max_timeout");
        assert_eq!(
            e.to_string(),
            "max timeout: the seller asks 0.04 USDC with an authorization valid for 601 s, longer than the 600 s allowed"
        );
        // The value that would overflow `now + timeout`.
        let e = check(&p, &at(u64::MAX), &l).unwrap_err();
        assert_eq!(e.rule(), "max_timeout");
        // Configurable.
        let strict = PaymentPolicy {
            max_timeout_seconds: 60,
            ..policy()
        };
        assert_eq!(
            check(&strict, &at(61), &l).unwrap_err().rule(),
            "max_timeout"
        );
    }

    #[test]
    fn the_budget_is_cumulative_and_exact_at_the_sixth_decimal() {
        let p = policy();
        // Exactly reaching the budget is allowed; one micro-USDC over is not.
        assert_eq!(
            check(&p, &ask(40_000), &limits(40_000, 960_000, 1_000_000)),
            Ok(())
        );
        let e = check(&p, &ask(40_001), &limits(50_000, 960_000, 1_000_000)).unwrap_err();
        assert_eq!(e.rule(), "session_budget");
        assert!(e.to_string().contains("1.000001"), "{e}");
        // No overflow into a pass.
        let e = check(&p, &ask(1), &limits(1, u64::MAX, u64::MAX)).unwrap_err();
        assert_eq!(e.rule(), "session_budget");
    }
}
