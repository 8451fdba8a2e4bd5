//! The agent's tools: typed arguments in, typed results out.
//!
//! | tool | what | money |
//! |---|---|---|
//! | `estimate_image_cost` | asks the seller for its price | none |
//! | `generate_image` | quote, pay, generate, store — in **one** call when within the auto-approve limit and the budget | yes |
//! | `make_payment` | records the user's consent to a quoted price above the auto-approve limit | none (consent only) |
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

use crate::{
    events::{AgentEvent, PaymentReceipt},
    ledger::{self, Decision, LedgerEntry, MoneyRules, RequestState, StoredImage},
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

pub const ESTIMATE_IMAGE_COST: &str = "estimate_image_cost";
pub const GENERATE_IMAGE: &str = "generate_image";
pub const MAKE_PAYMENT: &str = "make_payment";
pub const CHECK_BALANCE: &str = "check_balance";
pub const ANALYZE_IMAGE: &str = "analyze_image";

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
             status=authorization_required with the price and a request_id: ask the user, and only \
             after they agree call make_payment, then generate_image with that request_id. \
             Repeating a call never pays twice.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            ESTIMATE_IMAGE_COST,
            "Get the price of an image without paying. Only use when the user asks about cost.",
            schema_of::<ImageArgs>(),
        ),
        spec(
            MAKE_PAYMENT,
            "Record that the user approved paying for a request that needed authorization. \
             Only call after the user said yes in a new message. It does not pay by itself.",
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
            ctx.record(
                &mut ledger,
                LedgerEntry::Quoted {
                    request_id,
                    turn_id: ctx.turn_id.clone(),
                    request: req,
                    quote,
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
                    let consent = match ledger::request_state(&ledger, &request_id) {
                        RequestState::Quoted { consent, .. } => consent,
                        _ => None,
                    };
                    let quote = seller.quote(&req).await?;
                    let decision =
                        ledger::decide(&ledger, &quote, consent, &self.rules, ctx.budget)?;
                    ctx.record(
                        &mut ledger,
                        LedgerEntry::Quoted {
                            request_id: request_id.clone(),
                            turn_id: ctx.turn_id.clone(),
                            request: req.clone(),
                            quote: quote.clone(),
                        },
                    )
                    .await?;
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
                                     auto-approve limit of {auto_approve_max} USDC. Ask the user; if they \
                                     agree, call make_payment, then generate_image with this request_id."
                                ),
                            });
                        }
                        Decision::Pay => {
                            let payment = self
                                .prepare_payment(ctx, &mut ledger, seller, &request_id, &quote)
                                .await?;
                            // Persisted BEFORE it is sent: from here on, only
                            // this payment is ever sent for this request.
                            ctx.record(
                                &mut ledger,
                                LedgerEntry::Prepared {
                                    request_id: request_id.clone(),
                                    payment,
                                },
                            )
                            .await?;
                        }
                    }
                }
                state @ (RequestState::Prepared { .. } | RequestState::Paid { .. }) => {
                    let (payment, already_settled) = match state {
                        RequestState::Prepared { payment, .. } => (payment, false),
                        RequestState::Paid { payment, .. } => (payment, true),
                        _ => unreachable!("matched above"),
                    };
                    // The same payment, whatever happened before: the seller
                    // answers a repeat with the content it already sold.
                    let purchase = match seller.send(&req, &payment).await {
                        Ok(p) => p,
                        Err(SellerError::PaymentRejected(reason)) if !already_settled => {
                            ctx.record(
                                &mut ledger,
                                LedgerEntry::Rejected {
                                    request_id: request_id.clone(),
                                    reason: reason.clone(),
                                },
                            )
                            .await?;
                            return Err(SellerError::PaymentRejected(reason).into());
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
                        ctx.produced
                            .lock()
                            .expect("lock")
                            .payments
                            .push(receipt.clone());
                        ctx.emit(AgentEvent::Payment { receipt }).await;
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

    async fn make_payment(
        &self,
        ctx: &TurnContext,
        args: MakePaymentArgs,
    ) -> Result<Value, ToolError> {
        let mut ledger = ctx.ledger.lock().await;
        let entry = ledger::consent(&ledger, &args.request_id, &ctx.turn_id)?;
        let LedgerEntry::Consented { amount, .. } = &entry else {
            unreachable!("consent returns a Consented entry")
        };
        let amount = *amount;
        ctx.record(&mut ledger, entry).await?;
        Ok(json!({
            "request_id": args.request_id,
            "approved_usdc": amount,
            "next": "call generate_image with this request_id to pay and generate",
        }))
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
