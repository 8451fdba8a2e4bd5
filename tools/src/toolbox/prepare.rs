//! Signing step of `generate_image`: who makes the payment (the local
//! signer through the x402 client, or AgentCore Payments from a payment
//! session kept in the ledger; see [`crate::seller::agentcore`]).

use std::sync::Arc;

use super::{ToolBox, ToolError, TurnContext};
use crate::{
    ledger::{self, LedgerEntry, PreparedPayment, Quote, Refusal},
    seller::{ImageSeller, PayContext, SellerError},
    signer::agentcore::RULE_SESSION_EXPIRED,
};

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
    if !renew && let Some(s) = ledger::payment_session(ledger, crate::clock::now_secs(), ctx.budget)
    {
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
