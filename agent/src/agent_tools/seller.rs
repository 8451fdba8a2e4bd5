//! The image seller (the x402 gateway) as the agent's tools see it: quote,
//! prepare (sign), send.
//!
//! x402 in three steps, split so the signed payment can be persisted between
//! signing and sending (see [`crate::ledger`]):
//! 1. **quote**: `POST {GATEWAY_URL}/generate_image` without payment. The
//!    seller answers `402` with its requirements: v2 in the base64
//!    `PAYMENT-REQUIRED` header, v1 as the JSON body.
//! 2. **prepare**: sign an EIP-3009 `transferWithAuthorization` for exactly
//!    the quoted amount to exactly the quoted payee, under the token's
//!    EIP-712 domain, and encode it as the `PAYMENT-SIGNATURE` (v2) or
//!    `X-PAYMENT` (v1) header. Nothing leaves the process.
//! 3. **send**: the same POST with the payment header. `200` carries the
//!    image and the settlement (`PAYMENT-RESPONSE`); sending the same header
//!    again returns the same image without a second charge (the seller keys
//!    its results by the payment, and the token accepts a nonce once).
//!
//! The `tools` crate is meant to provide this client (`tools::client`); it
//! was still a placeholder when this was written, so this module carries a
//! minimal one on `reqwest` + the shared `x402` wire types, behind the
//! [`ImageSeller`] trait so the swap touches only [`X402Seller`].

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, U256},
    signers::Signer,
};
use async_trait::async_trait;
use reqwest::StatusCode;
use x402::{
    Network,
    catalog::{ImageRequest, ImageResponse},
    eip3009::{self, Authorization},
    wire::{
        self, ExactEvmPayload, PaymentPayloadV1, PaymentPayloadV2, PaymentRequiredV1,
        PaymentRequiredV2,
    },
};

use crate::ledger::{PreparedPayment, Quote};

/// An image bought and its settlement.
#[derive(Clone, Debug)]
pub struct Purchase {
    pub image: ImageResponse,
    /// Settlement transaction hash (from `PAYMENT-RESPONSE`), if reported.
    pub transaction: String,
    pub payer: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SellerError {
    /// The seller refused the request itself (bad prompt...): no payment involved.
    #[error("the image service refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The seller answered `402` to a payment: it was not accepted and did not settle.
    #[error("the image service did not accept the payment: {0}")]
    PaymentRejected(String),
    /// No answer, a 5xx, or an unreadable answer: the payment may or may not
    /// have settled. Re-send the same payment to find out.
    #[error("the image service did not answer clearly: {0}")]
    Indeterminate(String),
    #[error("the image service's payment requirements are unusable: {0}")]
    BadQuote(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The paid image service.
#[async_trait]
pub trait ImageSeller: Send + Sync {
    /// The buyer's address (the signer's).
    fn payer(&self) -> Address;
    /// The seller's price for `req` (no money moves).
    async fn quote(&self, req: &ImageRequest) -> Result<Quote, SellerError>;
    /// Signs a payment of exactly `quote` (no money moves until sent).
    async fn prepare(&self, quote: &Quote) -> Result<PreparedPayment, SellerError>;
    /// Sends `req` with `payment`. Safe to repeat with the same payment.
    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError>;
}

/// x402 over HTTP to `{base}/generate_image`, signing with any alloy signer
/// (a local key here; KMS/CDP signers implement the same trait).
pub struct X402Seller {
    http: reqwest::Client,
    url: String,
    network: Network,
    signer: Arc<dyn Signer + Send + Sync>,
}

/// How long to wait for the seller (image generation takes seconds).
const SELLER_TIMEOUT: Duration = Duration::from_secs(120);
/// Authorizations are valid from a little in the past, for clock skew.
const VALID_AFTER_SKEW_SECS: u64 = 600;

impl X402Seller {
    pub fn new(gateway_url: &str, network: Network, signer: Arc<dyn Signer + Send + Sync>) -> Self {
        X402Seller {
            http: reqwest::Client::builder()
                .timeout(SELLER_TIMEOUT)
                .build()
                .expect("reqwest client builds"),
            url: format!("{}/generate_image", gateway_url.trim_end_matches('/')),
            network,
            signer,
        }
    }

    fn parse_402(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<Quote, SellerError> {
        let bad = |m: String| SellerError::BadQuote(m);
        if let Some(h) = headers.get(wire::PAYMENT_REQUIRED) {
            let doc: PaymentRequiredV2 = wire::decode_header(h.to_str().unwrap_or_default())
                .map_err(|e| bad(e.to_string()))?;
            let req = doc
                .accepts
                .iter()
                .find(|r| r.scheme == wire::SCHEME_EXACT && r.network == self.network.caip2())
                .ok_or_else(|| bad(format!("no exact offer on {}", self.network.caip2())))?;
            let offer = wire::Offer::from_v2(req).map_err(|e| bad(e.to_string()))?;
            return Ok(Quote {
                version: 2,
                amount: offer.amount,
                pay_to: offer.pay_to,
                asset: offer.asset,
                network: offer.network,
                resource: doc.resource.url.clone(),
                max_timeout_seconds: offer.max_timeout_seconds,
                requirement: serde_json::to_value(req).expect("serialises"),
                resource_info: Some(serde_json::to_value(&doc.resource).expect("serialises")),
            });
        }
        let doc: PaymentRequiredV1 =
            serde_json::from_slice(body).map_err(|e| bad(format!("402 body: {e}")))?;
        let req = doc
            .accepts
            .iter()
            .find(|r| r.scheme == wire::SCHEME_EXACT && r.network == self.network.v1_name())
            .ok_or_else(|| bad(format!("no exact offer on {}", self.network.v1_name())))?;
        let offer = wire::Offer::from_v1(req).map_err(|e| bad(e.to_string()))?;
        Ok(Quote {
            version: 1,
            amount: offer.amount,
            pay_to: offer.pay_to,
            asset: offer.asset,
            network: offer.network,
            resource: req.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
            requirement: serde_json::to_value(req).expect("serialises"),
            resource_info: None,
        })
    }
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl ImageSeller for X402Seller {
    fn payer(&self) -> Address {
        self.signer.address()
    }

    async fn quote(&self, req: &ImageRequest) -> Result<Quote, SellerError> {
        let resp = self
            .http
            .post(&self.url)
            .json(req)
            .send()
            .await
            .map_err(|e| SellerError::BadQuote(format!("cannot reach the image service: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| SellerError::BadQuote(e.to_string()))?;
        match status {
            StatusCode::PAYMENT_REQUIRED => self.parse_402(&headers, &body),
            s if s.is_client_error() => Err(SellerError::Refused {
                status: s.as_u16(),
                message: error_message(&body),
            }),
            s => Err(SellerError::BadQuote(format!(
                "expected 402 with a price, got {s}: {}",
                error_message(&body)
            ))),
        }
    }

    async fn prepare(&self, quote: &Quote) -> Result<PreparedPayment, SellerError> {
        let extra: wire::TokenExtra = quote
            .requirement
            .get("extra")
            .cloned()
            .and_then(|e| serde_json::from_value(e).ok())
            .ok_or_else(|| {
                SellerError::BadQuote("the offer lacks the token's EIP-712 name/version".into())
            })?;
        let now = now_secs();
        let valid_before = now + quote.max_timeout_seconds.max(60);
        let auth = Authorization {
            from: self.signer.address(),
            to: quote.pay_to,
            value: quote.amount.to_u256(),
            valid_after: U256::from(now.saturating_sub(VALID_AFTER_SKEW_SECS)),
            valid_before: U256::from(valid_before),
            nonce: Authorization::random_nonce(),
        };
        let domain = eip3009::domain(
            &extra.name,
            &extra.version,
            quote.network.chain_id(),
            quote.asset,
        );
        let sig = self
            .signer
            .sign_hash(&auth.signing_hash(&domain))
            .await
            .map_err(|e| SellerError::Signing(e.to_string()))?;
        let payload = ExactEvmPayload {
            signature: sig.as_bytes().to_vec().into(),
            authorization: auth.clone(),
        };
        let (header_name, header_value) = if quote.version == 1 {
            let doc = PaymentPayloadV1 {
                x402_version: 1,
                scheme: wire::SCHEME_EXACT.into(),
                network: quote.network.v1_name().into(),
                payload,
            };
            (wire::X_PAYMENT, wire::encode_header(&doc))
        } else {
            let accepted = serde_json::from_value(quote.requirement.clone())
                .map_err(|e| SellerError::BadQuote(e.to_string()))?;
            let resource = quote
                .resource_info
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| SellerError::BadQuote(e.to_string()))?;
            let doc = PaymentPayloadV2 {
                x402_version: 2,
                resource,
                accepted,
                payload,
                extensions: None,
            };
            (wire::PAYMENT_SIGNATURE, wire::encode_header(&doc))
        };
        Ok(PreparedPayment {
            header_name: header_name.into(),
            header_value,
            amount: quote.amount,
            pay_to: quote.pay_to,
            payer: auth.from,
            nonce: auth.nonce.to_string(),
            valid_before,
        })
    }

    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError> {
        let resp = self
            .http
            .post(&self.url)
            .header(payment.header_name.as_str(), payment.header_value.as_str())
            .json(req)
            .send()
            .await
            .map_err(|e| SellerError::Indeterminate(e.to_string()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| SellerError::Indeterminate(e.to_string()))?;
        match status {
            StatusCode::OK => {
                let image: ImageResponse = serde_json::from_slice(&body)
                    .map_err(|e| SellerError::Indeterminate(format!("unreadable image: {e}")))?;
                let settle = headers
                    .get(wire::PAYMENT_RESPONSE)
                    .or_else(|| headers.get(wire::X_PAYMENT_RESPONSE))
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| wire::decode_header::<wire::SettleResponse>(h).ok());
                Ok(Purchase {
                    transaction: settle
                        .as_ref()
                        .map(|s| s.transaction.clone())
                        .unwrap_or_default(),
                    payer: settle
                        .and_then(|s| s.payer)
                        .unwrap_or_else(|| payment.payer.to_string()),
                    image,
                })
            }
            StatusCode::PAYMENT_REQUIRED => {
                let reason = headers
                    .get(wire::PAYMENT_REQUIRED)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| wire::decode_header::<PaymentRequiredV2>(h).ok())
                    .and_then(|d| d.error)
                    .unwrap_or_else(|| error_message(&body));
                Err(SellerError::PaymentRejected(reason))
            }
            s if s.is_client_error()
                && s != StatusCode::REQUEST_TIMEOUT
                && s != StatusCode::CONFLICT
                && s != StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(SellerError::Refused {
                    status: s.as_u16(),
                    message: error_message(&body),
                })
            }
            s => Err(SellerError::Indeterminate(format!(
                "{s}: {}",
                error_message(&body)
            ))),
        }
    }
}
