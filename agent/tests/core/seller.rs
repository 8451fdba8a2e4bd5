//! An x402 v2 image seller for the money tests, settling through the local
//! stack's official x402 facilitator on Anvil.
//!
//! The real seller (`gateway-lambda`) was still a placeholder when these
//! tests were written, so this speaks its contract (POST /generate_image
//! with `x402::catalog::ImageRequest`: 402 + `PAYMENT-REQUIRED`, or 200
//! `ImageResponse` + `PAYMENT-RESPONSE`; a repeated payment returns the same
//! content without a second settlement). Money still moves for real: verify
//! and settle go to the facilitator, which submits `transferWithAuthorization`
//! on chain. Test hooks can hold a paid request (to kill the agent at a
//! precise point) and quote for the wrong payee (a compromised seller).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
};

use alloy::primitives::Address;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use tokio::sync::{Mutex, Notify};
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageRequest, ImageResponse},
    facilitator::{Facilitator, HttpFacilitator},
    wire::{
        self, PaymentPayload, PaymentRequiredV2, Requirements, RequirementsV2, ResourceInfo,
        TokenExtra,
    },
};

/// Where a paid request may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    None,
    /// After verification, before settling.
    BeforeSettle,
    /// After settling (money moved), before answering.
    AfterSettle,
}

pub struct SellerState {
    stack: testkit::Stack,
    facilitator: HttpFacilitator,
    pub pay_to: std::sync::Mutex<Address>,
    pub asset: std::sync::Mutex<Address>,
    url: std::sync::Mutex<String>,
    /// Answers by payment nonce: the seller's idempotency.
    results: Mutex<HashMap<String, (ImageResponse, wire::SettleResponse)>>,
    pub paid_requests: AtomicU32,
    pub settlements: AtomicU32,
    pub quotes: AtomicU32,
    hold: std::sync::Mutex<Hold>,
    /// Signalled when a held request reaches its hold point.
    pub held: Notify,
    release: Notify,
    released: AtomicBool,
}

#[derive(Clone)]
pub struct TestSeller(pub Arc<SellerState>);

/// standard 0.04, premium 0.50 USDC.
pub fn price(req: &ImageRequest) -> Usdc {
    match req.quality {
        ImageQuality::Standard => Usdc::from_atomic(40_000),
        ImageQuality::Premium => Usdc::from_atomic(500_000),
    }
}

impl TestSeller {
    pub async fn start(stack: &testkit::Stack) -> TestSeller {
        let state = Arc::new(SellerState {
            facilitator: stack.facilitator(),
            pay_to: std::sync::Mutex::new(stack.seller_wallet),
            asset: std::sync::Mutex::new(stack.usdc_contract),
            stack: stack.clone(),
            url: std::sync::Mutex::new(String::new()),
            results: Mutex::default(),
            paid_requests: AtomicU32::new(0),
            settlements: AtomicU32::new(0),
            quotes: AtomicU32::new(0),
            hold: std::sync::Mutex::new(Hold::None),
            held: Notify::new(),
            release: Notify::new(),
            released: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/generate_image", post(generate))
            .with_state(TestSeller(state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.url.lock().unwrap() = format!("{base}/generate_image");
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestSeller(state)
    }

    pub fn base_url(&self) -> String {
        self.0
            .url
            .lock()
            .unwrap()
            .trim_end_matches("/generate_image")
            .to_owned()
    }

    pub fn hold(&self, h: Hold) {
        *self.0.hold.lock().unwrap() = h;
        self.0.released.store(false, Ordering::SeqCst);
    }

    /// Lets held requests go and stops holding new ones.
    pub fn release(&self) {
        *self.0.hold.lock().unwrap() = Hold::None;
        self.0.released.store(true, Ordering::SeqCst);
        self.0.release.notify_waiters();
    }

    pub fn settlements(&self) -> u32 {
        self.0.settlements.load(Ordering::SeqCst)
    }

    pub fn paid_requests(&self) -> u32 {
        self.0.paid_requests.load(Ordering::SeqCst)
    }
}

fn requirement(s: &SellerState, req: &ImageRequest) -> RequirementsV2 {
    RequirementsV2 {
        scheme: wire::SCHEME_EXACT.into(),
        network: s.stack.network.caip2().into(),
        amount: price(req).atomic_string(),
        asset: *s.asset.lock().unwrap(),
        pay_to: *s.pay_to.lock().unwrap(),
        max_timeout_seconds: 300,
        extra: Some(TokenExtra {
            name: "USDC".into(),
            version: "2".into(),
        }),
    }
}

fn payment_required(s: &SellerState, req: &ImageRequest, error: Option<String>) -> Response {
    let doc = PaymentRequiredV2 {
        x402_version: 2,
        error,
        resource: ResourceInfo {
            url: s.url.lock().unwrap().clone(),
            description: "image generation".into(),
            mime_type: "application/json".into(),
        },
        accepts: vec![requirement(s, req)],
        extensions: None,
    };
    (
        StatusCode::PAYMENT_REQUIRED,
        [(wire::PAYMENT_REQUIRED, wire::encode_header(&doc))],
        Json(serde_json::json!({})),
    )
        .into_response()
}

async fn wait_at(s: &SellerState, point: Hold) {
    if *s.hold.lock().unwrap() == point {
        let released = s.release.notified();
        s.held.notify_one();
        if !s.released.load(Ordering::SeqCst) {
            released.await;
        }
    }
}

fn png(seed: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, 4, 4);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    let [a, b, c, _] = seed.to_le_bytes();
    w.write_image_data(&[a, b, c].repeat(16)).unwrap();
    drop(w);
    bytes
}

async fn generate(
    State(TestSeller(s)): State<TestSeller>,
    headers: HeaderMap,
    Json(req): Json<ImageRequest>,
) -> Response {
    let Some(header) = headers
        .get(wire::PAYMENT_SIGNATURE)
        .and_then(|h| h.to_str().ok())
    else {
        s.quotes.fetch_add(1, Ordering::SeqCst);
        return payment_required(&s, &req, None);
    };
    s.paid_requests.fetch_add(1, Ordering::SeqCst);
    let Ok(PaymentPayload::V2(payment)) = wire::decode_payment(header) else {
        return payment_required(&s, &req, Some("invalid payment header".into()));
    };
    let expected = requirement(&s, &req);
    if payment.accepted != expected {
        return payment_required(&s, &req, Some("payment does not match the offer".into()));
    }
    let nonce = payment.payload.authorization.nonce.to_string();
    // One paid request at a time per nonce (here: at all), so a concurrent
    // repeat waits and then finds the stored result.
    let mut results = s.results.lock().await;
    if let Some((image, settle)) = results.get(&nonce) {
        return ok(image.clone(), settle);
    }
    let payload = PaymentPayload::V2(payment);
    let requirements = Requirements::V2(expected);
    match s.facilitator.verify(&payload, &requirements).await {
        Ok(v) if v.is_valid => {}
        Ok(v) => return payment_required(&s, &req, v.invalid_reason),
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
    wait_at(&s, Hold::BeforeSettle).await;
    let settle = match s.facilitator.settle(&payload, &requirements).await {
        Ok(r) if r.success => r,
        Ok(r) => return payment_required(&s, &req, r.error_reason),
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    s.settlements.fetch_add(1, Ordering::SeqCst);
    let seed = req.seed.unwrap_or_else(rand::random);
    let image = ImageResponse {
        image_base64: base64::engine::general_purpose::STANDARD.encode(png(seed)),
        content_type: "image/png".into(),
        width: 4,
        height: 4,
        size: req.size,
        quality: req.quality,
        seed,
        price: price(&req),
        transaction_url: s.stack.network.explorer_tx_url(&settle.transaction),
    };
    results.insert(nonce, (image.clone(), settle.clone()));
    drop(results);
    wait_at(&s, Hold::AfterSettle).await;
    ok(image, &settle)
}

fn ok(image: ImageResponse, settle: &wire::SettleResponse) -> Response {
    (
        StatusCode::OK,
        [(wire::PAYMENT_RESPONSE, wire::encode_header(settle))],
        Json(image),
    )
        .into_response()
}
