//! Steps 4 to 7a of the paid flow: reserve the price against the payer's
//! balance, verify, generate, and keep the content before any money moves.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use base64::Engine as _;
use serde_json::{Value, json};
use x402::{
    catalog::ImageQuality,
    facilitator::{Facilitator, FacilitatorError},
    wire,
};

use super::{
    CAS_ATTEMPTS, Held, Outcome, Product, Sale, VERIFY_ATTEMPTS, in_progress, millis_since, now,
    store_error,
};
use crate::{
    error::ApiError,
    generate::{GenerationError, ImageJob},
    payment::CheckedPayment,
    reservation::{self, Reserved},
    state::AppState,
    store::PaymentState,
};

/// Steps 4 to 7a: reserve, verify, generate, keep the content, mark the
/// payment `Settling`; returns what this request then holds.
pub(super) async fn produce(
    sale: &Sale<'_>,
    product: &Product,
    version: u64,
    out: &mut Outcome,
) -> Result<Held, ApiError> {
    let Sale {
        s,
        payment,
        offered,
        key,
        ..
    } = sale;
    reserve(sale, out).await?;

    let t = Instant::now();
    let verified = verify(s.facilitator.as_ref(), payment).await;
    out.verify_ms = millis_since(t);
    match verified {
        Ok(v) if v.is_valid => {}
        Ok(v) => {
            let reason = v
                .invalid_reason
                .unwrap_or_else(|| "payment is not valid".into());
            out.refused(reason.clone());
            return Err(ApiError::payment_required(
                offered,
                reason,
                Some("verification_failed"),
            ));
        }
        Err(e) => {
            out.failed(e.to_string());
            tracing::warn!(error = %e, "facilitator /verify failed");
            return Err(ApiError::FacilitatorUnavailable);
        }
    }

    let t = Instant::now();
    let generated = tokio::time::timeout(s.generation_timeout, generate(s, product)).await;
    out.generate_ms = millis_since(t);
    let content = match generated {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.failed(e.to_string());
            return Err(ApiError::Generation(e));
        }
        Err(_) => {
            out.failed("generation timed out");
            return Err(ApiError::Generation(GenerationError::Timeout));
        }
    };

    // Keep the content before any money moves.
    let result_key = format!("{}.json", key.id());
    let bytes = serde_json::to_vec(&content).expect("content serialises");
    s.results
        .put(&result_key, &bytes)
        .await
        .map_err(|e| store_error(out, &e))?;
    let next = sale.record(
        PaymentState::Settling {
            result_key: result_key.clone(),
            lease_until: now() + s.lease.as_secs(),
            tx: None,
        },
        version + 1,
    );
    match s.payments.put_if(key, Some(version), &next).await {
        Ok(true) => Ok(Held {
            version: next.version,
            result_key,
            tx: None,
        }),
        Ok(false) => {
            out.refused("lease lost");
            Err(in_progress(s))
        }
        Err(e) => Err(store_error(out, &e)),
    }
}

/// Reserves the price against the payer's balance minus its payments in
/// flight ([`reservation::reserve`]), by compare-and-set on the payer's
/// record. The balance is read after the record, so a settlement that lands
/// and releases its entry in between changes the version and forces a reread.
/// Within this instance the payer's turn is taken first
/// ([`crate::payer_lock`]); the compare-and-set settles races with other
/// instances, backing off a little between attempts.
async fn reserve(sale: &Sale<'_>, out: &mut Outcome) -> Result<(), ApiError> {
    let Sale {
        s,
        payment,
        offered,
        ..
    } = sale;
    let entry = Reserved {
        nonce: payment.nonce,
        amount: payment.amount.to_u256(),
        until: payment.valid_before,
    };
    let _turn = s.payer_locks.lock(payment.payer).await;
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            cas_backoff().await;
        }
        let current = s
            .reservations
            .reservations(payment.payer)
            .await
            .map_err(|e| store_error(out, &e))?;
        let balance = s.chain.balance(payment.payer).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the payer's balance");
            out.failed("chain");
            ApiError::ChainUnavailable
        })?;
        match reservation::reserve(&current, entry.clone(), balance, now()) {
            Ok(None) => return Ok(()),
            Ok(Some(next)) => {
                if s.reservations
                    .put_reservations_if(payment.payer, current.version, &next)
                    .await
                    .map_err(|e| store_error(out, &e))?
                {
                    return Ok(());
                }
            }
            Err(shortfall) => {
                out.refused("insufficient_funds");
                return Err(ApiError::payment_required(
                    offered,
                    format!("{shortfall}; wait for them to settle or top up"),
                    Some("insufficient_funds"),
                ));
            }
        }
    }
    out.refused("payer_busy");
    Err(ApiError::PayerBusy)
}

/// A few random milliseconds, so instances racing on one record do not
/// retry in step.
async fn cas_backoff() {
    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=20))).await;
}

/// Removes this payment's reservation. A failure only delays the headroom
/// until the entry lapses at `validBefore`: logged, not fatal.
pub(super) async fn unreserve(s: &AppState, payment: &CheckedPayment) {
    let _turn = s.payer_locks.lock(payment.payer).await;
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            cas_backoff().await;
        }
        let Ok(current) = s.reservations.reservations(payment.payer).await else {
            break;
        };
        let Some(next) = reservation::release(&current, payment.nonce, now()) else {
            return;
        };
        match s
            .reservations
            .put_reservations_if(payment.payer, current.version, &next)
            .await
        {
            Ok(true) => return,
            Ok(false) => {}
            Err(_) => break,
        }
    }
    tracing::warn!(payer = %payment.payer, "reservation not released; it lapses at validBefore");
}

/// `/verify`, retried while the facilitator cannot be reached.
async fn verify(
    f: &dyn Facilitator,
    p: &CheckedPayment,
) -> Result<wire::VerifyResponse, FacilitatorError> {
    // 100 ms, then 200 ms.
    let pauses = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(2.0)
        .with_max_times(VERIFY_ATTEMPTS as usize - 1);
    (|| f.verify(&p.payload, &p.requirements))
        .retry(pauses)
        .sleep(tokio::time::sleep)
        .when(FacilitatorError::is_indeterminate)
        .await
}

/// Generates the content: the response body without `transactionUrl`, which
/// is added once the settlement is proved.
async fn generate(s: &AppState, product: &Product) -> Result<Value, GenerationError> {
    match product {
        Product::Image { req, route } => {
            let seed = req
                .seed
                .unwrap_or_else(|| rand::random_range(0..=858_993_459));
            let px = req.size.pixels();
            let img = s
                .generator
                .image(&ImageJob {
                    prompt: req.prompt.clone(),
                    width: px,
                    height: px,
                    premium: req.quality == ImageQuality::Premium,
                    seed,
                })
                .await?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&img.png);
            let price = s.prices.price(req.size, req.quality);
            if *route == "/generate" {
                Ok(json!({
                    "message": "Image generated",
                    "status": "success",
                    "content": b64,
                    "model": "nova-canvas",
                }))
            } else {
                Ok(json!({
                    "imageBase64": b64,
                    "contentType": "image/png",
                    "width": img.width,
                    "height": img.height,
                    "size": req.size,
                    "quality": req.quality,
                    "seed": img.seed,
                    "price": price,
                }))
            }
        }
        Product::Text {
            prompt,
            max_output_tokens,
        } => {
            let text = s.generator.text_within(prompt, *max_output_tokens).await?;
            Ok(json!({
                "message": "Text generated",
                "status": "success",
                "content": text,
                "model": "nova-llm",
            }))
        }
    }
}
