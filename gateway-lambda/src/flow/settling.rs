//! Step 7b of the paid flow: `/settle`, the proof on chain, and what
//! [`settlement::next`] decides: deliver, refuse for good, release, or keep
//! for a retry that asks the chain first.

use std::time::{Duration, Instant};

use alloy::primitives::B256;
use axum::{
    Json,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use x402::wire::{self, SettleResponse};

use super::{Held, Outcome, RECEIPT_READS, Sale, burnt, millis_since, now, producing::unreserve};
use crate::{
    chain::{Fate, Head},
    error::ApiError,
    settlement::{self, Expected, Judgement, Known, Next, Onchain},
    store::PaymentState,
};

/// `/settle`, then the proof, then what [`settlement::next`] decides.
pub(super) async fn settle(
    sale: &Sale<'_>,
    held: Held,
    out: &mut Outcome,
) -> Result<Response, ApiError> {
    let Sale { s, payment, .. } = sale;
    let known_tx = held.tx;
    let t = Instant::now();
    let answer = s
        .facilitator
        .settle(&payment.payload, &payment.requirements)
        .await;
    out.settle_ms = millis_since(t);
    let named = |r: &SettleResponse| r.transaction.parse::<B256>().ok();
    let (tx, success, clear_failure, why) = match &answer {
        Ok(r) => (
            named(r).or(known_tx),
            r.success,
            !r.success,
            r.error_reason
                .clone()
                .unwrap_or_else(|| "settlement failed".into()),
        ),
        Err(e) => (known_tx, false, !e.is_indeterminate(), e.to_string()),
    };
    if !success {
        tracing::warn!(reason = %why, "settlement did not plainly succeed; asking the chain");
    }
    let (onchain, next) = prove(sale, tx, success, out).await;
    if next == Next::Keep {
        out.reason = why;
    }
    let told_failed = clear_failure && matches!(onchain, Onchain::Unused { .. });
    conclude(sale, Held { tx, ..held }, next, told_failed, out).await
}

/// What the chain says about the payment ([`establish`]) and what to do
/// about it ([`settlement::next`]); the time spent is the request's proof
/// time. The head is read only when the nonce is unused: nothing else needs
/// the clock.
pub(super) async fn prove(
    sale: &Sale<'_>,
    tx: Option<B256>,
    reported_mined: bool,
    out: &mut Outcome,
) -> (Onchain, Next) {
    let t = Instant::now();
    let onchain = establish(sale, tx, reported_mined).await;
    let head = match onchain {
        Onchain::Unused { .. } => sale.s.chain.head().await.ok(),
        _ => None,
    };
    out.proof_ms += millis_since(t);
    let next = decide_next(sale, &onchain, head);
    (onchain, next)
}

fn decide_next(sale: &Sale<'_>, onchain: &Onchain, head: Option<Head>) -> Next {
    let (s, p) = (sale.s, sale.payment);
    match head {
        Some(head) => settlement::next(onchain, p.valid_before, head, s.confirmations),
        // Without the head nothing can be released; the rest needs no clock.
        None => settlement::next(
            onchain,
            p.valid_before,
            Head {
                number: 0,
                timestamp: 0,
            },
            u64::MAX,
        ),
    }
}

/// Carries out a [`Next`] for the `Settling` record this request holds.
/// `told_failed`: the facilitator clearly failed and the nonce is unused, so
/// the buyer is told `402` rather than "unknown" when the record is kept.
pub(super) async fn conclude(
    sale: &Sale<'_>,
    held: Held,
    next: Next,
    told_failed: bool,
    out: &mut Outcome,
) -> Result<Response, ApiError> {
    let Sale {
        s,
        payment,
        offered,
        key,
        ..
    } = sale;
    let Held {
        version,
        result_key,
        tx,
    } = held;
    let result_key = result_key.as_str();
    match next {
        Next::Deliver { tx } => {
            let tx = format!("{tx:#x}");
            let done = sale.record(
                PaymentState::Settled {
                    result_key: result_key.into(),
                    settlement: SettleResponse {
                        success: true,
                        error_reason: None,
                        payer: Some(payment.payer.to_checksum(None)),
                        transaction: tx.clone(),
                        network: s.seller.network.name_for(payment.version()).into(),
                    },
                },
                version + 1,
            );
            if let Err(e) = s.payments.put_if(key, Some(version), &done).await {
                // Proved on chain but not recorded: still deliver; a retry
                // finds the `Settling` record and the chain proves it again.
                tracing::error!(error = %e, "settled but the record could not be updated");
            }
            unreserve(s, payment).await;
            out.outcome = "settled";
            out.tx.clone_from(&tx);
            deliver(sale, result_key, &tx).await
        }
        Next::RefuseFinal { reason } => {
            let rec = sale.record(
                PaymentState::Refused {
                    reason: reason.clone(),
                    tx: tx.map(|t| format!("{t:#x}")),
                },
                version + 1,
            );
            if let Err(e) = s.payments.put_if(key, Some(version), &rec).await {
                tracing::error!(error = %e, "refusal could not be recorded");
            }
            unreserve(s, payment).await;
            out.refused("payment_not_received");
            out.reason = reason.clone();
            Err(burnt(offered, &reason))
        }
        Next::Release { reason } => {
            let _ = s.payments.delete_if(key, version).await;
            unreserve(s, payment).await;
            out.refused(reason);
            Err(ApiError::payment_required(
                offered,
                format!("{reason}; you were not charged"),
                Some("settlement_failed"),
            ))
        }
        Next::Keep => {
            // The settlement may still land. Keep `Settling` with an expired
            // lease and the transaction we know of: the next try asks the
            // chain before settling again (the nonce can be used only once).
            let rec = sale.record(
                PaymentState::Settling {
                    result_key: result_key.into(),
                    lease_until: now(),
                    tx: tx.map(|t| format!("{t:#x}")),
                },
                version + 1,
            );
            let _ = s.payments.put_if(key, Some(version), &rec).await;
            if told_failed {
                out.outcome = "refused";
                Err(ApiError::payment_required(
                    offered,
                    format!(
                        "the settlement failed ({}); you have not been charged so far",
                        out.reason
                    ),
                    Some("settlement_failed"),
                ))
            } else {
                out.outcome = "unsettled";
                Err(ApiError::SettlementUnknown)
            }
        }
    }
}

/// What the chain says about `payment`, starting from `tx` (the transaction
/// the facilitator named, if any), else from the `AuthorizationUsed` log.
/// `reported_mined`: the facilitator said `tx` succeeded, so its receipt is
/// read a few times before it is taken as not mined.
async fn establish(sale: &Sale<'_>, tx: Option<B256>, reported_mined: bool) -> Onchain {
    let Sale { s, payment, .. } = sale;
    let expected = Expected {
        payer: payment.payer,
        nonce: payment.nonce,
        pay_to: s.seller.pay_to,
        amount: payment.amount.to_u256(),
    };
    let mut known = Known::None;
    if let Some(tx) = tx {
        let reads = if reported_mined { RECEIPT_READS } else { 1 };
        let mut mined = Ok(None);
        for i in 0..reads {
            mined = s.chain.mined(tx).await;
            if !matches!(mined, Ok(None)) {
                break;
            }
            if i + 1 < reads {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        match mined {
            Ok(Some(m)) => match settlement::judge(&m, &expected) {
                Judgement::Paid => return Onchain::Paid { tx },
                Judgement::UsedNotPaid(reason) => {
                    return Onchain::Burnt {
                        reason,
                        tx: Some(tx),
                    };
                }
                Judgement::Reverted => known = Known::Reverted { block: m.block },
                Judgement::Unrelated => {}
            },
            Ok(None) => known = Known::Pending,
            Err(e) => return Onchain::Unknown(e.to_string()),
        }
    }
    match s
        .chain
        .authorization_used(payment.payer, payment.nonce)
        .await
    {
        Err(e) => return Onchain::Unknown(e.to_string()),
        Ok(false) => return Onchain::Unused { known },
        Ok(true) => {}
    }
    match s
        .chain
        .authorization_fate(payment.payer, payment.nonce)
        .await
    {
        Err(e) => Onchain::Unknown(e.to_string()),
        Ok(Fate::Canceled(tx)) => Onchain::Burnt {
            reason: "the payer canceled the authorization (cancelAuthorization)".into(),
            tx: Some(tx),
        },
        Ok(Fate::NotFound) => Onchain::Unknown(
            "the authorization is used but its log is not found in the lookback window".into(),
        ),
        Ok(Fate::Used(used)) => match s.chain.mined(used).await {
            Ok(Some(m)) => match settlement::judge(&m, &expected) {
                Judgement::Paid => Onchain::Paid { tx: used },
                Judgement::UsedNotPaid(reason) => Onchain::Burnt {
                    reason,
                    tx: Some(used),
                },
                j => Onchain::Unknown(format!("the transaction of the log judged {j:?}")),
            },
            Ok(None) => Onchain::Unknown("the transaction of the log has no receipt".into()),
            Err(e) => Onchain::Unknown(e.to_string()),
        },
    }
}

/// `200` with the kept content, its transaction link and the settlement header.
pub(super) async fn deliver(
    sale: &Sale<'_>,
    result_key: &str,
    tx: &str,
) -> Result<Response, ApiError> {
    let Sale { s, payment, .. } = sale;
    let bytes = match s.results.get(result_key).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::error!(result_key, "paid content is missing");
            return Err(ApiError::ContentMissing);
        }
        Err(e) => {
            tracing::error!(error = %e, "reading paid content");
            return Err(ApiError::Storage { charged: true });
        }
    };
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "transactionUrl".into(),
            Value::String(s.seller.network.explorer_tx_url(tx)),
        );
    }
    let version = payment.version();
    let receipt = SettleResponse {
        success: true,
        error_reason: None,
        payer: Some(payment.payer.to_checksum(None)),
        transaction: tx.into(),
        network: s.seller.network.name_for(version).into(),
    };
    let name = if version == 1 {
        wire::X_PAYMENT_RESPONSE
    } else {
        wire::PAYMENT_RESPONSE
    };
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut().insert(
        name,
        HeaderValue::from_str(&wire::encode_header(&receipt)).expect("base64 is a header value"),
    );
    Ok(resp)
}
