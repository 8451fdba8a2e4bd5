//! The HTTP edge: `POST /generate_image`, `POST /generate`, `GET /pricing`,
//! `GET /health`. A route parses and prices the request from our own table,
//! then hands it to the paid flow ([`crate::flow`]); every answer that is not
//! content is an [`ApiError`].

use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};
use x402::{
    catalog::{ImageQuality, ImageRequest, ImageSize, MAX_PROMPT_CHARS},
    wire,
};

use crate::{
    error::ApiError,
    flow::{Product, sell},
    pricing,
    state::AppState,
};

/// Largest request body (a prompt is at most a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `content` for `nova-llm`.
pub const MAX_TEXT_CHARS: usize = 8_000;
pub fn app(state: Arc<AppState>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            wire::PAYMENT_SIGNATURE,
            wire::X_PAYMENT,
        ])
        .expose_headers([
            wire::PAYMENT_REQUIRED,
            wire::PAYMENT_RESPONSE,
            wire::X_PAYMENT_RESPONSE,
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
        Err(e) => return invalid_body(&e),
    };
    if let Err(e) = check_prompt(&req.prompt, MAX_PROMPT_CHARS) {
        return e.into_response();
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
        Err(e) => return invalid_body(&e),
    };
    match b.model.as_str() {
        "nova-canvas" => {
            if let Err(e) = check_prompt(&b.content, MAX_PROMPT_CHARS) {
                return e.into_response();
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
            if let Err(e) = check_prompt(&b.content, MAX_TEXT_CHARS) {
                return e.into_response();
            }
            // The price needs the token count, so counting happens for
            // quotes too; it is cheap and moves no money.
            let tokens = match s.generator.count_input_tokens(&b.content).await {
                Ok(t) => t,
                Err(e) => return ApiError::Generation(e).into_response(),
            };
            let price = pricing::text_price(tokens);
            // The model may write exactly the output tokens priced.
            let product = Product::Text {
                prompt: b.content,
                max_output_tokens: pricing::text_output_estimate(tokens),
            };
            sell(&s, &headers, product, price, started).await
        }
        other => ApiError::bad_request(
            "unknown_model",
            format!("model {other:?} is not offered (nova-llm or nova-canvas)"),
        )
        .into_response(),
    }
}

fn invalid_body(e: &serde_json::Error) -> Response {
    ApiError::bad_request("invalid_request", format!("invalid request body: {e}")).into_response()
}

fn check_prompt(prompt: &str, max: usize) -> Result<(), ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request("empty_prompt", "the prompt is empty"));
    }
    let n = prompt.chars().count();
    if n > max {
        return Err(ApiError::invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            "prompt_too_long",
            format!("the prompt has {n} characters; at most {max} are accepted"),
        ));
    }
    Ok(())
}
