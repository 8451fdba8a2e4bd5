//! The HTTP API: `POST /generate_image`, `POST /generate`, `GET /pricing`,
//! `GET /health`, and the paid-request flow they share.
//!
//! A paid request runs, in this order (see [`crate::store`] for the state):
//! 1. price the request from our own table; no payment header -> `402`;
//! 2. check the header against what we offer for *this* request
//!    ([`crate::payment::decode`], then [`crate::payment::check_payload`];
//!    the payer and nonce it claims are logged either way) ->
//!    `400`/`402`/`431` before any I/O;
//! 3. claim `(payer, nonce)` in the payment store: one request per payment;
//!    a settled payment presented again for the same request replays its
//!    result (the idempotent retry), for another request is refused;
//! 4. facilitator `/verify` (retried on transport errors: it moves no money);
//! 5. generate; on failure release the claim: not charged, may retry;
//! 6. keep the content, then `/settle`; only a settled payment releases it.
//!    A settlement whose outcome is unknown is never blindly retried: the
//!    chain is asked (`authorizationState`) first, now and on the next try.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower_http::cors::{Any, CorsLayer};
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageRequest, ImageSize, MAX_PROMPT_CHARS},
    facilitator::{Facilitator, FacilitatorError},
    wire::{self, ResourceInfo, SettleResponse},
};

use crate::{
    chain::Chain,
    generate::{GenerationError, Generator, ImageJob},
    payment::{self, CheckedPayment, Offered, Refusal, Seller},
    pricing::{self, ImagePrices},
    store::{PaymentKey, PaymentRecord, PaymentState, PaymentStore, ResultStore},
};

/// Largest request body (a prompt is at most a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `content` for `nova-llm`.
pub const MAX_TEXT_CHARS: usize = 8_000;
/// Attempts at `/verify` when the facilitator cannot be reached.
const VERIFY_ATTEMPTS: u32 = 3;
/// Payment records are kept this long after their last change (TTL).
const RECORD_TTL_SECS: u64 = 7 * 24 * 3600;

pub struct AppState {
    pub seller: Seller,
    pub prices: ImagePrices,
    pub facilitator: Arc<dyn Facilitator>,
    pub generator: Arc<dyn Generator>,
    pub payments: Arc<dyn PaymentStore>,
    pub results: Arc<dyn ResultStore>,
    pub chain: Arc<dyn Chain>,
    pub public_url: Option<String>,
    pub lease: Duration,
    pub generation_timeout: Duration,
}

pub fn app(state: Arc<AppState>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("payment-signature"),
            HeaderName::from_static("x-payment"),
        ])
        .expose_headers([
            HeaderName::from_static("payment-required"),
            HeaderName::from_static("payment-response"),
            HeaderName::from_static("x-payment-response"),
        ]);
    Router::new()
        .route("/generate_image", post(generate_image))
        .route("/generate", post(generate))
        .route("/pricing", get(pricing))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .with_state(state)
}

// ---------------------------------------------------------------------------
// Routes

async fn health(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "backend": s.generator.name(),
        "network": s.seller.network.caip2(),
    }))
}

async fn pricing(State(s): State<Arc<AppState>>) -> Json<Value> {
    let images: Vec<Value> = [ImageSize::S1024, ImageSize::S2048]
        .into_iter()
        .flat_map(|size| {
            [ImageQuality::Standard, ImageQuality::Premium].map(|q| {
                json!({"size": size.as_str(), "quality": q.as_str(), "price": s.prices.price(size, q)})
            })
        })
        .collect();
    Json(json!({
        "network": s.seller.network.caip2(),
        "asset": s.seller.asset.to_checksum(None),
        "payTo": s.seller.pay_to.to_checksum(None),
        "currency": "USDC",
        "generate_image": images,
        "generate": {
            "nova-canvas": s.prices.price(ImageSize::S1024, ImageQuality::Standard),
            "nova-llm": {
                "inputPer1kTokens": "0.0003",
                "outputPer1kTokens": "0.0025",
                "outputEstimate": format!(
                    "max(input, {}) tokens + {}%, at most {}",
                    pricing::TEXT_MIN_OUTPUT_TOKENS,
                    pricing::TEXT_OUTPUT_MARGIN_PERCENT,
                    pricing::TEXT_MAX_OUTPUT_TOKENS
                ),
            },
        },
    }))
}

async fn generate_image(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let req: ImageRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("invalid_request", &format!("invalid request body: {e}")),
    };
    if let Err(r) = check_prompt(&req.prompt, MAX_PROMPT_CHARS) {
        return *r;
    }
    let price = s.prices.price(req.size, req.quality);
    let product = Product::Image {
        req,
        route: "/generate_image",
    };
    sell(&s, &headers, product, price, started).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    content: String,
    model: String,
}

async fn generate(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let b: GenerateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request("invalid_request", &format!("invalid request body: {e}")),
    };
    match b.model.as_str() {
        "nova-canvas" => {
            if let Err(r) = check_prompt(&b.content, MAX_PROMPT_CHARS) {
                return *r;
            }
            let req = ImageRequest {
                prompt: b.content,
                size: ImageSize::S1024,
                quality: ImageQuality::Standard,
                seed: None,
            };
            let price = s.prices.price(req.size, req.quality);
            sell(
                &s,
                &headers,
                Product::Image {
                    req,
                    route: "/generate",
                },
                price,
                started,
            )
            .await
        }
        "nova-llm" => {
            if let Err(r) = check_prompt(&b.content, MAX_TEXT_CHARS) {
                return *r;
            }
            // The price needs the token count, so counting happens for
            // quotes too; it is cheap and moves no money.
            let tokens = match s.generator.count_input_tokens(&b.content).await {
                Ok(t) => t,
                Err(e) => return generation_error(&e),
            };
            let price = pricing::text_price(tokens);
            sell(
                &s,
                &headers,
                Product::Text { prompt: b.content },
                price,
                started,
            )
            .await
        }
        other => bad_request(
            "unknown_model",
            &format!("model {other:?} is not offered (nova-llm or nova-canvas)"),
        ),
    }
}

fn check_prompt(prompt: &str, max: usize) -> Result<(), Box<Response>> {
    if prompt.trim().is_empty() {
        return Err(Box::new(bad_request("empty_prompt", "the prompt is empty")));
    }
    let n = prompt.chars().count();
    if n > max {
        return Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "prompt_too_long",
            &format!("the prompt has {n} characters; at most {max} are accepted"),
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The paid flow

/// What is being sold.
#[derive(Clone, Debug)]
enum Product {
    Image {
        req: ImageRequest,
        route: &'static str,
    },
    Text {
        prompt: String,
    },
}

impl Product {
    fn route(&self) -> &'static str {
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
            Product::Text { prompt } => {
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
}

/// Runs the paid flow to completion even if the client goes away: a
/// disconnect must not cancel it between settlement and recording (the
/// buyer would have paid for content the gateway then refuses to replay
/// until the lease runs out). The flow runs in its own task; the handler
/// only awaits it.
async fn sell(
    s: &Arc<AppState>,
    headers: &HeaderMap,
    product: Product,
    price: Usdc,
    started: Instant,
) -> Response {
    let (s, headers) = (s.clone(), headers.clone());
    tokio::spawn(async move { sell_to_completion(&s, &headers, product, price, started).await })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "paid flow panicked");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; retry with the same payment header",
            )
        })
}

async fn sell_to_completion(
    s: &AppState,
    headers: &HeaderMap,
    product: Product,
    price: Usdc,
    started: Instant,
) -> Response {
    let resource = ResourceInfo {
        url: resource_url(s, headers, product.route()),
        description: product.description(),
        mime_type: "application/json".into(),
    };
    let offered = s.seller.offer(price, resource);
    let mut out = Outcome::default();
    let response = sell_inner(s, headers, &product, &offered, &mut out).await;
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
        total_ms = millis_since(started),
        "request"
    );
    response
}

async fn sell_inner(
    s: &AppState,
    headers: &HeaderMap,
    product: &Product,
    offered: &Offered,
    out: &mut Outcome,
) -> Response {
    let header = headers
        .get(wire::PAYMENT_SIGNATURE)
        .or_else(|| headers.get(wire::X_PAYMENT));
    let Some(header) = header else {
        out.outcome = "quoted";
        return payment_required(offered, "payment required", None);
    };
    let Ok(header) = header.to_str() else {
        out.outcome = "refused";
        out.reason = "payment header is not ASCII".into();
        return bad_request("invalid_payload", "the payment header is not ASCII");
    };
    let checked = payment::decode(header).and_then(|payload| {
        // Logged as claimed even when refused: who tried what is worth knowing.
        let auth = &payload.exact().authorization;
        out.payer = format!("{:#x}", auth.from);
        out.nonce = format!("{:#x}", auth.nonce);
        payment::check_payload(payload, &s.seller, offered, now())
    });
    let payment = match checked {
        Ok(p) => p,
        Err(r) => {
            out.outcome = "refused";
            out.reason = r.code.into();
            return refusal(offered, &r);
        }
    };
    let key = PaymentKey {
        payer: payment.payer,
        nonce: payment.nonce,
    };
    let fingerprint = product.fingerprint();

    // Claim the payment, or find out what happened to it before.
    let mut attempts = 0;
    let (version, resume) = loop {
        attempts += 1;
        if attempts > 5 {
            out.outcome = "refused";
            out.reason = "contention".into();
            return in_progress(s.lease);
        }
        let current = match s.payments.get(&key).await {
            Ok(c) => c,
            Err(e) => return store_error(out, &e.to_string()),
        };
        let t = now();
        match current {
            None => {
                let rec = record(
                    &fingerprint,
                    PaymentState::InFlight {
                        lease_until: t + s.lease.as_secs(),
                    },
                    1,
                );
                match s.payments.put_if(&key, None, &rec).await {
                    Ok(true) => break (1, None),
                    Ok(false) => continue,
                    Err(e) => return store_error(out, &e.to_string()),
                }
            }
            Some(rec) if rec.fingerprint != fingerprint => {
                out.outcome = "refused";
                out.reason = "payment_reused".into();
                return error(
                    StatusCode::CONFLICT,
                    "payment_reused",
                    "this payment was already used for another request",
                );
            }
            Some(PaymentRecord {
                state:
                    PaymentState::Settled {
                        result_key,
                        settlement,
                    },
                ..
            }) => {
                out.outcome = "replayed";
                out.tx = settlement.transaction.clone();
                return deliver(s, &payment, &result_key, &settlement).await;
            }
            Some(rec) if !rec.lease_expired(t) => {
                out.outcome = "refused";
                out.reason = "payment_in_progress".into();
                return in_progress(s.lease);
            }
            Some(rec) => {
                // Its request crashed or gave up: take it over.
                let (state, resume) = match &rec.state {
                    PaymentState::Settling { result_key, .. } => (
                        PaymentState::Settling {
                            result_key: result_key.clone(),
                            lease_until: t + s.lease.as_secs(),
                        },
                        Some(result_key.clone()),
                    ),
                    _ => (
                        PaymentState::InFlight {
                            lease_until: t + s.lease.as_secs(),
                        },
                        None,
                    ),
                };
                let next = record(&fingerprint, state, rec.version + 1);
                match s.payments.put_if(&key, Some(rec.version), &next).await {
                    Ok(true) => break (next.version, resume),
                    Ok(false) => continue,
                    Err(e) => return store_error(out, &e.to_string()),
                }
            }
        }
    };

    let (version, result_key) = match resume {
        Some(result_key) => (version, result_key),
        None => {
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
                Ok(v) => v,
                Err(response) => {
                    // Not delivered, so not charged: the claim goes, and the
                    // same payment may be presented again.
                    let _ = s.payments.delete_if(&key, version).await;
                    return response;
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
        out,
    )
    .await
}

/// Verify, generate, keep the content, mark the payment `Settling`.
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
) -> Result<(u64, String), Response> {
    let t = Instant::now();
    let verified = verify(s.facilitator.as_ref(), payment).await;
    out.verify_ms = millis_since(t);
    match verified {
        Ok(v) if v.is_valid => {}
        Ok(v) => {
            let reason = v
                .invalid_reason
                .unwrap_or_else(|| "payment is not valid".into());
            out.outcome = "refused";
            out.reason = reason.clone();
            return Err(payment_required(
                offered,
                &reason,
                Some("verification_failed"),
            ));
        }
        Err(e) => {
            out.outcome = "failed";
            out.reason = e.to_string();
            tracing::warn!(error = %e, "facilitator /verify failed");
            return Err(error(
                StatusCode::BAD_GATEWAY,
                "facilitator_unavailable",
                "the payment facilitator could not be reached; you were not charged, retry later",
            ));
        }
    }

    let t = Instant::now();
    let content = match tokio::time::timeout(s.generation_timeout, make(s, product)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.generate_ms = millis_since(t);
            out.outcome = "failed";
            out.reason = e.to_string();
            return Err(generation_error(&e));
        }
        Err(_) => {
            out.generate_ms = millis_since(t);
            out.outcome = "failed";
            out.reason = "generation timed out".into();
            return Err(generation_error(&GenerationError::Timeout));
        }
    };
    out.generate_ms = millis_since(t);

    // Keep the content before any money moves.
    let result_key = format!("{}.json", key.id());
    let bytes = serde_json::to_vec(&content).expect("content serialises");
    if let Err(e) = s.results.put(&result_key, &bytes).await {
        return Err(store_error(out, &e.to_string()));
    }
    let next = record(
        fingerprint,
        PaymentState::Settling {
            result_key: result_key.clone(),
            lease_until: now() + s.lease.as_secs(),
        },
        version + 1,
    );
    match s.payments.put_if(key, Some(version), &next).await {
        Ok(true) => Ok((next.version, result_key)),
        Ok(false) => {
            out.outcome = "refused";
            out.reason = "lease lost".into();
            Err(in_progress(s.lease))
        }
        Err(e) => Err(store_error(out, &e.to_string())),
    }
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
/// is added once the settlement is known.
async fn make(s: &AppState, product: &Product) -> Result<Value, GenerationError> {
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
        Product::Text { prompt } => {
            let text = s.generator.text(prompt).await?;
            Ok(json!({
                "message": "Text generated",
                "status": "success",
                "content": text,
                "model": "nova-llm",
            }))
        }
    }
}

/// `/settle`, and what the chain says when its answer is not clear.
#[allow(clippy::too_many_arguments)]
async fn settle(
    s: &AppState,
    payment: &CheckedPayment,
    offered: &Offered,
    key: &PaymentKey,
    fingerprint: &str,
    version: u64,
    result_key: &str,
    out: &mut Outcome,
) -> Response {
    let t = Instant::now();
    let answer = s
        .facilitator
        .settle(&payment.payload, &payment.requirements)
        .await;
    out.settle_ms = millis_since(t);
    let settled = match answer {
        Ok(r) if r.success => Some(r),
        other => {
            let why = match &other {
                Ok(r) => r
                    .error_reason
                    .clone()
                    .unwrap_or_else(|| "settlement failed".into()),
                Err(e) => e.to_string(),
            };
            let indeterminate = matches!(&other, Err(e) if e.is_indeterminate());
            // Did it happen anyway? The chain knows.
            match s
                .chain
                .authorization_used(payment.payer, payment.nonce)
                .await
            {
                Ok(Some(tx)) => Some(SettleResponse {
                    success: true,
                    error_reason: None,
                    payer: Some(payment.payer.to_checksum(None)),
                    transaction: tx,
                    network: s.seller.network.name_for(payment.version()).into(),
                }),
                Ok(None) if !indeterminate => {
                    // Definitely not settled: release; the content stays unsold.
                    let _ = s.payments.delete_if(key, version).await;
                    out.outcome = "refused";
                    out.reason = why.clone();
                    return payment_required(offered, &why, Some("settlement_failed"));
                }
                chain => {
                    // The facilitator may still land it. Keep `Settling` with
                    // an expired lease: the next try asks the chain again
                    // before settling again (the nonce can be used only once).
                    if let Err(e) = &chain {
                        tracing::warn!(error = %e, "cannot read authorization state");
                    }
                    let rec = record(
                        fingerprint,
                        PaymentState::Settling {
                            result_key: result_key.into(),
                            lease_until: now(),
                        },
                        version + 1,
                    );
                    let _ = s.payments.put_if(key, Some(version), &rec).await;
                    out.outcome = "unsettled";
                    out.reason = why;
                    return error(
                        StatusCode::BAD_GATEWAY,
                        "settlement_unknown",
                        "the settlement's outcome is not known yet; retry with the same payment \
                         header: you will get the content if it settled, and never pay twice",
                    );
                }
            }
        }
    };
    let settlement = settled.expect("settled above");
    let done = record(
        fingerprint,
        PaymentState::Settled {
            result_key: result_key.into(),
            settlement: settlement.clone(),
        },
        version + 1,
    );
    if let Err(e) = s.payments.put_if(key, Some(version), &done).await {
        // Settled on chain but not recorded: still deliver; a retry finds the
        // `Settling` record and the chain says it is used.
        tracing::error!(error = %e, "settled but the record could not be updated");
    }
    out.outcome = "settled";
    out.tx = settlement.transaction.clone();
    deliver(s, payment, result_key, &settlement).await
}

/// `200` with the kept content, its transaction link and the settlement header.
async fn deliver(
    s: &AppState,
    payment: &CheckedPayment,
    result_key: &str,
    settlement: &SettleResponse,
) -> Response {
    let bytes = match s.results.get(result_key).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::error!(result_key, "paid content is missing");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "content_missing",
                "the paid content could not be read; retry with the same payment header",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "reading paid content");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the paid content could not be read; retry with the same payment header",
            );
        }
    };
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "transactionUrl".into(),
            Value::String(s.seller.network.explorer_tx_url(&settlement.transaction)),
        );
    }
    let version = payment.version();
    let receipt = SettleResponse {
        success: true,
        error_reason: None,
        payer: Some(payment.payer.to_checksum(None)),
        transaction: settlement.transaction.clone(),
        network: s.seller.network.name_for(version).into(),
    };
    let name = if version == 1 {
        wire::X_PAYMENT_RESPONSE
    } else {
        wire::PAYMENT_RESPONSE
    };
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static(lower(name)),
        HeaderValue::from_str(&wire::encode_header(&receipt)).expect("base64 is a header value"),
    );
    resp
}

// ---------------------------------------------------------------------------
// Responses

fn record(fingerprint: &str, state: PaymentState, version: u64) -> PaymentRecord {
    PaymentRecord {
        fingerprint: fingerprint.into(),
        state,
        version,
        expires_at: now() + RECORD_TTL_SECS,
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": message, "code": code}))).into_response()
}

fn bad_request(code: &str, message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, code, message)
}

fn store_error(out: &mut Outcome, cause: &str) -> Response {
    tracing::error!(error = cause, "payment store");
    out.outcome = "failed";
    out.reason = "store".into();
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "payment state is unavailable; you were not charged, retry later",
    )
}

fn in_progress(lease: Duration) -> Response {
    let mut r = error(
        StatusCode::CONFLICT,
        "payment_in_progress",
        "this payment is being processed by another request; retry with the same payment header",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&lease.as_secs().clamp(1, 5).to_string()).expect("digits"),
    );
    r
}

fn generation_error(e: &GenerationError) -> Response {
    let (status, code) = match e {
        GenerationError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "generation_refused"),
        GenerationError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "generation_timeout"),
        _ => (StatusCode::BAD_GATEWAY, "generation_failed"),
    };
    error(status, code, &format!("{e}; you were not charged"))
}

/// `402` with the requirements: the v1 JSON body and the v2 header.
fn payment_required(offered: &Offered, reason: &str, code: Option<&str>) -> Response {
    let mut body = serde_json::to_value(offered.v1_body(reason)).expect("serialises");
    if let (Some(code), Some(o)) = (code, body.as_object_mut()) {
        o.insert("code".into(), Value::String(code.into()));
    }
    let mut resp = (StatusCode::PAYMENT_REQUIRED, Json(body)).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static("payment-required"),
        HeaderValue::from_str(&wire::encode_header(&offered.v2_doc(reason)))
            .expect("base64 is a header value"),
    );
    resp
}

fn refusal(offered: &Offered, r: &Refusal) -> Response {
    if r.status == StatusCode::PAYMENT_REQUIRED {
        payment_required(offered, &r.reason, Some(r.code))
    } else {
        error(r.status, r.code, &r.reason)
    }
}

fn resource_url(s: &AppState, headers: &HeaderMap, route: &str) -> String {
    if let Some(base) = &s.public_url {
        return format!("{base}{route}");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}{route}")
}

fn lower(name: &'static str) -> &'static str {
    match name {
        wire::X_PAYMENT_RESPONSE => "x-payment-response",
        _ => "payment-response",
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
