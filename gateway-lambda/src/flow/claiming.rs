//! Step 3 of the paid flow: claim `(payer, nonce)` for this request, or find
//! out what became of it before ([`claim::decide`]).

use axum::http::StatusCode;

use super::{CAS_ATTEMPTS, Claimed, Held, Outcome, Sale, burnt, in_progress, now, store_error};
use crate::{
    claim::{self, Claim},
    error::ApiError,
    payment,
    store::{PaymentRecord, PaymentState},
};

/// Claims `(payer, nonce)` for this request, or finds out what happened to
/// it before ([`claim::decide`]).
pub(super) async fn claim_payment(sale: &Sale<'_>, out: &mut Outcome) -> Result<Claimed, ApiError> {
    let Sale {
        s,
        payment,
        offered,
        key,
        fingerprint,
    } = sale;
    for _ in 0..CAS_ATTEMPTS {
        let current = s
            .payments
            .get(key)
            .await
            .map_err(|e| store_error(out, &e))?;
        let t = now();
        let (expected, state) = match claim::decide(current.as_ref(), fingerprint, t) {
            Claim::Replay => {
                let Some(PaymentRecord {
                    state:
                        PaymentState::Settled {
                            result_key,
                            settlement,
                        },
                    ..
                }) = current
                else {
                    unreachable!("decide replays only settled records")
                };
                return Ok(Claimed::Replay {
                    result_key,
                    settlement,
                });
            }
            Claim::Burnt { reason } => {
                out.refused("payment_not_received");
                return Err(burnt(offered, &reason));
            }
            Claim::Reused => {
                out.refused("payment_reused");
                return Err(ApiError::invalid(
                    StatusCode::CONFLICT,
                    "payment_reused",
                    "this payment was already used for another request",
                ));
            }
            Claim::Busy => {
                out.refused("payment_in_progress");
                return Err(in_progress(s));
            }
            Claim::Resume { version } => {
                let Some(PaymentRecord {
                    state: PaymentState::Settling { result_key, tx, .. },
                    ..
                }) = current
                else {
                    unreachable!("decide resumes only settling records")
                };
                let next = sale.record(
                    PaymentState::Settling {
                        result_key: result_key.clone(),
                        lease_until: t + s.lease.as_secs(),
                        tx: tx.clone(),
                    },
                    version + 1,
                );
                if s.payments
                    .put_if(key, Some(version), &next)
                    .await
                    .map_err(|e| store_error(out, &e))?
                {
                    return Ok(Claimed::Resume(Held {
                        version: next.version,
                        result_key,
                        tx: tx.and_then(|t| t.parse().ok()),
                    }));
                }
                continue;
            }
            Claim::New => (
                None,
                PaymentState::InFlight {
                    lease_until: t + s.lease.as_secs(),
                },
            ),
            Claim::Restart { version } => (
                Some(version),
                PaymentState::InFlight {
                    lease_until: t + s.lease.as_secs(),
                },
            ),
        };
        // A new claim: the payment must still be settleable.
        payment::check_window(payment, t).map_err(|r| {
            out.refused(r.code);
            ApiError::refusal(offered, r)
        })?;
        let version = expected.map_or(1, |v| v + 1);
        let rec = sale.record(state, version);
        if s.payments
            .put_if(key, expected, &rec)
            .await
            .map_err(|e| store_error(out, &e))?
        {
            return Ok(Claimed::Fresh(version));
        }
    }
    out.refused("contention");
    Err(in_progress(s))
}
