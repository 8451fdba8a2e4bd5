//! `check_balance`: the wallet and the session's budget, spent and left.

use serde_json::{Value, json};

use super::{ToolBox, ToolError, TurnContext};
use crate::ledger;

impl ToolBox {
    pub(super) async fn check_balance(&self, ctx: &TurnContext) -> Result<Value, ToolError> {
        let balance = self
            .wallet
            .usdc_balance()
            .await
            .map_err(|e| ToolError::Other(e.to_string()))?;
        let ledger = ctx.ledger.lock().await;
        let committed = ledger::committed_spend(&ledger);
        Ok(json!({
            "address": self.wallet.address().to_checksum(None),
            "network": self.rules.network.v1_name(),
            "usdc_balance": balance,
            "session_budget_usdc": ctx.budget,
            "session_spent_usdc": ledger::settled_spend(&ledger),
            "session_committed_usdc": committed,
            "session_remaining_usdc": ctx.budget.saturating_sub(committed),
            "auto_approve_max_usdc": self.rules.auto_approve_max,
        }))
    }
}
