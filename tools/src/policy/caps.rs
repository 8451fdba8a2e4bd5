//! Daily spending caps across sessions: how much one user, and the whole
//! wallet, may commit in one UTC day. A pure decision over what is already
//! committed; the agent's store applies the same rule atomically (a
//! conditional write that reserves the amount), so concurrent sessions can
//! never together pass a cap that each alone would respect.
//!
//! "Committed" means reserved before signing: a reservation is released only
//! when the seller refused the payment (it cannot settle), so the caps are
//! conservative like the session budget.

use x402::Usdc;

/// Configured caps (`USER_DAILY_CAP_USDC`, `WALLET_DAILY_CAP_USDC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCaps {
    /// Per user (AgentCore user id / Memory actor), per UTC day.
    pub per_user: Usdc,
    /// For the whole wallet (all users), per UTC day.
    pub wallet: Usdc,
}

/// What is already committed today.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    pub user: Usdc,
    pub wallet: Usdc,
}

/// Which cap refused a payment, the amount asked, what was already committed
/// and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapRefusal {
    #[error(
        "user daily cap: {amount} USDC more would pass your daily limit of {limit} USDC ({committed} USDC already committed today)"
    )]
    User {
        amount: Usdc,
        committed: Usdc,
        limit: Usdc,
    },
    #[error(
        "wallet daily cap: {amount} USDC more would pass the wallet's daily limit of {limit} USDC ({committed} USDC already committed today by all users)"
    )]
    Wallet {
        amount: Usdc,
        committed: Usdc,
        limit: Usdc,
    },
}

impl CapRefusal {
    /// Short stable name of the rule that refused.
    pub fn rule(&self) -> &'static str {
        match self {
            CapRefusal::User { .. } => "user_daily_cap",
            CapRefusal::Wallet { .. } => "wallet_daily_cap",
        }
    }

    pub fn amount(&self) -> Usdc {
        match self {
            CapRefusal::User { amount, .. } | CapRefusal::Wallet { amount, .. } => *amount,
        }
    }

    pub fn limit(&self) -> Usdc {
        match self {
            CapRefusal::User { limit, .. } | CapRefusal::Wallet { limit, .. } => *limit,
        }
    }
}

/// The most that may already be committed for `amount` more to fit under
/// `limit`; `None` when `amount` alone is over it. A store turns this into
/// its condition (`spent <= :max_prior`), since conditions cannot add.
pub fn max_prior(amount: Usdc, limit: Usdc) -> Option<Usdc> {
    (amount <= limit).then(|| limit.saturating_sub(amount))
}

/// Allows `amount` more under both caps, or names the one that refuses
/// (the user's first). Reaching a cap exactly is allowed.
pub fn check_caps(amount: Usdc, committed: Committed, caps: &DailyCaps) -> Result<(), CapRefusal> {
    if max_prior(amount, caps.per_user).is_none_or(|m| committed.user > m) {
        return Err(CapRefusal::User {
            amount,
            committed: committed.user,
            limit: caps.per_user,
        });
    }
    if max_prior(amount, caps.wallet).is_none_or(|m| committed.wallet > m) {
        return Err(CapRefusal::Wallet {
            amount,
            committed: committed.wallet,
            limit: caps.wallet,
        });
    }
    Ok(())
}

/// The UTC day of a unix time, `YYYY-MM-DD`: the caps' period.
pub fn utc_day(unix_secs: u64) -> String {
    // Civil-from-days (Howard Hinnant), valid for all dates after 1970.
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Usdc {
        s.parse().unwrap()
    }

    fn caps() -> DailyCaps {
        DailyCaps {
            per_user: u("1.00"),
            wallet: u("5.00"),
        }
    }

    #[test]
    fn caps_table() {
        // (amount, user committed, wallet committed, expected rule or None)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("0.04", "0", "0", None),
            ("0.04", "0.96", "0.96", None), // exactly at the user cap
            ("0.04", "0.960001", "1", Some("user_daily_cap")),
            ("1.000001", "0", "0", Some("user_daily_cap")), // alone over it
            ("0.50", "0", "4.50", None),                    // exactly at the wallet cap
            ("0.50", "0", "4.500001", Some("wallet_daily_cap")),
            ("0.50", "0.60", "4.80", Some("user_daily_cap")), // the user's first
            ("0", "1.00", "5.00", None),
        ];
        for (amount, user, wallet, expected) in cases {
            let got = check_caps(
                u(amount),
                Committed {
                    user: u(user),
                    wallet: u(wallet),
                },
                &caps(),
            );
            assert_eq!(
                got.as_ref().err().map(CapRefusal::rule),
                *expected,
                "{amount} on {user}/{wallet}: {got:?}"
            );
        }
    }

    #[test]
    fn refusals_name_the_rule_the_amount_and_the_limit() {
        let e = check_caps(
            u("0.50"),
            Committed {
                user: u("0.60"),
                wallet: u("0.60"),
            },
            &caps(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "user daily cap: 0.50 USDC more would pass your daily limit of 1.00 USDC (0.60 USDC already committed today)"
        );
        assert_eq!((e.amount(), e.limit()), (u("0.50"), u("1.00")));
        assert_eq!(max_prior(u("0.40"), u("1.00")), Some(u("0.60")));
        assert_eq!(max_prior(u("1.01"), u("1.00")), None);
    }

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(86_399), "1970-01-01");
        assert_eq!(utc_day(86_400), "1970-01-02");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_798_761_599), "2026-12-31");
        assert_eq!(utc_day(1_798_761_600), "2027-01-01");
    }
}
