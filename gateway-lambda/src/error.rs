//! Every answer that is not the content: one enum, one `IntoResponse`. A
//! client gets a stable `code`, a message that says what to do, and, where
//! money is concerned, whether it was charged; internal causes are logged
//! by the flow, never sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use x402::wire;

use crate::{
    generate::GenerationError,
    payment::{HeaderRefusal, Offered},
};

#[derive(Debug)]
pub enum ApiError {
    /// The request itself is wrong (400, 409, 413, 431...): fix it, do not retry.
    Invalid {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// `402` with our requirements: pay (again). `code` says why a payment
    /// that was presented did not buy anything.
    PaymentRequired {
        offered: Box<Offered>,
        reason: String,
        code: Option<&'static str>,
    },
    /// Another request holds this payment: retry with the same header.
    InProgress { retry_after_secs: u64 },
    /// The payer's reservations kept changing under this request (other
    /// instances reserving for the same payer): not charged, retry shortly.
    PayerBusy,
    /// Generation failed: not charged.
    Generation(GenerationError),
    /// The facilitator could not be reached for `/verify`: not charged.
    FacilitatorUnavailable,
    /// The chain could not be read before generating: not charged.
    ChainUnavailable,
    /// The settlement's outcome is not known yet: retry with the same header.
    SettlementUnknown,
    /// Payment state or results cannot be read or written.
    Storage { charged: bool },
    /// Paid content is missing from the result store.
    ContentMissing,
    /// A bug: the paid flow panicked.
    Internal,
}

impl ApiError {
    pub fn invalid(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::invalid(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn payment_required(
        offered: &Offered,
        reason: impl Into<String>,
        code: Option<&'static str>,
    ) -> Self {
        ApiError::PaymentRequired {
            offered: Box::new(offered.clone()),
            reason: reason.into(),
            code,
        }
    }

    /// A payment header refused by [`crate::payment`].
    pub fn refusal(offered: &Offered, r: HeaderRefusal) -> Self {
        if r.status == StatusCode::PAYMENT_REQUIRED {
            Self::payment_required(offered, r.reason, Some(r.code))
        } else {
            Self::invalid(r.status, r.code, r.reason)
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { status, .. } => *status,
            ApiError::PaymentRequired { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::InProgress { .. } => StatusCode::CONFLICT,
            ApiError::Generation(GenerationError::Refused(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Generation(GenerationError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Generation(_)
            | ApiError::FacilitatorUnavailable
            | ApiError::SettlementUnknown => StatusCode::BAD_GATEWAY,
            ApiError::ChainUnavailable | ApiError::Storage { .. } | ApiError::PayerBusy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::ContentMissing | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": message, "code": code}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            ApiError::Invalid { code, message, .. } => body(status, code, &message),
            ApiError::PaymentRequired {
                offered,
                reason,
                code,
            } => {
                // v1: the JSON body; v2: the PAYMENT-REQUIRED header.
                let mut b = serde_json::to_value(offered.v1_body(&reason)).expect("serialises");
                if let (Some(code), Some(o)) = (code, b.as_object_mut()) {
                    o.insert("code".into(), Value::String(code.into()));
                }
                let mut resp = (status, Json(b)).into_response();
                resp.headers_mut().insert(
                    wire::PAYMENT_REQUIRED,
                    HeaderValue::from_str(&wire::encode_header(&offered.v2_doc(&reason)))
                        .expect("base64 is a header value"),
                );
                resp
            }
            ApiError::InProgress { retry_after_secs } => {
                let mut r = body(
                    status,
                    "payment_in_progress",
                    "this payment is being processed by another request; retry with the same \
                     payment header",
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&retry_after_secs.clamp(1, 5).to_string())
                        .expect("digits"),
                );
                r
            }
            ApiError::PayerBusy => {
                let mut r = body(
                    status,
                    "payer_busy",
                    "too many payments from this payer are being reserved at this moment; you \
                     were not charged, retry with the same payment header",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            ApiError::Generation(e) => {
                let code = match e {
                    GenerationError::Refused(_) => "generation_refused",
                    GenerationError::Timeout => "generation_timeout",
                    _ => "generation_failed",
                };
                body(status, code, &format!("{e}; you were not charged"))
            }
            ApiError::FacilitatorUnavailable => body(
                status,
                "facilitator_unavailable",
                "the payment facilitator could not be reached; you were not charged, retry later",
            ),
            ApiError::ChainUnavailable => body(
                status,
                "chain_unavailable",
                "the chain could not be read; you were not charged, retry later",
            ),
            ApiError::SettlementUnknown => body(
                status,
                "settlement_unknown",
                "the settlement's outcome is not known yet; retry with the same payment header: \
                 you will get the content if it settled, and never pay twice",
            ),
            ApiError::Storage { charged: false } => body(
                status,
                "storage_unavailable",
                "payment state is unavailable; you were not charged, retry later",
            ),
            ApiError::Storage { charged: true } => body(
                status,
                "storage_unavailable",
                "the paid content could not be read; retry with the same payment header",
            ),
            ApiError::ContentMissing => body(
                status,
                "content_missing",
                "the paid content could not be read; retry with the same payment header",
            ),
            ApiError::Internal => body(
                status,
                "internal",
                "internal error; retry with the same payment header",
            ),
        }
    }
}
