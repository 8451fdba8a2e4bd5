//! Consent: the model's `make_payment` (which only checks for an approval)
//! and the user's answer to a quote, arriving as data from the caller.

use serde_json::{Value, json};

use super::{MakePaymentArgs, ToolBox, ToolError, TurnContext};
use crate::ledger::{self, LedgerEntry};

impl ToolBox {
    /// The model's `make_payment`: refused in code unless the user approved
    /// exactly this request, as data, for at least its quoted amount, before
    /// the quote expired. It records nothing: the model cannot consent.
    pub(super) async fn make_payment(
        &self,
        ctx: &TurnContext,
        args: MakePaymentArgs,
    ) -> Result<Value, ToolError> {
        let ledger = ctx.ledger.lock().await;
        let now = (self.spending.clock)();
        match ledger::check_approved(&ledger, &args.request_id, &self.rules, now) {
            Ok(approval) => Ok(json!({
                "request_id": args.request_id,
                "approved_usdc": approval.amount,
                "next": "call generate_image with this request_id to pay and generate",
            })),
            Err(r) => Err(ctx.refused(&args.request_id, r).await),
        }
    }

    /// The user's answer to a quote, arriving as data from the caller (never
    /// from the model): records the approval (or the refusal to pay) for
    /// exactly `request_id`. Refused for a request this session never
    /// quoted, an expired quote, or a request already paid.
    pub async fn answer_quote(
        &self,
        ctx: &TurnContext,
        request_id: &str,
        approved: bool,
    ) -> Result<Option<ledger::Approval>, ToolError> {
        let mut ledger = ctx.ledger.lock().await;
        let now = (self.spending.clock)();
        let entry = if approved {
            ledger::approve(&ledger, request_id, &ctx.turn_id, now)
        } else {
            ledger::decline(&ledger, request_id, &ctx.turn_id)
        };
        let entry = match entry {
            Ok(e) => e,
            Err(r) => return Err(ctx.refused(request_id, r).await),
        };
        let approval = match &entry {
            LedgerEntry::Approved {
                amount, expires_at, ..
            } => Some(ledger::Approval {
                amount: *amount,
                expires_at: *expires_at,
            }),
            _ => None,
        };
        ctx.record(&mut ledger, entry).await?;
        Ok(approval)
    }
}
