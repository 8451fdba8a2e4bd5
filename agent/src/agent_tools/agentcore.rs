//! Paying through Amazon Bedrock AgentCore Payments (`SIGNER=agentcore`).
//!
//! The seller side is unchanged (quote and send are the x402 client's); what
//! changes is who makes the payment: [`AgentCoreSeller::prepare`] has
//! AgentCore's `ProcessPayment` sign it (see `tools::signer::agentcore`).
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
use tools::{
    policy::{Limits, PaymentPolicy},
    signer::agentcore::{
        AgentCoreError, AgentCorePayments, PayloadOnly, PaymentCall, PaymentSession,
        RULE_SESSION_EXPIRED,
    },
};
use x402::{Usdc, catalog::ImageRequest};

use super::{
    ToolBox, ToolError, TurnContext,
    seller::{ImageSeller, PayContext, Purchase, SellerError, X402Seller},
};
use crate::ledger::{self, LedgerEntry, PreparedPayment, Quote, Refusal};

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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
            .open_session(user_id, max_spend, idempotency, now_secs())
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

impl ToolBox {
    /// Has the seller's backend make the payment for `quote` (the ledger has
    /// already allowed it), opening or renewing the AgentCore payment
    /// session first when the backend keeps one.
    pub(super) async fn prepare_payment(
        &self,
        ctx: &TurnContext,
        ledger: &mut Vec<LedgerEntry>,
        seller: &Arc<dyn ImageSeller>,
        request_id: &str,
        quote: &Quote,
    ) -> Result<PreparedPayment, ToolError> {
        let mut renew = false;
        loop {
            let session = payment_session(ctx, ledger, seller.as_ref(), renew).await?;
            let pay = PayContext {
                request_id,
                user_id: &ctx.actor_id,
                payment_session_id: session.as_deref(),
            };
            match seller.prepare(quote, &pay).await {
                Ok(p) => return Ok(p),
                Err(SellerError::ServiceRefused(r))
                    if r.rule == RULE_SESSION_EXPIRED && session.is_some() && !renew =>
                {
                    renew = true;
                }
                Err(SellerError::ServiceRefused(r)) => {
                    ctx.record(
                        ledger,
                        LedgerEntry::ServiceRefused {
                            request_id: request_id.into(),
                            turn_id: ctx.turn_id.clone(),
                            rule: r.rule.into(),
                            amount: r.amount,
                            limit: r.limit,
                            reason: r.message.clone(),
                        },
                    )
                    .await?;
                    return Err(ToolError::Refused(Refusal::Service {
                        rule: r.rule.into(),
                        amount: r.amount,
                        limit: r.limit,
                        message: r.message,
                    }));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The payment session to pay from: the ledger's current one, or a new one
/// (recorded before use) for what remains of the budget. `None` when the
/// backend has no sessions.
async fn payment_session(
    ctx: &TurnContext,
    ledger: &mut Vec<LedgerEntry>,
    seller: &dyn ImageSeller,
    renew: bool,
) -> Result<Option<String>, ToolError> {
    if !renew && let Some(s) = ledger::payment_session(ledger, now_secs(), ctx.budget) {
        return Ok(Some(s.payment_session_id.clone()));
    }
    let remaining = ctx.budget.saturating_sub(ledger::committed_spend(ledger));
    let idempotency = format!(
        "{}/{}#{}",
        ctx.actor_id,
        ctx.session_id,
        ledger::payment_sessions_opened(ledger) + 1
    );
    let Some(session) = seller
        .open_payment_session(&ctx.actor_id, remaining, &idempotency)
        .await?
    else {
        return Ok(None);
    };
    let id = session.payment_session_id.clone();
    ctx.record(
        ledger,
        LedgerEntry::PaymentSession {
            session,
            budget: ctx.budget,
        },
    )
    .await?;
    Ok(Some(id))
}
