//! The paid flow shared by every paid route. Each step's rule is a pure
//! function elsewhere ([`crate::payment`], [`crate::claim`],
//! [`crate::reservation`], [`crate::settlement`]); this module does the I/O
//! between them, in this order:
//!
//! 1. no payment header -> `402` with our requirements for *this* request;
//! 2. check the header against what we offer, everything but the time window
//!    ([`payment::check_terms`]) -> `400`/`402`/`431` before any I/O (the
//!    payer and nonce it claims are logged either way);
//! 3. read the record of `(payer, nonce)` and decide ([`claim::decide`]): a
//!    payment settled for this request is answered with its kept result at
//!    any time, even after `validBefore`; one burnt on chain is refused;
//!    only a new claim is held to the time window ([`payment::check_window`]);
//! 4. reserve the price against the payer's balance minus its payments in
//!    flight -> `402` before any generation if it does not fit;
//! 5. facilitator `/verify` (retried on transport errors: it moves no money);
//! 6. generate; on failure release claim and reservation: not charged;
//! 7. keep the content, then `/settle`, then the **proof**: deliver only on a
//!    successful transaction with `AuthorizationUsed(payer, nonce)` and
//!    `Transfer(payer -> payTo, price)` from the token
//!    ([`settlement::judge`]). A settlement that did not plainly succeed is
//!    decided by [`settlement::next`]: delivered if proved, refused for good if
//!    the nonce was burnt, released only when no money can move any more,
//!    otherwise kept for a retry that asks the chain first.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageRequest},
    facilitator::{Facilitator, FacilitatorError},
    wire::{self, ResourceInfo, SettleResponse},
};

use crate::{
    app::AppState,
    chain::{Fate, Head},
    claim::{self, Claim},
    error::ApiError,
    generate::{GenerationError, ImageJob},
    payment::{self, CheckedPayment, Offered},
    reservation::{self, Reserved},
    settlement::{self, Expected, Judgement, Known, Next, Onchain},
    store::{PaymentKey, PaymentRecord, PaymentState},
};

/// Attempts at `/verify` when the facilitator cannot be reached.
const VERIFY_ATTEMPTS: u32 = 3;
/// Attempts at one compare-and-set (a claim, a reservation) under contention.
const CAS_ATTEMPTS: u32 = 20;
/// Reads of a receipt the facilitator just reported mined (a load-balanced
/// RPC may lag one node behind another).
const RECEIPT_READS: u32 = 5;

/// What is being sold.
#[derive(Clone, Debug)]
pub enum Product {
    Image {
        req: ImageRequest,
        route: &'static str,
    },
    /// `nova-llm` text, at most `max_output_tokens` (the tokens priced).
    Text {
        prompt: String,
        max_output_tokens: u64,
    },
}

impl Product {
    pub fn route(&self) -> &'static str {
        match self {
            Product::Image { route, .. } => route,
            Product::Text { .. } => "/generate",
        }
    }

    fn description(&self) -> String {
        match self {
            Product::Image { req, .. } => format!(
                "Nova Canvas image {} {}",
                req.size.as_str(),
                req.quality.as_str()
            ),
            Product::Text { .. } => "Nova 2 Lite text generation".into(),
        }
    }

    /// Digest of exactly what is bought: a payment pays for one of these.
    fn fingerprint(&self) -> String {
        let canonical = match self {
            Product::Image { req, route } => json!({"route": route, "request": req}),
            Product::Text { prompt, .. } => {
                json!({"route": "/generate", "model": "nova-llm", "content": prompt})
            }
        };
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Milliseconds since `t`, as a number in the JSON log (a `u128` would be
/// written as a string).
fn millis_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One JSON log line per request.
#[derive(Default)]
struct Outcome {
    outcome: &'static str,
    reason: String,
    payer: String,
    nonce: String,
    tx: String,
    verify_ms: u64,
    generate_ms: u64,
    settle_ms: u64,
    /// Time spent looking up the proof of payment on chain.
    proof_ms: u64,
}

impl Outcome {
    fn refused(&mut self, reason: impl Into<String>) {
        self.outcome = "refused";
        self.reason = reason.into();
    }

    fn failed(&mut self, reason: impl Into<String>) {
        self.outcome = "failed";
        self.reason = reason.into();
    }
}

/// Sells `product` at `price` to the request with `headers`, and logs one
/// line for it. The flow runs in its own task to completion even if the
/// client goes away: a disconnect must not cancel it between settlement and
/// recording (the buyer would have paid for content the gateway then refuses
/// to replay until the lease runs out).
pub async fn sell(
    s: &Arc<AppState>,
    headers: &HeaderMap,
    product: Product,
    price: Usdc,
    started: Instant,
) -> Response {
    let (s, headers) = (s.clone(), headers.clone());
    tokio::spawn(async move { sell_and_log(&s, &headers, product, price, started).await })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "paid flow panicked");
            ApiError::Internal.into_response()
        })
}

async fn sell_and_log(
    s: &AppState,
    headers: &HeaderMap,
    product: Product,
    price: Usdc,
    started: Instant,
) -> Response {
    let resource = ResourceInfo {
        url: crate::app::resource_url(s, headers, product.route()),
        description: product.description(),
        mime_type: "application/json".into(),
    };
    let offered = s.seller.offer(price, resource);
    let mut out = Outcome::default();
    let response = match sell_paid(s, headers, &product, &offered, &mut out).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        target: "gateway::request",
        route = product.route(),
        outcome = out.outcome,
        status = response.status().as_u16(),
        amount = %price,
        payer = %out.payer,
        nonce = %out.nonce,
        tx = %out.tx,
        reason = %out.reason,
        verify_ms = out.verify_ms,
        generate_ms = out.generate_ms,
        settle_ms = out.settle_ms,
        proof_ms = out.proof_ms,
        total_ms = millis_since(started),
        "request"
    );
    response
}

/// What a claim gave this request.
enum Claimed {
    /// A fresh claim at `version`: produce the content.
    Fresh(u64),
    /// A settlement of unknown outcome taken over at `version`.
    Resume {
        version: u64,
        result_key: String,
        tx: Option<B256>,
    },
    /// Settled before for this request.
    Replay {
        result_key: String,
        settlement: SettleResponse,
    },
}

async fn sell_paid(
    s: &AppState,
    headers: &HeaderMap,
    product: &Product,
    offered: &Offered,
    out: &mut Outcome,
) -> Result<Response, ApiError> {
    let header = headers
        .get(wire::PAYMENT_SIGNATURE)
        .or_else(|| headers.get(wire::X_PAYMENT));
    let Some(header) = header else {
        out.outcome = "quoted";
        return Err(ApiError::payment_required(
            offered,
            "payment required",
            None,
        ));
    };
    let Ok(header) = header.to_str() else {
        out.refused("payment header is not ASCII");
        return Err(ApiError::bad_request(
            "invalid_payload",
            "the payment header is not ASCII",
        ));
    };
    let checked = payment::decode(header).and_then(|payload| {
        // Logged as claimed even when refused: who tried what is worth knowing.
        let auth = &payload.exact().authorization;
        out.payer = format!("{:#x}", auth.from);
        out.nonce = format!("{:#x}", auth.nonce);
        payment::check_terms(payload, &s.seller, offered)
    });
    let payment = checked.map_err(|r| {
        out.refused(r.code);
        ApiError::refusal(offered, r)
    })?;
    let key = PaymentKey {
        payer: payment.payer,
        nonce: payment.nonce,
    };
    let fingerprint = product.fingerprint();

    let (version, result_key, known_tx) =
        match claim_payment(s, &payment, offered, &key, &fingerprint, out).await? {
            Claimed::Replay {
                result_key,
                settlement,
            } => {
                out.outcome = "replayed";
                out.tx.clone_from(&settlement.transaction);
                return deliver(s, &payment, &result_key, &settlement.transaction).await;
            }
            Claimed::Resume {
                version,
                result_key,
                tx,
            } => {
                // Find out what became of the earlier settlement first.
                let t = Instant::now();
                let onchain = establish(s, &payment, tx, false).await;
                let head = head_if_unused(s, &onchain).await;
                out.proof_ms += millis_since(t);
                let resettle = matches!(
                    onchain,
                    Onchain::Unused {
                        known: Known::None | Known::Reverted { .. }
                    }
                );
                let next = decide_next(s, &payment, &onchain, head);
                if !(resettle && next == Next::Keep) {
                    return conclude(
                        s,
                        &payment,
                        offered,
                        &key,
                        &fingerprint,
                        version,
                        &result_key,
                        tx,
                        next,
                        false,
                        out,
                    )
                    .await;
                }
                (version, result_key, tx)
            }
            Claimed::Fresh(version) => {
                match produce(
                    s,
                    &payment,
                    product,
                    offered,
                    &key,
                    &fingerprint,
                    version,
                    out,
                )
                .await
                {
                    Ok((version, result_key)) => (version, result_key, None),
                    Err(e) => {
                        // Not delivered, so not charged: claim and reservation
                        // go, and the same payment may be presented again.
                        unreserve(s, &payment).await;
                        let _ = s.payments.delete_if(&key, version).await;
                        return Err(e);
                    }
                }
            }
        };
    settle(
        s,
        &payment,
        offered,
        &key,
        &fingerprint,
        version,
        &result_key,
        known_tx,
        out,
    )
    .await
}

/// Claims `(payer, nonce)` for this request, or finds out what happened to
/// it before ([`claim::decide`]).
async fn claim_payment(
    s: &AppState,
    payment: &CheckedPayment,
    offered: &Offered,
    key: &PaymentKey,
    fingerprint: &str,
    out: &mut Outcome,
) -> Result<Claimed, ApiError> {
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
                let next = record(
                    s,
                    fingerprint,
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
                    return Ok(Claimed::Resume {
                        version: next.version,
                        result_key,
                        tx: tx.and_then(|t| t.parse().ok()),
                    });
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
        let rec = record(s, fingerprint, state, version);
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

/// Reserve, verify, generate, keep the content, mark the payment `Settling`.
/// Returns the new record version and the result key.
#[allow(clippy::too_many_arguments)]
async fn produce(
    s: &AppState,
    payment: &CheckedPayment,
    product: &Product,
    offered: &Offered,
    key: &PaymentKey,
    fingerprint: &str,
    version: u64,
    out: &mut Outcome,
) -> Result<(u64, String), ApiError> {
    reserve(s, payment, offered, out).await?;

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
    let next = record(
        s,
        fingerprint,
        PaymentState::Settling {
            result_key: result_key.clone(),
            lease_until: now() + s.lease.as_secs(),
            tx: None,
        },
        version + 1,
    );
    match s.payments.put_if(key, Some(version), &next).await {
        Ok(true) => Ok((next.version, result_key)),
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
async fn reserve(
    s: &AppState,
    payment: &CheckedPayment,
    offered: &Offered,
    out: &mut Outcome,
) -> Result<(), ApiError> {
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
async fn unreserve(s: &AppState, payment: &CheckedPayment) {
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
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f.verify(&p.payload, &p.requirements).await {
            Err(e) if e.is_indeterminate() && attempt < VERIFY_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
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

/// `/settle`, then the proof, then what [`settlement::next`] decides.
#[allow(clippy::too_many_arguments)]
async fn settle(
    s: &AppState,
    payment: &CheckedPayment,
    offered: &Offered,
    key: &PaymentKey,
    fingerprint: &str,
    version: u64,
    result_key: &str,
    known_tx: Option<B256>,
    out: &mut Outcome,
) -> Result<Response, ApiError> {
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
    let t = Instant::now();
    let onchain = establish(s, payment, tx, success).await;
    let head = head_if_unused(s, &onchain).await;
    out.proof_ms += millis_since(t);
    let next = decide_next(s, payment, &onchain, head);
    if next == Next::Keep {
        out.reason = why;
    }
    conclude(
        s,
        payment,
        offered,
        key,
        fingerprint,
        version,
        result_key,
        tx,
        next,
        clear_failure && matches!(onchain, Onchain::Unused { .. }),
        out,
    )
    .await
}

fn decide_next(s: &AppState, p: &CheckedPayment, onchain: &Onchain, head: Option<Head>) -> Next {
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

async fn head_if_unused(s: &AppState, onchain: &Onchain) -> Option<Head> {
    match onchain {
        Onchain::Unused { .. } => s.chain.head().await.ok(),
        _ => None,
    }
}

/// Carries out a [`Next`] for a `Settling` record at `version`.
/// `told_failed`: the facilitator clearly failed and the nonce is unused, so
/// the buyer is told `402` rather than "unknown" when the record is kept.
#[allow(clippy::too_many_arguments)]
async fn conclude(
    s: &AppState,
    payment: &CheckedPayment,
    offered: &Offered,
    key: &PaymentKey,
    fingerprint: &str,
    version: u64,
    result_key: &str,
    tx: Option<B256>,
    next: Next,
    told_failed: bool,
    out: &mut Outcome,
) -> Result<Response, ApiError> {
    match next {
        Next::Deliver { tx } => {
            let tx = format!("{tx:#x}");
            let done = record(
                s,
                fingerprint,
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
            deliver(s, payment, result_key, &tx).await
        }
        Next::RefuseFinal { reason } => {
            let rec = record(
                s,
                fingerprint,
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
            let rec = record(
                s,
                fingerprint,
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
async fn establish(
    s: &AppState,
    payment: &CheckedPayment,
    tx: Option<B256>,
    reported_mined: bool,
) -> Onchain {
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
async fn deliver(
    s: &AppState,
    payment: &CheckedPayment,
    result_key: &str,
    tx: &str,
) -> Result<Response, ApiError> {
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
        "x-payment-response"
    } else {
        "payment-response"
    };
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static(name),
        HeaderValue::from_str(&wire::encode_header(&receipt)).expect("base64 is a header value"),
    );
    Ok(resp)
}

fn record(s: &AppState, fingerprint: &str, state: PaymentState, version: u64) -> PaymentRecord {
    PaymentRecord {
        fingerprint: fingerprint.into(),
        state,
        version,
        expires_at: now() + s.retention.as_secs(),
    }
}

fn burnt(offered: &Offered, reason: &str) -> ApiError {
    ApiError::payment_required(
        offered,
        format!(
            "this authorization was used on chain without paying this seller ({reason}); it can \
             never pay for anything here"
        ),
        Some("payment_not_received"),
    )
}

fn store_error(out: &mut Outcome, e: &crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store");
    out.failed("store");
    ApiError::Storage { charged: false }
}

fn in_progress(s: &AppState) -> ApiError {
    ApiError::InProgress {
        retry_after_secs: s.lease.as_secs(),
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
