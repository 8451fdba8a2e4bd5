//! The facilitator: the service that checks a payment (`/verify`) and submits
//! it on chain (`/settle`) for the seller.
//!
//! Both versions share one HTTP API: `POST /verify` and `POST /settle` with
//! `{x402Version, paymentPayload, paymentRequirements}`, and `GET /supported`.
//! The public testnet facilitator needs no auth; Coinbase's CDP facilitator
//! wants a fresh bearer JWT per request, supplied here by a [`BearerAuth`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::Serialize;

use crate::wire::{PaymentPayload, Requirements, SettleResponse, Supported, VerifyResponse};

/// Something that checks and settles payments. The gateway holds an
/// `Arc<dyn Facilitator>`; tests wrap it to inject faults.
#[async_trait]
pub trait Facilitator: Send + Sync {
    async fn verify(
        &self,
        payment: &PaymentPayload,
        requirements: &Requirements,
    ) -> Result<VerifyResponse, FacilitatorError>;

    async fn settle(
        &self,
        payment: &PaymentPayload,
        requirements: &Requirements,
    ) -> Result<SettleResponse, FacilitatorError>;

    async fn supported(&self) -> Result<Supported, FacilitatorError>;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FacilitatorError {
    /// The request may or may not have reached the facilitator.
    #[error("facilitator unreachable: {0}")]
    Transport(String),
    #[error("facilitator timed out")]
    Timeout,
    #[error("facilitator answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("facilitator answer not understood: {0}")]
    Decode(String),
    #[error("facilitator auth: {0}")]
    Auth(String),
}

impl FacilitatorError {
    /// True when the outcome is unknown (the call may have been applied):
    /// safe to retry `/verify`, but `/settle` must first check the chain.
    pub fn is_indeterminate(&self) -> bool {
        matches!(
            self,
            FacilitatorError::Transport(_) | FacilitatorError::Timeout
        ) || matches!(self, FacilitatorError::Status { status, .. } if *status >= 500)
    }
}

/// Supplies an `Authorization: Bearer` token for one request (method, host+path).
pub trait BearerAuth: Send + Sync {
    fn bearer(&self, method: &str, host_and_path: &str) -> Result<String, String>;
}

/// The facilitator HTTP API over reqwest.
#[derive(Clone)]
pub struct HttpFacilitator {
    base: String,
    http: reqwest::Client,
    auth: Option<Arc<dyn BearerAuth>>,
}

impl std::fmt::Debug for HttpFacilitator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFacilitator")
            .field("base", &self.base)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    x402_version: u8,
    payment_payload: serde_json::Value,
    payment_requirements: &'a Requirements,
}

impl HttpFacilitator {
    /// `base` is the URL the routes hang off (e.g. `https://x402.org/facilitator`).
    pub fn new(base: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .expect("reqwest client builds");
        HttpFacilitator {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
            auth: None,
        }
    }

    pub fn with_auth(mut self, auth: Arc<dyn BearerAuth>) -> Self {
        self.auth = Some(auth);
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: &reqwest::Method,
        route: &str,
    ) -> Result<reqwest::RequestBuilder, FacilitatorError> {
        let url = format!("{}/{route}", self.base);
        let mut rb = self.http.request(method.clone(), &url);
        if let Some(auth) = &self.auth {
            let parsed =
                reqwest::Url::parse(&url).map_err(|e| FacilitatorError::Auth(e.to_string()))?;
            let host_path = format!("{}{}", parsed.host_str().unwrap_or_default(), parsed.path());
            let token = auth
                .bearer(method.as_str(), &host_path)
                .map_err(FacilitatorError::Auth)?;
            rb = rb.bearer_auth(token);
        }
        Ok(rb)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
        accept_status: &[u16],
    ) -> Result<T, FacilitatorError> {
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                FacilitatorError::Timeout
            } else {
                FacilitatorError::Transport(e.to_string())
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                FacilitatorError::Timeout
            } else {
                FacilitatorError::Transport(e.to_string())
            }
        })?;
        if !(200..300).contains(&status) && !accept_status.contains(&status) {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(FacilitatorError::Status { status, body });
        }
        serde_json::from_slice(&bytes).map_err(|e| FacilitatorError::Decode(e.to_string()))
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        payment: &PaymentPayload,
        requirements: &Requirements,
    ) -> Result<T, FacilitatorError> {
        let body = Body {
            x402_version: payment.version(),
            payment_payload: payment.to_json(),
            payment_requirements: requirements,
        };
        // Some facilitators answer a failed verify/settle with 400 and the
        // usual JSON document; that is an answer, not a transport error.
        self.send(
            self.request(&reqwest::Method::POST, route)?.json(&body),
            &[400, 402],
        )
        .await
    }
}

#[async_trait]
impl Facilitator for HttpFacilitator {
    async fn verify(
        &self,
        payment: &PaymentPayload,
        requirements: &Requirements,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.post("verify", payment, requirements).await
    }

    async fn settle(
        &self,
        payment: &PaymentPayload,
        requirements: &Requirements,
    ) -> Result<SettleResponse, FacilitatorError> {
        self.post("settle", payment, requirements).await
    }

    async fn supported(&self) -> Result<Supported, FacilitatorError> {
        self.send(self.request(&reqwest::Method::GET, "supported")?, &[])
            .await
    }
}
