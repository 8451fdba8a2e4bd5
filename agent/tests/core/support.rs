//! Helpers for the core tests: a tool loop wired to real local stores, with
//! the model and the seller chosen by the test.

use std::{future::Future, path::PathBuf, sync::Arc};

use agent::{
    events::{AgentEvent, Output},
    model::{Model, ModelVision},
    session::{Record, SessionStore, local::LocalSessionStore},
    turn::{
        ApprovalAnswer, ProgressSender, TurnDeps, TurnError, TurnRequest, TurnSettings, run_turn,
    },
};
use alloy::primitives::{Address, address};
use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tools::{
    access::{AccessStore, local::LocalAccessStore},
    ledger::{MoneyRules, PreparedPayment, Quote},
    policy::caps::DailyCaps,
    seller::{ImageSeller, PayContext, Purchase, SellerError, X402Seller},
    storage::DirImageStore,
    toolbox::{Clock, Spending, ToolBox, system_clock},
    wallet::{ChainWallet, Wallet},
};
use x402::{Network, Usdc, catalog::ImageRequest};

pub const SELLER: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

pub fn usdc(s: &str) -> Usdc {
    s.parse().unwrap()
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-core-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Harness {
    pub deps: TurnDeps,
    pub store: Arc<LocalSessionStore>,
    pub dir: PathBuf,
}

pub struct Options {
    pub seller: Option<Arc<dyn ImageSeller>>,
    pub wallet: Option<Arc<dyn Wallet>>,
    pub rules: MoneyRules,
    pub settings: TurnSettings,
    /// Default: a local file store in the harness directory.
    pub access: Option<Arc<dyn AccessStore>>,
    pub caps: DailyCaps,
    pub quote_ttl_seconds: u64,
    /// Default: the wall clock.
    pub clock: Option<Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seller: None,
            wallet: None,
            rules: MoneyRules {
                seller: SELLER,
                asset: Network::BaseSepolia.default_usdc(),
                network: Network::BaseSepolia,
                auto_approve_max: usdc("0.10"),
                max_timeout_seconds: tools::policy::DEFAULT_MAX_TIMEOUT_SECONDS,
            },
            settings: TurnSettings {
                max_turns: 8,
                max_tokens: 1000,
                default_budget: usdc("1.00"),
            },
            access: None,
            caps: DailyCaps {
                per_user: usdc("1000"),
                wallet: usdc("1000"),
            },
            quote_ttl_seconds: 300,
            clock: None,
        }
    }
}

impl Harness {
    pub fn new(model: Arc<dyn Model>, opts: Options) -> Harness {
        Harness::in_dir(model, opts, temp_dir("harness"))
    }

    /// Same stores as an earlier harness in `dir` (a restarted process).
    pub fn in_dir(model: Arc<dyn Model>, opts: Options, dir: PathBuf) -> Harness {
        let store = Arc::new(LocalSessionStore::new(dir.join("sessions")));
        let wallet = opts.wallet.unwrap_or_else(|| {
            // Never called by tests that use this default (nothing listens).
            Arc::new(
                ChainWallet::new(
                    "http://127.0.0.1:9",
                    opts.rules.network,
                    opts.rules.asset,
                    Address::ZERO,
                )
                .unwrap(),
            )
        });
        let tools = ToolBox {
            seller: opts.seller,
            images: Arc::new(DirImageStore::new(dir.join("images"))),
            wallet,
            vision: Arc::new(ModelVision(model.clone())),
            rules: opts.rules,
            spending: Spending {
                access: opts
                    .access
                    .unwrap_or_else(|| Arc::new(LocalAccessStore::new(dir.join("access")))),
                caps: opts.caps,
                quote_ttl_seconds: opts.quote_ttl_seconds,
                clock: opts.clock.unwrap_or_else(system_clock),
            },
        };
        Harness {
            deps: TurnDeps {
                model,
                store: store.clone(),
                tools: Arc::new(tools),
                settings: opts.settings,
            },
            store,
            dir,
        }
    }

    /// Runs one turn and collects its events.
    pub async fn turn(
        &self,
        session: &str,
        prompt: &str,
    ) -> (Result<Output, TurnError>, Vec<AgentEvent>) {
        self.turn_with_budget(session, prompt, None).await
    }

    pub async fn turn_with_budget(
        &self,
        session: &str,
        prompt: &str,
        budget: Option<Usdc>,
    ) -> (Result<Output, TurnError>, Vec<AgentEvent>) {
        self.run(TurnRequest {
            session_id: session.into(),
            actor_id: "tester".into(),
            prompt: prompt.into(),
            session_budget: budget,
            approval: None,
        })
        .await
    }

    /// The user's answer to a quote, as data (with an optional prompt).
    pub async fn answer(
        &self,
        session: &str,
        request_id: &str,
        approved: bool,
        prompt: &str,
    ) -> (Result<Output, TurnError>, Vec<AgentEvent>) {
        self.run(TurnRequest {
            session_id: session.into(),
            actor_id: "tester".into(),
            prompt: prompt.into(),
            session_budget: None,
            approval: Some(ApprovalAnswer {
                request_id: request_id.into(),
                approved,
            }),
        })
        .await
    }

    pub async fn run(&self, req: TurnRequest) -> (Result<Output, TurnError>, Vec<AgentEvent>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let result = run_turn(&self.deps, req, ProgressSender::new(tx)).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (result, events)
    }

    pub async fn records(&self, session: &str) -> Vec<Record> {
        self.store.load("tester", session).await.unwrap()
    }

    /// Stored conversation messages, as JSON.
    pub async fn messages(&self, session: &str) -> Vec<serde_json::Value> {
        self.records(session)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Record::Message { message } => Some(message),
                Record::Ledger { .. } => None,
            })
            .collect()
    }

    pub async fn ledger(&self, session: &str) -> Vec<serde_json::Value> {
        self.records(session)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Record::Ledger { entry } => Some(entry),
                Record::Message { .. } => None,
            })
            .collect()
    }
}

/// The agent's real seller client with a test's step after each quote (wait
/// at a barrier, show another price); everything else passes through.
pub struct AfterQuote {
    inner: X402Seller,
    after: Box<dyn Fn(QuoteResult) -> BoxFuture<'static, QuoteResult> + Send + Sync>,
}

type QuoteResult = Result<Quote, SellerError>;

impl AfterQuote {
    pub fn new<F, Fut>(inner: X402Seller, after: F) -> AfterQuote
    where
        F: Fn(QuoteResult) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = QuoteResult> + Send + 'static,
    {
        AfterQuote {
            inner,
            after: Box::new(move |q| Box::pin(after(q))),
        }
    }
}

#[async_trait]
impl ImageSeller for AfterQuote {
    fn payer(&self) -> Address {
        self.inner.payer()
    }
    async fn quote(&self, req: &ImageRequest) -> QuoteResult {
        (self.after)(self.inner.quote(req).await).await
    }
    async fn prepare(
        &self,
        quote: &Quote,
        pay: &PayContext<'_>,
    ) -> Result<PreparedPayment, SellerError> {
        self.inner.prepare(quote, pay).await
    }
    async fn send(
        &self,
        req: &ImageRequest,
        payment: &PreparedPayment,
    ) -> Result<Purchase, SellerError> {
        self.inner.send(req, payment).await
    }
}
