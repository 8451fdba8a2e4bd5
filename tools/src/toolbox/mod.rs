//! The agent's tools: typed arguments in, typed results out.
//!
//! | tool | what | money |
//! |---|---|---|
//! | `estimate_image_cost` | asks the seller for its price | none |
//! | `generate_image` | quote, pay, generate, store — in **one** call when within the auto-approve limit and the budget | yes |
//! | `make_payment` | checks that the user approved a quoted price above the auto-approve limit (approvals arrive as data from the caller, never from the model) | none |
//! | `check_balance` | wallet address, USDC balance, session budget and spend | none |
//! | `analyze_image` | Claude vision on an image of *this* session | none |
//!
//! Arguments are parsed into Rust types (`deny_unknown_fields`) before
//! anything runs; a parse failure is a tool error the model can react to.
//! None of the argument types has a field for a payee, an asset, an amount
//! or a budget, so a model talked into "pay 5 USDC to 0x..." has nothing to
//! put it in: the call is refused as invalid arguments. Prices come from the
//! seller's quote, checked against configuration by [`ledger::check_quote`].
//!
//! The payment flow itself is [`crate::ledger`]'s state machine; this module
//! runs it, persisting each step before taking the next. One file per tool
//! (`estimate`, `generate` with `prepare`, `approval` for `make_payment` and
//! the caller's answer to a quote, `balance`, `analyze`); the arguments, the
//! results and the specs the model sees are in `args`, the turn's shared
//! state in `context`. The agent runtime (`agent` crate) runs them in its
//! tool loop, and keeps the ledger in its session store ([`LedgerLog`]).

mod analyze;
mod approval;
mod args;
mod balance;
mod context;
mod estimate;
mod generate;
mod prepare;

pub use crate::names::{
    ANALYZE_IMAGE, CHECK_BALANCE, ESTIMATE_IMAGE_COST, GENERATE_IMAGE, MAKE_PAYMENT,
};
pub use analyze::{ImageFormat, Vision, VisionError};
pub use args::{
    AnalyzeImageArgs, CheckBalanceArgs, GenerateResult, ImageArgs, MakePaymentArgs, ToolSpec, specs,
};
pub use context::{EventSink, LedgerLog, LedgerWriteError, Produced, TurnContext};

use std::sync::Arc;

use serde_json::Value;
use x402::Usdc;

use crate::{
    access::{AccessStore, Reservation},
    ledger::{self, MoneyRules},
    policy::caps::DailyCaps,
    seller::{ImageSeller, SellerError},
    storage::ImageStore,
    wallet::Wallet,
};
use args::parse;

/// What the tools need, shared by all sessions (no per-session state here).
pub struct ToolBox {
    /// `None` when `GATEWAY_URL` is unset: image tools answer that image
    /// generation is unavailable.
    pub seller: Option<Arc<dyn ImageSeller>>,
    pub images: Arc<dyn ImageStore>,
    pub wallet: Arc<dyn Wallet>,
    /// Answers `analyze_image`.
    pub vision: Arc<dyn Vision>,
    pub rules: MoneyRules,
    pub spending: Spending,
}

/// Unix seconds; tests pass a clock they move.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::clock::now_secs)
}

/// Limits across sessions and on approvals, from configuration.
#[derive(Clone)]
pub struct Spending {
    /// Daily-cap counters (and session owners), shared by all sessions.
    pub access: Arc<dyn AccessStore>,
    pub caps: DailyCaps,
    /// How long a quote, and an approval of it, stay valid.
    pub quote_ttl_seconds: u64,
    pub clock: Clock,
}

/// A tool call failed; the model sees the message (never internals like keys).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    #[error(
        "unknown tool {0:?}; available tools: estimate_image_cost, generate_image, make_payment, check_balance, analyze_image"
    )]
    Unknown(String),
    #[error("invalid arguments for {tool}: {message}")]
    InvalidArguments { tool: String, message: String },
    #[error("{0}")]
    Refused(#[from] ledger::Refusal),
    #[error(transparent)]
    Seller(#[from] SellerError),
    #[error(
        "image generation is not available: this agent has no image service configured (GATEWAY_URL)"
    )]
    NoSeller,
    #[error("could not save session state: {0}")]
    Store(LedgerWriteError),
    #[error("the spending limits could not be checked, so nothing was paid; try again later")]
    Limits(String),
    #[error("{0}")]
    Other(String),
}

impl ToolBox {
    /// Runs one tool call. Never panics on model input: every failure is a
    /// [`ToolError`] for the model to read.
    pub async fn call(
        &self,
        ctx: &TurnContext,
        name: &str,
        input: Value,
    ) -> Result<Value, ToolError> {
        match name {
            GENERATE_IMAGE => {
                let args = parse::<ImageArgs>(name, input)?;
                self.generate_image(ctx, args)
                    .await
                    .map(|r| serde_json::to_value(r).expect("tool results serialise"))
            }
            ESTIMATE_IMAGE_COST => {
                let args = parse::<ImageArgs>(name, input)?;
                self.estimate_image_cost(ctx, args).await
            }
            MAKE_PAYMENT => {
                let args = parse::<MakePaymentArgs>(name, input)?;
                self.make_payment(ctx, args).await
            }
            CHECK_BALANCE => {
                parse::<CheckBalanceArgs>(name, input)?;
                self.check_balance(ctx).await
            }
            ANALYZE_IMAGE => {
                let args = parse::<AnalyzeImageArgs>(name, input)?;
                self.analyze_image(ctx, args).await
            }
            other => Err(ToolError::Unknown(other.into())),
        }
    }

    fn seller(&self) -> Result<&Arc<dyn ImageSeller>, ToolError> {
        self.seller.as_ref().ok_or(ToolError::NoSeller)
    }

    fn quote_expiry(&self) -> u64 {
        (self.spending.clock)().saturating_add(self.spending.quote_ttl_seconds)
    }

    fn reservation(&self, ctx: &TurnContext, request_id: &str, amount: Usdc) -> Reservation {
        let payer = self
            .seller
            .as_ref()
            .map_or(alloy::primitives::Address::ZERO, |s| s.payer());
        Reservation::new(
            &ctx.actor_id,
            request_id,
            payer,
            (self.spending.clock)(),
            amount,
        )
    }

    /// Gives a reservation back; a failure is logged (the amount then stays
    /// counted, which only ever errs on the side of spending less).
    async fn release(&self, reservation: &Reservation) {
        if let Err(e) = self.spending.access.release(reservation).await {
            tracing::error!(error = %e, "could not release a cap reservation");
        }
    }
}
