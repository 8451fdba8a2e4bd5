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
//! runs it, persisting each step before taking the next.

pub mod agentcore;
pub mod seller;

pub use tools::{storage as images, wallet};

use std::{collections::BTreeMap, sync::Arc};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use x402::{
    Usdc,
    catalog::{ImageQuality, ImageRequest, ImageSize, MAX_PROMPT_CHARS},
};

use tools::policy::caps::DailyCaps;

use crate::{
    access::{AccessError, AccessStore, Reservation},
    declined::{self, Verdict},
    events::{AgentEvent, PaymentReceipt, QuoteInfo, RefusalInfo},
    ledger::{self, Decision, LedgerEntry, MoneyRules, Refusal, RequestState, StoredImage},
    model::{ImageFormat, Model, ToolSpec},
    session::{Record, SessionStore, StoreError, ids::storage_id},
};
use images::ImageStore;
use seller::{ImageSeller, Purchase, SellerError};
use wallet::Wallet;

/// What the tools need, shared by all sessions (no per-session state here).
pub struct ToolBox {
    /// `None` when `GATEWAY_URL` is unset: image tools answer that image
    /// generation is unavailable.
    pub seller: Option<Arc<dyn ImageSeller>>,
    pub images: Arc<dyn ImageStore>,
    pub wallet: Arc<dyn Wallet>,
    /// Answers `analyze_image`.
    pub vision: Arc<dyn Model>,
    pub rules: MoneyRules,
    pub spending: Spending,
}

/// Unix seconds; tests pass a clock they move.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
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

/// The state of one turn that its tools share: the session's ledger (loaded
/// at the start of the turn, appended to as tools run) and what the turn
/// produced. The ledger mutex also serialises the money path of parallel
/// tool calls, so two purchases in one turn never both pass one budget check.
pub struct TurnContext {
    pub actor_id: String,
    pub session_id: String,
    pub turn_id: String,
    /// This turn's session budget (caller's, else configured).
    pub budget: Usdc,
    pub store: Arc<dyn SessionStore>,
    pub events: mpsc::UnboundedSender<AgentEvent>,
    ledger: Mutex<Vec<LedgerEntry>>,
    produced: std::sync::Mutex<Produced>,
}

/// Images and payments of this turn, for the response.
#[derive(Clone, Debug, Default)]
pub struct Produced {
    pub images: BTreeMap<String, String>,
    pub payments: Vec<PaymentReceipt>,
    pub quotes: Vec<QuoteInfo>,
    pub refusals: Vec<RefusalInfo>,
}

impl TurnContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        actor_id: String,
        session_id: String,
        turn_id: String,
        budget: Usdc,
        store: Arc<dyn SessionStore>,
        events: mpsc::UnboundedSender<AgentEvent>,
        ledger: Vec<LedgerEntry>,
    ) -> Self {
        TurnContext {
            actor_id,
            session_id,
            turn_id,
            budget,
            store,
            events,
            ledger: Mutex::new(ledger),
            produced: std::sync::Mutex::new(Produced::default()),
        }
    }

    pub fn produced(&self) -> Produced {
        self.produced.lock().expect("lock").clone()
    }

    /// Appends an entry to the session store, then to the in-memory ledger.
    /// The store write comes first: a step is taken only once it is durable.
    async fn record(
        &self,
        ledger: &mut Vec<LedgerEntry>,
        entry: LedgerEntry,
    ) -> Result<(), ToolError> {
        let record = Record::Ledger {
            entry: serde_json::to_value(&entry).expect("ledger entries serialise"),
        };
        self.store
            .append(
                &self.actor_id,
                &self.session_id,
                &[record],
                &entry.idempotency_key(),
            )
            .await
            .map_err(ToolError::Store)?;
        ledger.push(entry);
        Ok(())
    }

    async fn emit(&self, e: AgentEvent) {
        // A closed channel means the client left; the turn goes on.
        let _ = self.events.send(e);
    }

    /// Tells the client about a payment just recorded (and keeps it for the
    /// output).
    async fn show_payment(&self, receipt: PaymentReceipt) {
        self.produced
            .lock()
            .expect("lock")
            .payments
            .push(receipt.clone());
        self.emit(AgentEvent::Payment { receipt }).await;
    }

    /// Tells the client about a quote (and keeps it for the output).
    async fn show_quote(&self, quote: QuoteInfo) {
        self.produced
            .lock()
            .expect("lock")
            .quotes
            .push(quote.clone());
        self.emit(AgentEvent::Quote(quote)).await;
    }

    /// Tells the client a payment was refused, and returns the refusal for
    /// the model.
    pub async fn refused(&self, request_id: &str, refusal: Refusal) -> ToolError {
        let (amount, limit) = refusal.amount_and_limit();
        let info = RefusalInfo {
            request_id: request_id.into(),
            rule: refusal.rule().into(),
            amount,
            limit,
            message: refusal.to_string(),
        };
        tracing::info!(request_id, rule = %info.rule, "payment refused");
        self.produced
            .lock()
            .expect("lock")
            .refusals
            .push(info.clone());
        self.emit(AgentEvent::Refusal(info)).await;
        ToolError::Refused(refusal)
    }

    async fn show_image(&self, image: &StoredImage) {
        self.produced
            .lock()
            .expect("lock")
            .images
            .insert(image.image_id.clone(), image.url.clone());
        self.emit(AgentEvent::Image {
            id: image.image_id.clone(),
            url: image.url.clone(),
        })
        .await;
    }
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
    Store(StoreError),
    #[error("the spending limits could not be checked, so nothing was paid; try again later")]
    Limits(String),
    #[error("{0}")]
    Other(String),
}

/// `estimate_image_cost` and `generate_image` arguments: what to draw. There
/// is deliberately no price, payee or budget field.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageArgs {
    /// What the image should show (at most 1024 characters). Omit only when
    /// passing `request_id` to finish a request the user already approved.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Image size; default 1024x1024.
    #[serde(default)]
    pub size: Option<ImageSize>,
    /// Image quality; default standard.
    #[serde(default)]
    pub quality: Option<ImageQuality>,
    /// Optional seed for a reproducible image (a different seed is a different image).
    #[serde(default)]
    pub seed: Option<u32>,
    /// The `request_id` from an earlier `authorization required` answer:
    /// generates exactly that request (after `make_payment`).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// `make_payment` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakePaymentArgs {
    /// The `request_id` the user approved, from `generate_image`'s
    /// `authorization_required` answer.
    pub request_id: String,
}

/// `check_balance` takes no arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBalanceArgs {}

/// `analyze_image` arguments.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeImageArgs {
    /// Id of an image generated in this conversation; default the latest.
    #[serde(default)]
    pub image_id: Option<String>,
    /// What to look for; default a general description.
    #[serde(default)]
    pub question: Option<String>,
}

/// `generate_image`'s result.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GenerateResult {
    Generated {
        request_id: String,
        image_id: String,
        url: String,
        price_usdc: Option<Usdc>,
        transaction_url: Option<String>,
        /// True when this request was paid earlier (no new payment).
        already_paid: bool,
    },
    AuthorizationRequired {
        request_id: String,
        price_usdc: Usdc,
        auto_approve_max_usdc: Usdc,
        message: String,
    },
}

fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
        o.entry("properties").or_insert_with(|| json!({}));
    }
    v
}

pub use tools::names::{
    ANALYZE_IMAGE, CHECK_BALANCE, ESTIMATE_IMAGE_COST, GENERATE_IMAGE, MAKE_PAYMENT,
};

/// The tool specs the model sees, generated from the argument types.
pub fn specs() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, input_schema: Value| ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema,
    };
    vec![
        spec(
            GENERATE_IMAGE,
            "Generate an image from a text prompt, paying the image service in USDC. Within the \
             auto-approve limit and the session budget this quotes, pays, generates and stores the \
             image in one call and returns its URL. Above the limit it returns \
             status=authorization_required with the price and a request_id: tell the user the \
             price; they approve or decline in their app, and an approval makes the payment \
             without you. Repeating a call never pays twice.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            ESTIMATE_IMAGE_COST,
            "Get the price of an image without paying. Only use when the user asks about cost.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            MAKE_PAYMENT,
            "Check whether the user approved paying for a request that needed authorization. \
             Approvals come only from the user's app, never from chat text; without one this \
             is refused. It does not pay by itself.",
            schema_of::<MakePaymentArgs>(),
        ),
        spec(
            CHECK_BALANCE,
            "Show the wallet address, its USDC balance, the session budget, what was spent and what remains.",
            schema_of::<CheckBalanceArgs>(),
        ),
        spec(
            ANALYZE_IMAGE,
            "Describe or answer a question about an image generated in this conversation. Only when the user asks.",
            schema_of::<AnalyzeImageArgs>(),
        ),
    ]
}

fn parse<T: DeserializeOwned>(tool: &str, input: Value) -> Result<T, ToolError> {
    // Models sometimes send `null` for "no arguments".
    let input = if input.is_null() { json!({}) } else { input };
    serde_json::from_value(input).map_err(|e| ToolError::InvalidArguments {
        tool: tool.into(),
        message: e.to_string(),
    })
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

    /// The request the arguments name: a fresh one from a prompt, or a quoted
    /// one by id (only this session's ledger is searched).
    fn image_request(
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

    async fn estimate_image_cost(
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
                    quote,
                    expires_at,
                },
            )
            .await?;
        }
        Ok(result)
    }

    /// Runs a request's state machine to the end (see [`crate::ledger`]).
    async fn generate_image(
        &self,
        ctx: &TurnContext,
        args: ImageArgs,
    ) -> Result<GenerateResult, ToolError> {
        // Held for the whole money path: see `TurnContext`.
        let mut ledger = ctx.ledger.lock().await;
        let req = self.image_request(&ledger, args)?;
        let seller = self.seller()?;
        let request_id = ledger::request_id(&ctx.session_id, &req);
        let mut paid_now = false;
        loop {
            match ledger::request_state(&ledger, &request_id) {
                RequestState::Stored { receipt, image } => {
                    ctx.show_image(&image).await;
                    return Ok(GenerateResult::Generated {
                        request_id,
                        image_id: image.image_id,
                        url: image.url,
                        price_usdc: receipt.as_ref().map(|r| r.amount),
                        transaction_url: receipt.map(|r| r.transaction_url),
                        already_paid: !paid_now,
                    });
                }
                RequestState::Rejected { reason } => {
                    return Err(ToolError::Other(format!(
                        "the image service refused the payment for this request earlier ({reason}); \
                         no money moved for it. Use a different seed to make a new request."
                    )));
                }
                RequestState::New | RequestState::Quoted { .. } => {
                    let approval = match ledger::request_state(&ledger, &request_id) {
                        RequestState::Quoted { approval, .. } => approval,
                        _ => None,
                    };
                    let quote = seller.quote(&req).await?;
                    let now = (self.spending.clock)();
                    let decision = match ledger::decide(
                        &ledger,
                        &quote,
                        approval,
                        &self.rules,
                        ctx.budget,
                        now,
                    ) {
                        Ok(d) => d,
                        Err(r) => return Err(ctx.refused(&request_id, r).await),
                    };
                    let expires_at = self.quote_expiry();
                    ctx.record(
                        &mut ledger,
                        LedgerEntry::Quoted {
                            request_id: request_id.clone(),
                            turn_id: ctx.turn_id.clone(),
                            request: req.clone(),
                            quote: quote.clone(),
                            expires_at,
                        },
                    )
                    .await?;
                    ctx.show_quote(QuoteInfo {
                        request_id: request_id.clone(),
                        amount: quote.amount,
                        pay_to: quote.pay_to.to_checksum(None),
                        asset: quote.asset.to_checksum(None),
                        network: quote.network.v1_name().into(),
                        description: format!("image: {}", req.prompt),
                        expires_at,
                        needs_approval: matches!(decision, Decision::NeedsConsent { .. }),
                    })
                    .await;
                    match decision {
                        Decision::NeedsConsent {
                            amount,
                            auto_approve_max,
                        } => {
                            return Ok(GenerateResult::AuthorizationRequired {
                                request_id,
                                price_usdc: amount,
                                auto_approve_max_usdc: auto_approve_max,
                                message: format!(
                                    "authorization required: this image costs {amount} USDC, above the \
                                     auto-approve limit of {auto_approve_max} USDC. Tell the user the price; \
                                     they approve or decline in their app, and an approval pays and \
                                     generates this request without you."
                                ),
                            });
                        }
                        Decision::Pay => {
                            // The daily caps across sessions, reserved
                            // atomically BEFORE signing (see `crate::access`).
                            let reservation = self.reservation(ctx, &request_id, quote.amount);
                            match self
                                .spending
                                .access
                                .reserve(&reservation, &self.spending.caps)
                                .await
                            {
                                Ok(()) => {}
                                Err(AccessError::Cap(c)) => {
                                    return Err(ctx.refused(&request_id, Refusal::Cap(c)).await);
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cap reservation failed");
                                    return Err(ToolError::Limits(e.to_string()));
                                }
                            }
                            let payment = match self
                                .prepare_payment(ctx, &mut ledger, seller, &request_id, &quote)
                                .await
                            {
                                Ok(p) => p,
                                Err(e) => {
                                    self.release(&reservation).await;
                                    return Err(e);
                                }
                            };
                            // Persisted BEFORE it is sent: from here on, only
                            // this payment is ever sent for this request.
                            if let Err(e) = ctx
                                .record(
                                    &mut ledger,
                                    LedgerEntry::Prepared {
                                        request_id: request_id.clone(),
                                        payment,
                                    },
                                )
                                .await
                            {
                                // Never sent, never stored: it cannot settle.
                                self.release(&reservation).await;
                                return Err(e);
                            }
                        }
                    }
                }
                state @ (RequestState::Prepared { .. } | RequestState::Paid { .. }) => {
                    let (payment, settled) = match state {
                        RequestState::Prepared { payment, .. } => (payment, None),
                        RequestState::Paid {
                            payment, receipt, ..
                        } => (payment, Some(receipt)),
                        _ => unreachable!("matched above"),
                    };
                    let already_settled = settled.is_some();
                    // The same payment, whatever happened before: the seller
                    // answers a repeat with the content it already sold.
                    let purchase = match seller.send(&req, &payment).await {
                        Ok(p) => p,
                        Err(SellerError::PaymentRejected(reason)) => {
                            if let Some(receipt) = settled {
                                return Err(ToolError::Other(paid_not_delivered(
                                    &receipt, &reason,
                                )));
                            }
                            // Paid on chain: recorded, then re-sent (above).
                            let receipt = self
                                .on_declined(ctx, &mut ledger, &request_id, &payment, &reason)
                                .await?;
                            paid_now = true;
                            ctx.show_payment(receipt).await;
                            continue;
                        }
                        Err(e @ SellerError::Indeterminate(_)) => {
                            return Err(ToolError::Other(format!(
                                "{e}. The payment is saved: calling generate_image again for this \
                                 request re-sends the same payment and never pays twice."
                            )));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if !already_settled {
                        let quote = latest_quote(&ledger, &request_id).ok_or_else(|| {
                            ToolError::Other("the ledger has a payment without a quote".into())
                        })?;
                        let receipt = receipt(&request_id, &quote, &payment, &purchase);
                        ctx.record(
                            &mut ledger,
                            LedgerEntry::Paid {
                                request_id: request_id.clone(),
                                receipt: receipt.clone(),
                            },
                        )
                        .await?;
                        paid_now = true;
                        ctx.show_payment(receipt).await;
                    }
                    let png = base64::engine::general_purpose::STANDARD
                        .decode(purchase.image.image_base64.as_bytes())
                        .map_err(|e| {
                            ToolError::Other(format!(
                                "the image service sent an unreadable image ({e}); it is paid for \
                                 and calling generate_image again fetches it without paying again"
                            ))
                        })?;
                    let key = format!(
                        "{}/{}/{request_id}.png",
                        storage_id(&ctx.actor_id),
                        storage_id(&ctx.session_id)
                    );
                    let stored = self.images.put(&key, &png).await.map_err(|e| {
                        ToolError::Other(format!(
                            "{e}; the image is paid for and calling generate_image again fetches \
                             it without paying again"
                        ))
                    })?;
                    ctx.record(
                        &mut ledger,
                        LedgerEntry::Stored {
                            request_id: request_id.clone(),
                            image: StoredImage {
                                image_id: request_id.clone(),
                                key: stored.key,
                                url: stored.url,
                                prompt: req.prompt.clone(),
                            },
                        },
                    )
                    .await?;
                }
            }
        }
    }

    /// The model's `make_payment`: refused in code unless the user approved
    /// exactly this request, as data, for at least its quoted amount, before
    /// the quote expired. It records nothing: the model cannot consent.
    async fn make_payment(
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

    async fn check_balance(&self, ctx: &TurnContext) -> Result<Value, ToolError> {
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

    async fn analyze_image(
        &self,
        ctx: &TurnContext,
        args: AnalyzeImageArgs,
    ) -> Result<Value, ToolError> {
        let image = {
            let ledger = ctx.ledger.lock().await;
            let images = ledger::images(&ledger);
            match &args.image_id {
                Some(id) => images
                    .into_iter()
                    .rev()
                    .find(|i| &i.image_id == id)
                    .cloned(),
                None => images.last().map(|i| (*i).clone()),
            }
        };
        let Some(image) = image else {
            return Err(ToolError::Other(match args.image_id {
                Some(id) => format!("no image {id:?} in this conversation"),
                None => "there is no image in this conversation yet".into(),
            }));
        };
        let bytes = self
            .images
            .get(&image.key)
            .await
            .map_err(|e| ToolError::Other(e.to_string()))?;
        let question = args
            .question
            .unwrap_or_else(|| "Describe this image in a few sentences.".into());
        let answer = self
            .vision
            .describe_image(&bytes, ImageFormat::Png, &question)
            .await
            .map_err(|e| ToolError::Other(e.to_string()))?;
        Ok(json!({"image_id": image.image_id, "analysis": answer}))
    }
}

impl ToolBox {
    /// The seller answered `402` to a payment that was signed and sent. The
    /// chain decides what that means ([`crate::declined`]): refused (recorded
    /// as `Rejected`: no money moved), pending or unproven (left prepared,
    /// counted against the budget), or paid: recorded as `Paid` with the
    /// on-chain transaction, and its receipt returned so the caller re-sends
    /// the same payment to recover the content.
    async fn on_declined(
        &self,
        ctx: &TurnContext,
        ledger: &mut Vec<LedgerEntry>,
        request_id: &str,
        payment: &ledger::PreparedPayment,
        reason: &str,
    ) -> Result<PaymentReceipt, ToolError> {
        let nonce: alloy::primitives::B256 = payment.nonce.parse().map_err(|_| {
            ToolError::Other("the ledger holds a payment with an unreadable nonce".into())
        })?;
        let facts = self
            .wallet
            .authorization(payment.payer, nonce, payment.pay_to)
            .await
            .map_err(|e| {
                ToolError::Other(format!(
                    "the image service declined the payment ({reason}), and the chain could not be \
                     asked whether it settled ({e}). The payment stays pending and counted against \
                     the budget: calling generate_image again re-sends the same payment and never \
                     pays twice."
                ))
            })?;
        match declined::verdict(payment, &facts) {
            Verdict::Refused => {
                ctx.record(
                    ledger,
                    LedgerEntry::Rejected {
                        request_id: request_id.into(),
                        reason: declined::refused_reason(reason, &facts),
                    },
                )
                .await?;
                // It never settled and no longer can: it no longer counts
                // against the daily caps.
                let reservation = self.reservation(ctx, request_id, payment.amount);
                self.release(&reservation).await;
                Err(ToolError::Other(format!(
                    "the image service did not accept the payment ({reason}); the chain confirms \
                     it never settled and no longer can: no money moved."
                )))
            }
            Verdict::Pending { valid_before } => Err(ToolError::Other(format!(
                "the image service declined the payment ({reason}), but the signed authorization \
                 stays valid until {valid_before} (unix time) and may still settle, so the request \
                 is pending, not refused, and counted against the budget. Calling generate_image \
                 again for this request re-sends the same payment and never pays twice."
            ))),
            Verdict::UsedUnproven { transaction } => Err(ToolError::Other(format!(
                "the image service declined the payment ({reason}), but on chain the \
                 authorization was used (transaction {}) without a transfer of {} USDC to the \
                 seller being found. It is not treated as refused and stays counted against the \
                 budget.",
                transaction.as_deref().unwrap_or("not found"),
                payment.amount
            ))),
            Verdict::Paid { transaction } => {
                let quote = latest_quote(ledger, request_id).ok_or_else(|| {
                    ToolError::Other("the ledger has a payment without a quote".into())
                })?;
                let receipt = PaymentReceipt {
                    request_id: request_id.into(),
                    amount: payment.amount,
                    asset: quote.asset.to_checksum(None),
                    network: quote.network.v1_name().into(),
                    pay_to: payment.pay_to.to_checksum(None),
                    payer: payment.payer.to_checksum(None),
                    transaction_url: quote.network.explorer_tx_url(&transaction),
                    transaction,
                    resource: quote.resource.clone(),
                };
                ctx.record(
                    ledger,
                    LedgerEntry::Paid {
                        request_id: request_id.into(),
                        receipt: receipt.clone(),
                    },
                )
                .await?;
                Ok(receipt)
            }
        }
    }
}

/// A paid request whose content the seller does not deliver: exactly what
/// happened, for the user.
fn paid_not_delivered(receipt: &PaymentReceipt, reason: &str) -> String {
    format!(
        "this request is paid ({} USDC to {}, transaction {}) but the image service answered \
         \"{reason}\" instead of the image: content not received. Calling generate_image again \
         asks for it again with the same payment and never pays twice.",
        receipt.amount, receipt.pay_to, receipt.transaction
    )
}

fn latest_quote(ledger: &[LedgerEntry], request_id: &str) -> Option<ledger::Quote> {
    ledger.iter().rev().find_map(|e| match e {
        LedgerEntry::Quoted {
            request_id: r,
            quote,
            ..
        } if r == request_id => Some(quote.clone()),
        _ => None,
    })
}

fn receipt(
    request_id: &str,
    quote: &ledger::Quote,
    payment: &ledger::PreparedPayment,
    purchase: &Purchase,
) -> PaymentReceipt {
    let transaction_url = if purchase.transaction.is_empty() {
        purchase.image.transaction_url.clone()
    } else {
        quote.network.explorer_tx_url(&purchase.transaction)
    };
    PaymentReceipt {
        request_id: request_id.into(),
        amount: payment.amount,
        asset: quote.asset.to_checksum(None),
        network: quote.network.v1_name().into(),
        pay_to: payment.pay_to.to_checksum(None),
        payer: purchase.payer.clone(),
        transaction: purchase.transaction.clone(),
        transaction_url,
        resource: quote.resource.clone(),
    }
}
