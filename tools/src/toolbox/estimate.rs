//! `estimate_image_cost`: the seller's price, checked and recorded as a
//! quote, without paying; and how tool arguments name a request.

use serde_json::{Value, json};
use x402::catalog::{ImageRequest, MAX_PROMPT_CHARS};

use super::{ImageArgs, ToolBox, ToolError, TurnContext};
use crate::{
    ledger::{self, LedgerEntry, RequestState},
    names::GENERATE_IMAGE,
};

impl ToolBox {
    /// The request the arguments name: a fresh one from a prompt, or a quoted
    /// one by id (only this session's ledger is searched).
    pub(super) fn image_request(
        &self,
        ledger: &[LedgerEntry],
        args: ImageArgs,
    ) -> Result<ImageRequest, ToolError> {
        let invalid = |message: &str| ToolError::InvalidArguments {
            tool: GENERATE_IMAGE.into(),
            message: message.into(),
        };
        if let Some(id) = &args.request_id {
            let found = ledger.iter().rev().find_map(|e| match e {
                LedgerEntry::Quoted {
                    request_id,
                    request,
                    ..
                } if request_id == id => Some(request.clone()),
                _ => None,
            });
            return found.ok_or_else(|| invalid("unknown request_id in this conversation"));
        }
        let prompt = args.prompt.unwrap_or_default();
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(invalid("prompt is required"));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(invalid(&format!(
                "prompt is longer than {MAX_PROMPT_CHARS} characters"
            )));
        }
        Ok(ImageRequest {
            prompt: prompt.into(),
            size: args.size.unwrap_or_default(),
            quality: args.quality.unwrap_or_default(),
            seed: args.seed,
        })
    }

    pub(super) async fn estimate_image_cost(
        &self,
        ctx: &TurnContext,
        args: ImageArgs,
    ) -> Result<Value, ToolError> {
        let mut ledger = ctx.ledger.lock().await;
        let req = self.image_request(&ledger, args)?;
        let seller = self.seller()?;
        let request_id = ledger::request_id(&ctx.session_id, &req);
        let quote = seller.quote(&req).await?;
        ledger::check_quote(&quote, &self.rules)?;
        let remaining = ctx.budget.saturating_sub(ledger::committed_spend(&ledger));
        let result = json!({
            "request_id": request_id,
            "price_usdc": quote.amount,
            "within_auto_approve_limit": quote.amount <= self.rules.auto_approve_max,
            "within_budget": quote.amount <= remaining,
            "budget_remaining_usdc": remaining,
        });
        if matches!(
            ledger::request_state(&ledger, &request_id),
            RequestState::New | RequestState::Quoted { .. }
        ) {
            let expires_at = self.quote_expiry();
            ctx.record(
                &mut ledger,
                LedgerEntry::Quoted {
                    request_id,
                    turn_id: ctx.turn_id.clone(),
                    request: req,
                    quote: Box::new(quote),
                    expires_at,
                },
            )
            .await?;
        }
        Ok(result)
    }
}
