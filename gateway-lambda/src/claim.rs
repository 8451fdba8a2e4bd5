//! Claim or replay: what a request carrying a payment may do, given the
//! payment's record (see [`crate::store`] for the states). Pure; the clock
//! is an argument.
//!
//! The record is read *before* anything that changes with time: a payment
//! that was settled stays redeemable for its request as long as its record
//! is kept, even after the authorization's `validBefore` (the buyer's answer
//! may have been lost; it paid, so it gets the content). Only a payment that
//! needs a new claim is held to its time window.

use crate::store::{PaymentRecord, PaymentState};

/// The decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// No record: claim it (the time window applies).
    New,
    /// Settled for this very request: answer with the kept result.
    Replay,
    /// Recorded as used on chain without paying us: refused for good.
    Burnt { reason: String },
    /// The payment pays for another request.
    Reused,
    /// Another request holds it and its lease runs.
    Busy,
    /// Its holder gave up before the content was kept: start over under a
    /// new lease (the time window applies).
    Restart { version: u64 },
    /// Content kept, settlement outcome unknown: take it over and find out
    /// (the chain decides, not the clock).
    Resume { version: u64 },
}

/// Decides for a request for `fingerprint` at unix time `now`.
pub fn decide(current: Option<&PaymentRecord>, fingerprint: &str, now: u64) -> Claim {
    let Some(rec) = current else {
        return Claim::New;
    };
    if rec.fingerprint != fingerprint {
        return Claim::Reused;
    }
    match &rec.state {
        PaymentState::Settled { .. } => Claim::Replay,
        PaymentState::Refused { reason, .. } => Claim::Burnt {
            reason: reason.clone(),
        },
        _ if !rec.lease_expired(now) => Claim::Busy,
        PaymentState::InFlight { .. } => Claim::Restart {
            version: rec.version,
        },
        PaymentState::Settling { .. } => Claim::Resume {
            version: rec.version,
        },
    }
}

#[cfg(test)]
mod tests {
    use x402::wire::SettleResponse;

    use super::*;

    fn rec(fingerprint: &str, state: PaymentState) -> PaymentRecord {
        PaymentRecord {
            fingerprint: fingerprint.into(),
            state,
            version: 3,
            expires_at: 0,
        }
    }

    #[test]
    fn the_record_decides_before_the_clock() {
        let settled = PaymentState::Settled {
            result_key: "k".into(),
            settlement: SettleResponse {
                success: true,
                error_reason: None,
                payer: None,
                transaction: "0x1".into(),
                network: "base-sepolia".into(),
            },
        };
        let refused = PaymentState::Refused {
            reason: "canceled".into(),
            tx: None,
        };
        let in_flight = PaymentState::InFlight { lease_until: 100 };
        let settling = PaymentState::Settling {
            result_key: "k".into(),
            lease_until: 100,
            tx: None,
        };
        let far_future = u64::MAX;
        let cases: Vec<(&str, Option<PaymentRecord>, u64, Claim)> = vec![
            ("no record", None, 50, Claim::New),
            (
                "settled, this request, long after",
                Some(rec("f", settled.clone())),
                far_future,
                Claim::Replay,
            ),
            (
                "settled, another request",
                Some(rec("g", settled)),
                50,
                Claim::Reused,
            ),
            (
                "refused for good, even after",
                Some(rec("f", refused)),
                far_future,
                Claim::Burnt {
                    reason: "canceled".into(),
                },
            ),
            (
                "in flight, lease runs",
                Some(rec("f", in_flight.clone())),
                99,
                Claim::Busy,
            ),
            (
                "in flight, lease over",
                Some(rec("f", in_flight)),
                100,
                Claim::Restart { version: 3 },
            ),
            (
                "settling, lease runs",
                Some(rec("f", settling.clone())),
                99,
                Claim::Busy,
            ),
            (
                "settling, lease over",
                Some(rec("f", settling)),
                far_future,
                Claim::Resume { version: 3 },
            ),
        ];
        for (name, current, now, want) in cases {
            assert_eq!(decide(current.as_ref(), "f", now), want, "{name}");
        }
    }
}
