//! An x402 client (v1 and v2) that pays only within a [`PaymentPolicy`].
//!
//! (Over 500 lines on purpose: the three steps below share the request, the
//! bounded body reads and the header codec, and the file is largely the
//! buyer's rules written out; its tests live in `tests/client/`.)
//!
//! x402 from the buyer's side, in three steps kept separate so a caller can
//! persist the signed payment between signing and sending (the agent's
//! ledger does: after a crash it re-sends the same payment instead of
//! signing a second one):
//! 1. [`X402Client::quote`]: send the request unpaid. The seller answers
//!    `402` with its requirements: v2 in the base64 `PAYMENT-REQUIRED`
//!    header (read first), v1 as the JSON body. The price is the seller's:
//!    if it cannot be reached, there is no quote (never an invented price).
//! 2. [`X402Client::prepare`]: the policy checks network, asset, payee,
//!    amount and budget; only then is an EIP-3009 `TransferWithAuthorization`
//!    for exactly the quoted amount signed as EIP-712 typed data by the
//!    [`PaymentSigner`] (random nonce, `validAfter = now - 600`,
//!    `validBefore = now + maxTimeoutSeconds`). Nothing leaves the process.
//! 3. [`X402Client::send`]: the same request again with `PAYMENT-SIGNATURE`
//!    (v2) or `X-PAYMENT` (v1). A `200` carries the content and the
//!    settlement header (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`), parsed
//!    into a [`Receipt`]. Sending the same payment again is safe: the token
//!    accepts a nonce once, and a well-behaved seller answers a repeated
//!    payment with the content it already sold.
//!
//! What the buyer does not take from the seller's HTTP on trust:
//! - **Redirects are never followed** (the client is built with
//!   `redirect::Policy::none()`): a payment header is a bearer instrument
//!   until settled and goes only to the URL the caller named, never to a
//!   `Location` the seller picks. A 3xx is an answer like any other.
//! - **Bodies are bounded**: a 402 (or any error) answer is read up to
//!   [`MAX_402_BODY_BYTES`], paid content up to [`MAX_PAID_BODY_BYTES`];
//!   beyond that the answer is refused with [`ClientError::TooLarge`] (or,
//!   for a paid request, [`ClientError::Indeterminate`]: the payment may
//!   have settled, and the same payment can be sent again).
//! - **The validity window is capped** by the policy's `max_timeout` rule
//!   before anything is signed (see [`crate::policy`]).

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, U256};
use bytes::Bytes;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde::Serialize;
use x402::{
    eip3009::{self, Authorization},
    wire::{
        self, ExactEvmPayload, PaymentPayloadV1, PaymentPayloadV2, PaymentRequiredV1,
        PaymentRequiredV2, SettleResponse,
    },
};

pub use crate::purchase::{PreparedPayment, Quote, Receipt};
use crate::{
    policy::{self, Limits, PaymentPolicy, PolicyRefusal},
    signer::{PaymentSigner, SignerError},
};

/// Authorizations are valid from a little in the past, for clock skew.
pub const VALID_AFTER_SKEW_SECS: u64 = 600;
/// Sellers generate content before answering: allow them time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`X402Client::send`] keeps re-sending a payment the seller
/// reports as still in progress.
pub const IN_PROGRESS_WAIT: Duration = Duration::from_secs(60);
/// Largest 402 or error answer read: requirements and an error message
/// fit in a few KiB.
pub const MAX_402_BODY_BYTES: usize = 64 * 1024;
/// Largest successful answer read (paid content): a 2048x2048 PNG as
/// base64 JSON is well below this.
pub const MAX_PAID_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A request that can be sent twice (unpaid, then paid): its body is bytes.
#[derive(Clone, Debug)]
pub struct PaidRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

impl PaidRequest {
    pub fn get(url: impl Into<String>) -> Self {
        PaidRequest {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn post_json<T: Serialize>(url: impl Into<String>, body: &T) -> Self {
        PaidRequest {
            method: Method::POST,
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(Bytes::from(
                serde_json::to_vec(body).expect("serialisable body"),
            )),
        }
    }
}

/// The seller's answer to a request.
#[derive(Clone, Debug)]
pub struct PaidResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `None` when nothing was paid (the resource was free).
    pub receipt: Option<Receipt>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The seller could not be reached for a quote: there is no price.
    #[error("cannot reach the seller at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The seller refused the request itself (bad input...): no payment involved.
    #[error("the seller refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the seller's payment requirements are unusable: {0}")]
    BadQuote(String),
    #[error("payment refused by policy: {0}")]
    Policy(#[from] PolicyRefusal),
    #[error("signing failed: {0}")]
    Signing(#[from] SignerError),
    /// The seller answered `402` to the payment: not accepted, not settled.
    #[error("the seller did not accept the payment: {0}")]
    PaymentRejected(String),
    /// No answer, a 5xx, or an unreadable answer: the payment may or may not
    /// have settled. Send the same payment again to find out.
    #[error("the seller did not answer clearly: {0}")]
    Indeterminate(String),
    /// An unpaid answer larger than this client reads.
    #[error("the seller's {status} answer is larger than the {limit} bytes this client reads")]
    TooLarge { status: u16, limit: usize },
}

/// Why a body could not be read.
enum BodyError {
    TooLarge(usize),
    Read(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "the answer is larger than {limit} bytes"),
            BodyError::Read(e) => f.write_str(e),
        }
    }
}

/// The largest body read for an answer with `status`.
fn body_limit(status: StatusCode) -> usize {
    if status.is_success() {
        MAX_PAID_BODY_BYTES
    } else {
        MAX_402_BODY_BYTES
    }
}

/// Reads `resp`'s body, refusing it as soon as it is known to exceed
/// `limit` (by `Content-Length`, or while streaming a chunked body).
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The x402 buyer.
pub struct X402Client {
    http: reqwest::Client,
    signer: Arc<dyn PaymentSigner>,
    policy: PaymentPolicy,
}

impl X402Client {
    pub fn new(signer: Arc<dyn PaymentSigner>, policy: PaymentPolicy) -> Self {
        Self::with_http(
            reqwest::Client::builder().timeout(DEFAULT_TIMEOUT),
            signer,
            policy,
        )
    }

    /// With the caller's HTTP settings, except redirects: they are always
    /// off, so a payment header never reaches a URL the seller chose.
    pub fn with_http(
        http: reqwest::ClientBuilder,
        signer: Arc<dyn PaymentSigner>,
        policy: PaymentPolicy,
    ) -> Self {
        X402Client {
            http: http
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client builds"),
            signer,
            policy,
        }
    }

    pub fn payer(&self) -> Address {
        self.signer.address()
    }

    pub fn policy(&self) -> &PaymentPolicy {
        &self.policy
    }

    fn build(&self, req: &PaidRequest) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(req.method.clone(), &req.url);
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = &req.body {
            rb = rb.body(b.clone());
        }
        rb
    }

    /// Sends `req` unpaid. `Ok(Err(response))` when the seller answered
    /// without asking for payment (a free resource).
    pub async fn probe(
        &self,
        req: &PaidRequest,
    ) -> Result<Result<Quote, PaidResponse>, ClientError> {
        let resp = self
            .build(req)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: req.url.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_body(resp, body_limit(status))
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(limit) => ClientError::TooLarge {
                    status: status.as_u16(),
                    limit,
                },
                BodyError::Read(reason) => ClientError::Unreachable {
                    url: req.url.clone(),
                    reason,
                },
            })?;
        match status {
            StatusCode::PAYMENT_REQUIRED => self.parse_402(&req.url, &headers, &body).map(Ok),
            s if s.is_success() => Ok(Err(PaidResponse {
                status,
                headers,
                body,
                receipt: None,
            })),
            s if s.is_client_error() => Err(ClientError::Refused {
                status: s.as_u16(),
                message: error_message(&body),
            }),
            s if s.is_redirection() => Err(ClientError::Refused {
                status: s.as_u16(),
                message: redirect_message(&headers),
            }),
            s => Err(ClientError::Unreachable {
                url: req.url.clone(),
                reason: format!("answered {s}: {}", error_message(&body)),
            }),
        }
    }

    /// The seller's price for `req` (no money moves).
    pub async fn quote(&self, req: &PaidRequest) -> Result<Quote, ClientError> {
        match self.probe(req).await? {
            Ok(q) => Ok(q),
            Err(r) => Err(ClientError::BadQuote(format!(
                "expected 402 with a price, got {}",
                r.status
            ))),
        }
    }

    /// Picks the requirement this client can pay: `exact` on the policy's
    /// network (v2 header first, v1 body otherwise).
    fn parse_402(&self, url: &str, headers: &HeaderMap, body: &[u8]) -> Result<Quote, ClientError> {
        let bad = |m: String| ClientError::BadQuote(m);
        let network = self.policy.network;
        if let Some(h) = headers.get(wire::PAYMENT_REQUIRED) {
            let doc: PaymentRequiredV2 = wire::decode_header(h.to_str().unwrap_or_default())
                .map_err(|e| bad(e.to_string()))?;
            let req = doc
                .accepts
                .iter()
                .find(|r| r.scheme == wire::SCHEME_EXACT && r.network == network.caip2())
                .ok_or_else(|| bad(format!("no exact offer on {}", network.caip2())))?;
            let offer = wire::Offer::from_v2(req).map_err(|e| bad(e.to_string()))?;
            return Ok(Quote {
                version: 2,
                amount: offer.amount,
                pay_to: offer.pay_to,
                asset: offer.asset,
                network: offer.network,
                resource: if doc.resource.url.is_empty() {
                    url.to_owned()
                } else {
                    doc.resource.url.clone()
                },
                max_timeout_seconds: offer.max_timeout_seconds,
                requirement: wire::Requirements::V2(req.clone()),
                resource_info: Some(doc.resource.clone()),
            });
        }
        let doc: PaymentRequiredV1 =
            serde_json::from_slice(body).map_err(|e| bad(format!("402 body: {e}")))?;
        let req = doc
            .accepts
            .iter()
            .find(|r| r.scheme == wire::SCHEME_EXACT && r.network == network.v1_name())
            .ok_or_else(|| bad(format!("no exact offer on {}", network.v1_name())))?;
        let offer = wire::Offer::from_v1(req).map_err(|e| bad(e.to_string()))?;
        Ok(Quote {
            version: 1,
            amount: offer.amount,
            pay_to: offer.pay_to,
            asset: offer.asset,
            network: offer.network,
            resource: req.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
            requirement: wire::Requirements::V1(req.clone()),
            resource_info: None,
        })
    }

    /// Checks `quote` against the policy and `limits`, then signs a payment
    /// of exactly its amount. Refused payments are never signed.
    pub async fn prepare(
        &self,
        quote: &Quote,
        limits: &Limits,
    ) -> Result<PreparedPayment, ClientError> {
        self.prepare_at(quote, limits, crate::clock::now_secs())
            .await
    }

    /// [`Self::prepare`] with the clock passed in: the authorization is
    /// valid from `now - VALID_AFTER_SKEW_SECS` until `now + maxTimeoutSeconds`.
    pub async fn prepare_at(
        &self,
        quote: &Quote,
        limits: &Limits,
        now: u64,
    ) -> Result<PreparedPayment, ClientError> {
        policy::check(&self.policy, &quote.ask(), limits)?;
        let extra = quote.requirement.extra().ok_or_else(|| {
            ClientError::BadQuote("the offer lacks the token's EIP-712 name/version".into())
        })?;
        // The policy capped the window; never wrap around regardless.
        let valid_before = now
            .checked_add(quote.max_timeout_seconds.max(60))
            .ok_or_else(|| ClientError::BadQuote("maxTimeoutSeconds overflows".into()))?;
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
            .sign_transfer_authorization(&auth, &domain)
            .await?;
        let payload = ExactEvmPayload {
            signature: sig.as_bytes().to_vec().into(),
            authorization: auth.clone(),
        };
        let header_value = if quote.version == 1 {
            let doc = PaymentPayloadV1 {
                x402_version: 1,
                scheme: wire::SCHEME_EXACT.into(),
                network: quote.network.v1_name().into(),
                payload,
            };
            wire::encode_header(&doc)
        } else {
            let wire::Requirements::V2(accepted) = quote.requirement.clone() else {
                return Err(ClientError::BadQuote(
                    "a v2 quote holds a v1 requirement".into(),
                ));
            };
            let resource = quote.resource_info.clone();
            let doc = PaymentPayloadV2 {
                x402_version: 2,
                resource,
                accepted,
                payload,
                extensions: None,
            };
            wire::encode_header(&doc)
        };
        Ok(PreparedPayment {
            header_name: PreparedPayment::header_name_for(quote.version),
            header_value,
            amount: quote.amount,
            pay_to: quote.pay_to,
            payer: auth.from,
            nonce: auth.nonce.to_string(),
            valid_before,
        })
    }

    /// Sends `req` with `payment`. Safe to repeat with the same payment.
    ///
    /// A seller still working on this very payment (an earlier attempt that
    /// lost its connection) answers `409 payment_in_progress`: the same
    /// payment is sent again after `Retry-After`, for up to
    /// [`IN_PROGRESS_WAIT`], since re-sending it can never pay twice.
    pub async fn send(
        &self,
        req: &PaidRequest,
        payment: &PreparedPayment,
    ) -> Result<PaidResponse, ClientError> {
        let deadline = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
        let (status, headers, body) = loop {
            let resp = self
                .build(req)
                .header(payment.header_name.as_str(), payment.header_value.as_str())
                .send()
                .await
                .map_err(|e| ClientError::Indeterminate(e.to_string()))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            // Too large is not "refused": the seller may have settled, and
            // the same payment can be sent again.
            let body = read_body(resp, body_limit(status))
                .await
                .map_err(|e| ClientError::Indeterminate(format!("{status}: {e}")))?;
            let in_progress = status == StatusCode::CONFLICT
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["code"] == "payment_in_progress");
            if !in_progress || tokio::time::Instant::now() >= deadline {
                break (status, headers, body);
            }
            let wait = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        match status {
            s if s.is_success() => {
                let settle = headers
                    .get(wire::PAYMENT_RESPONSE)
                    .or_else(|| headers.get(wire::X_PAYMENT_RESPONSE))
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| wire::decode_header::<SettleResponse>(h).ok());
                let receipt = settle.map(|s| Receipt {
                    transaction: s.transaction,
                    network: s.network,
                    payer: s.payer.unwrap_or_else(|| payment.payer.to_checksum(None)),
                    amount: payment.amount,
                    pay_to: payment.pay_to,
                    resource: req.url.clone(),
                });
                Ok(PaidResponse {
                    status,
                    headers,
                    body,
                    receipt,
                })
            }
            StatusCode::PAYMENT_REQUIRED => {
                let reason = headers
                    .get(wire::PAYMENT_REQUIRED)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| wire::decode_header::<PaymentRequiredV2>(h).ok())
                    .and_then(|d| d.error)
                    .unwrap_or_else(|| error_message(&body));
                Err(ClientError::PaymentRejected(reason))
            }
            // Not followed (see the module docs); whether the payment settled
            // is unknown, and only the same URL is ever asked again.
            s if s.is_redirection() => Err(ClientError::Indeterminate(format!(
                "{s}: {}",
                redirect_message(&headers)
            ))),
            s if s.is_client_error()
                && s != StatusCode::REQUEST_TIMEOUT
                && s != StatusCode::CONFLICT
                && s != StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(ClientError::Refused {
                    status: s.as_u16(),
                    message: error_message(&body),
                })
            }
            s => Err(ClientError::Indeterminate(format!(
                "{s}: {}",
                error_message(&body)
            ))),
        }
    }

    /// Quote, check, sign and send in one go. A free resource is returned
    /// as it is, without a receipt.
    pub async fn pay(
        &self,
        req: &PaidRequest,
        limits: &Limits,
    ) -> Result<PaidResponse, ClientError> {
        let quote = match self.probe(req).await? {
            Ok(q) => q,
            Err(free) => return Ok(free),
        };
        let payment = self.prepare(&quote, limits).await?;
        self.send(req, &payment).await
    }
}

/// The `error` field of a JSON error body, or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

/// What a redirect answer says, for an error message.
fn redirect_message(headers: &HeaderMap) -> String {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or("nowhere");
    format!("the seller redirects to {location}; redirects are not followed")
}
