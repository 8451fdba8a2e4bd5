//! The paid flow shared by every paid route. Each step's rule is a pure
//! function elsewhere ([`crate::payment`], [`crate::claim`],
//! [`crate::reservation`], [`crate::settlement`]); this module does the I/O
//! between them, in this order (steps 3, 4-7a and 7b live in `claiming`,
//! `producing` and `settling`):
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

mod claiming;
mod producing;
mod settling;

use std::{sync::Arc, time::Instant};

use alloy::primitives::B256;
use axum::{
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde_json::json;
use sha2::{Digest, Sha256};
use x402::{
    Usdc,
    catalog::ImageRequest,
    wire::{self, ResourceInfo, SettleResponse},
};

use self::{
    claiming::claim_payment,
    producing::{produce, unreserve},
    settling::{conclude, deliver, prove, settle},
};
use crate::{
    error::ApiError,
    payment::{self, CheckedPayment, Offered},
    settlement::{Known, Next, Onchain},
    state::AppState,
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
        url: s.resource_url(headers, product.route()),
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
    /// A settlement of unknown outcome, taken over.
    Resume(Held),
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
    let sale = Sale {
        s,
        key: PaymentKey {
            payer: payment.payer,
            nonce: payment.nonce,
        },
        payment: &payment,
        offered,
        fingerprint: product.fingerprint(),
    };

    let held = match claim_payment(&sale, out).await? {
        Claimed::Replay {
            result_key,
            settlement,
        } => {
            out.outcome = "replayed";
            out.tx.clone_from(&settlement.transaction);
            return deliver(&sale, &result_key, &settlement.transaction).await;
        }
        Claimed::Resume(held) => {
            // Find out what became of the earlier settlement first.
            let (onchain, next) = prove(&sale, held.tx, false, out).await;
            let resettle = matches!(
                onchain,
                Onchain::Unused {
                    known: Known::None | Known::Reverted { .. }
                }
            );
            if !(resettle && next == Next::Keep) {
                return conclude(&sale, held, next, false, out).await;
            }
            held
        }
        Claimed::Fresh(version) => match produce(&sale, product, version, out).await {
            Ok(held) => held,
            Err(e) => {
                // Not delivered, so not charged: claim and reservation go,
                // and the same payment may be presented again.
                unreserve(s, &payment).await;
                let _ = s.payments.delete_if(&sale.key, version).await;
                return Err(e);
            }
        },
    };
    settle(&sale, held, out).await
}

/// One paid request past the header check: what every later step needs.
struct Sale<'a> {
    s: &'a AppState,
    payment: &'a CheckedPayment,
    offered: &'a Offered,
    key: PaymentKey,
    /// Digest of exactly what is bought ([`Product::fingerprint`]).
    fingerprint: String,
}

impl Sale<'_> {
    /// The payment record at `version` in `state`.
    fn record(&self, state: PaymentState, version: u64) -> PaymentRecord {
        PaymentRecord {
            fingerprint: self.fingerprint.clone(),
            state,
            version,
            expires_at: now() + self.s.retention.as_secs(),
        }
    }
}

/// A `Settling` record this request holds: its version, where the content
/// is kept, and the settlement transaction known so far.
#[derive(Clone, Debug)]
struct Held {
    version: u64,
    result_key: String,
    tx: Option<B256>,
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
