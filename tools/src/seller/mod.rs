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
//! The client is `crate::client`; this module adapts it to the one seller
//! the agent buys from, behind the [`ImageSeller`] trait (tests swap in
//! hostile sellers).

pub mod agentcore;

use std::sync::Arc;

use alloy::primitives::Address;
use async_trait::async_trait;
use x402::catalog::{ImageRequest, ImageResponse};

use crate::{
    client::{ClientError, PaidRequest, X402Client},
    ledger::{PreparedPayment, Quote},
    policy::{Limits, PaymentPolicy},
    signer::{
        PaymentSigner,
        agentcore::{PaymentSession, ServiceRefusal},
    },
};

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
    /// The payment service (AgentCore Payments) refused; nothing was signed.
    #[error(transparent)]
    ServiceRefused(#[from] ServiceRefusal),
}

/// Who a payment is for: what backends that keep state per request or per
/// session (AgentCore Payments) need; the local signers ignore it.
#[derive(Clone, Copy, Debug)]
pub struct PayContext<'a> {
    /// Our request id (the ledger's): AgentCore's `clientToken` comes from it.
    pub request_id: &'a str,
    /// The runtime user id (AgentCore's `userId`).
    pub user_id: &'a str,
    /// The AgentCore payment session to pay from, if the backend uses one.
    pub payment_session_id: Option<&'a str>,
}

/// The paid image service.
#[async_trait]
pub trait ImageSeller: Send + Sync {
    /// The buyer's address (the signer's).
    fn payer(&self) -> Address;
    /// The seller's price for `req` (no money moves).
    async fn quote(&self, req: &ImageRequest) -> Result<Quote, SellerError>;
    /// Signs a payment of exactly `quote` (no money moves until sent).
    async fn prepare(
        &self,
        quote: &Quote,
        pay: &PayContext<'_>,
    ) -> Result<PreparedPayment, SellerError>;
    /// Backends with payment sessions of their own (AgentCore Payments) open
    /// one allowing `max_spend`; `idempotency` names this opening so a retry
    /// gets the same session. `None`: this backend has no sessions.
    async fn open_payment_session(
        &self,
        _user_id: &str,
        _max_spend: x402::Usdc,
        _idempotency: &str,
    ) -> Result<Option<PaymentSession>, SellerError> {
        Ok(None)
    }
    /// Sends `req` with `payment`. Safe to repeat with the same payment.
    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError>;
}

/// x402 over HTTP to `{base}/generate_image`, through the `tools` client:
/// its policy (network, asset, payee) is checked again at signing time,
/// on top of the ledger's own checks, and the signer is whichever custodian
/// the configuration chose (local key, CDP, KMS).
pub struct X402Seller {
    client: X402Client,
    url: String,
}

impl X402Seller {
    pub fn new(gateway_url: &str, signer: Arc<dyn PaymentSigner>, policy: PaymentPolicy) -> Self {
        X402Seller {
            client: X402Client::new(signer, policy),
            url: format!("{}/generate_image", gateway_url.trim_end_matches('/')),
        }
    }

    fn request(&self, req: &ImageRequest) -> PaidRequest {
        PaidRequest::post_json(self.url.clone(), req)
    }
}

fn seller_error(e: ClientError) -> SellerError {
    match e {
        ClientError::Refused { status, message } => SellerError::Refused { status, message },
        ClientError::PaymentRejected(m) => SellerError::PaymentRejected(m),
        ClientError::Indeterminate(m) => SellerError::Indeterminate(m),
        ClientError::Signing(e) => SellerError::Signing(e.to_string()),
        ClientError::Policy(p) => SellerError::BadQuote(p.to_string()),
        other => SellerError::BadQuote(other.to_string()),
    }
}

#[async_trait]
impl ImageSeller for X402Seller {
    fn payer(&self) -> Address {
        self.client.payer()
    }

    async fn quote(&self, req: &ImageRequest) -> Result<Quote, SellerError> {
        self.client
            .quote(&self.request(req))
            .await
            .map_err(seller_error)
    }

    async fn prepare(
        &self,
        quote: &Quote,
        _pay: &PayContext<'_>,
    ) -> Result<PreparedPayment, SellerError> {
        // The ledger has already applied the session's budget and consent;
        // here the tools policy re-checks who, what and where, for exactly
        // the quoted amount.
        let limits = Limits::single(quote.amount);
        self.client
            .prepare(quote, &limits)
            .await
            .map_err(seller_error)
    }

    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError> {
        let paid = self
            .client
            .send(&self.request(req), payment)
            .await
            .map_err(seller_error)?;
        let image: ImageResponse = serde_json::from_slice(&paid.body)
            .map_err(|e| SellerError::Indeterminate(format!("unreadable image: {e}")))?;
        let receipt = paid.receipt;
        Ok(Purchase {
            transaction: receipt
                .as_ref()
                .map(|r| r.transaction.clone())
                .unwrap_or_default(),
            payer: receipt
                .map(|r| r.payer)
                .unwrap_or_else(|| payment.payer.to_string()),
            image,
        })
    }
}
