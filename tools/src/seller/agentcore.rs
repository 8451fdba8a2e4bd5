//! Paying through Amazon Bedrock AgentCore Payments (`SIGNER=agentcore`).
//!
//! The seller side is unchanged (quote and send are the x402 client's); what
//! changes is who makes the payment: [`AgentCoreSeller::prepare`] has
//! AgentCore's `ProcessPayment` sign it (see `crate::signer::agentcore`).
//!
//! One AgentCore *payment session* per agent session, kept in the session's
//! ledger ([`LedgerEntry::PaymentSession`]):
//! - opened on the first payment, with `maxSpendAmount` = what remains of
//!   the session budget, so the service enforces the same budget we do;
//! - reused across turns and restarts (the ledger is the session's state);
//! - replaced when it is about to expire, when the service says it expired,
//!   or when the caller set another budget, again for what remains.
//!
//! The order keeps the money rules: our ledger decides first (budget,
//! consent); the payment session is recorded before `ProcessPayment` (a
//! restart pays from the same session with the same `clientToken`, so the
//! service returns the same payment); the returned payment is recorded
//! before it is sent, like any other. A refusal by the service is recorded
//! ([`LedgerEntry::ServiceRefused`]) and reported as a [`Refusal::Service`].

use std::sync::Arc;

use alloy::primitives::Address;
use async_trait::async_trait;
use x402::{Usdc, catalog::ImageRequest};

use super::{ImageSeller, PayContext, Purchase, SellerError, X402Seller};
use crate::{
    ledger::{PreparedPayment, Quote},
    policy::{Limits, PaymentPolicy},
    signer::agentcore::{
        AgentCoreError, AgentCorePayments, PayloadOnly, PaymentCall, PaymentSession,
    },
};

/// The gateway, paid through AgentCore Payments.
pub struct AgentCoreSeller {
    http: X402Seller,
    payments: Arc<AgentCorePayments>,
    policy: PaymentPolicy,
}

impl AgentCoreSeller {
    pub fn new(gateway_url: &str, payments: Arc<AgentCorePayments>, policy: PaymentPolicy) -> Self {
        AgentCoreSeller {
            http: X402Seller::new(
                gateway_url,
                Arc::new(PayloadOnly(payments.address())),
                policy.clone(),
            ),
            payments,
            policy,
        }
    }
}

fn seller_error(e: AgentCoreError) -> SellerError {
    match e {
        AgentCoreError::Policy(p) => SellerError::BadQuote(p.to_string()),
        AgentCoreError::Refused(r) => SellerError::ServiceRefused(r),
        other => SellerError::Signing(other.to_string()),
    }
}

#[async_trait]
impl ImageSeller for AgentCoreSeller {
    fn payer(&self) -> Address {
        self.payments.address()
    }

    async fn quote(&self, req: &ImageRequest) -> Result<Quote, SellerError> {
        self.http.quote(req).await
    }

    async fn prepare(
        &self,
        quote: &Quote,
        pay: &PayContext<'_>,
    ) -> Result<PreparedPayment, SellerError> {
        let session = pay
            .payment_session_id
            .ok_or_else(|| SellerError::Signing("no AgentCore payment session".into()))?;
        // The ledger applied the session budget and consent; the policy is
        // checked again here for exactly the quoted amount, before AgentCore.
        self.payments
            .prepare(
                &self.policy,
                quote,
                &Limits::single(quote.amount),
                &PaymentCall {
                    payment_session_id: session,
                    request_id: pay.request_id,
                    user_id: pay.user_id,
                },
            )
            .await
            .map_err(seller_error)
    }

    async fn open_payment_session(
        &self,
        user_id: &str,
        max_spend: Usdc,
        idempotency: &str,
    ) -> Result<Option<PaymentSession>, SellerError> {
        self.payments
            .open_session(user_id, max_spend, idempotency, crate::clock::now_secs())
            .await
            .map(Some)
            .map_err(seller_error)
    }

    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError> {
        self.http.send(req, payment).await
    }
}
