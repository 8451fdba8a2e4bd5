//! The real seller (`gateway-lambda`) in-process for the money tests,
//! settling through the local stack's official x402 facilitator on Anvil.
//!
//! Test hooks wrap the gateway's outside systems, never its logic: a
//! generator that can hold a paid request after verification (before
//! settlement), `testkit`'s faulty facilitator, which can hold it after
//! settlement (money moved, no answer yet) and records settlements, and a
//! counter of requests that carried a payment. A "compromised seller" is the same
//! gateway configured to be paid to another address or in another token.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use alloy::primitives::Address;
use async_trait::async_trait;
use axum::response::IntoResponse as _;
use gateway_lambda::{
    app,
    generate::{GeneratedImage, GenerationError, Generator, ImageJob, LocalGenerator},
    payment::Seller,
    pricing::ImagePrices,
    wiring::local_state,
};
use testkit::facilitator::{Fault, Faulty, Route};
use tokio::sync::Notify;
use x402::Usdc;

/// How a lying seller answers paid requests: `402` whatever happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lie {
    /// Refuses without passing the payment on: nothing settles.
    RefuseUnsettled,
    /// Lets the gateway settle and deliver, then answers `402` instead.
    RefuseAfterSettling,
}

/// Where a paid request may be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// After verification, before settling (while generating).
    BeforeSettle,
    /// After settling (money moved), before answering.
    AfterSettle,
}

#[derive(Default)]
pub struct Hooks {
    /// Whether the generator holds paid requests ([`Hold::BeforeSettle`]).
    holding: AtomicBool,
    /// Signalled when the generator holds a request.
    held: Notify,
    release: Notify,
    released: AtomicBool,
    pub paid_requests: AtomicU32,
    /// The EIP-3009 nonces the paid requests carried, as the seller read them.
    nonces: Mutex<std::collections::BTreeSet<String>>,
    /// The lie told to the next `lies` paid requests.
    lie: Mutex<Option<(Lie, u32)>>,
}

impl Hooks {
    /// The lie for this paid request, if any are left.
    fn take_lie(&self) -> Option<Lie> {
        let mut lie = self.lie.lock().unwrap();
        match *lie {
            Some((l, n)) if n > 0 => {
                *lie = Some((l, n - 1));
                Some(l)
            }
            _ => None,
        }
    }

    async fn wait(&self) {
        self.held.notify_one();
        loop {
            let notified = self.release.notified();
            if self.released.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

struct HoldingGenerator(Arc<Hooks>);

#[async_trait]
impl Generator for HoldingGenerator {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        if self.0.holding.load(Ordering::SeqCst) {
            self.0.wait().await;
        }
        LocalGenerator.image(job).await
    }
    async fn text(&self, prompt: &str) -> Result<String, GenerationError> {
        LocalGenerator.text(prompt).await
    }
    async fn count_input_tokens(&self, prompt: &str) -> Result<u64, GenerationError> {
        LocalGenerator.count_input_tokens(prompt).await
    }
    fn name(&self) -> &'static str {
        "local"
    }
}

#[derive(Clone)]
pub struct TestSeller {
    pub hooks: Arc<Hooks>,
    /// The gateway's facilitator: the stack's, wrapped to hold settlements'
    /// answers ([`Hold::AfterSettle`]) and record the successful ones.
    pub facilitator: Arc<Faulty>,
    url: String,
    /// The gateway's state and results, removed with the last clone.
    _dir: Arc<testkit::TempDir>,
}

/// The gateway's price list with premium raised above the agent's
/// auto-approve limit (0.10), so the consent path can be exercised:
/// standard 0.04, premium 0.50 USDC.
pub fn prices() -> ImagePrices {
    ImagePrices {
        premium_1024: Usdc::from_atomic(500_000),
        premium_2048: Usdc::from_atomic(500_000),
        ..ImagePrices::default()
    }
}

impl TestSeller {
    pub async fn start(stack: &testkit::Stack) -> TestSeller {
        Self::start_as(stack, stack.seller_wallet, stack.usdc_contract).await
    }

    /// A gateway paid to `pay_to` in `asset` (a compromised seller when
    /// they differ from the agent's configuration).
    pub async fn start_as(stack: &testkit::Stack, pay_to: Address, asset: Address) -> TestSeller {
        let hooks = Arc::new(Hooks::default());
        let facilitator = Faulty::new(stack.facilitator());
        let dir = testkit::TempDir::new("agent-gw");
        let mut state = local_state(
            Seller::usdc(stack.network, asset, pay_to),
            facilitator.clone(),
            Arc::new(HoldingGenerator(hooks.clone())),
            &stack.rpc_url,
            &dir,
        )
        .unwrap();
        state.prices = prices();
        state.generation_timeout = Duration::from_secs(120);
        let counter = hooks.clone();
        let router = app(Arc::new(state)).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    let h = req.headers();
                    if !(h.contains_key("payment-signature") || h.contains_key("x-payment")) {
                        return next.run(req).await;
                    }
                    counter.paid_requests.fetch_add(1, Ordering::SeqCst);
                    let nonce = h
                        .get("payment-signature")
                        .or_else(|| h.get("x-payment"))
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| x402::wire::decode_payment(v).ok())
                        .map(|p| format!("{:#x}", p.exact().authorization.nonce))
                        .unwrap_or_default();
                    counter.nonces.lock().unwrap().insert(nonce);
                    let refuse = || {
                        (
                            axum::http::StatusCode::PAYMENT_REQUIRED,
                            axum::Json(serde_json::json!({"error": "payment not accepted"})),
                        )
                            .into_response()
                    };
                    match counter.take_lie() {
                        None => next.run(req).await,
                        Some(Lie::RefuseUnsettled) => refuse(),
                        Some(Lie::RefuseAfterSettling) => {
                            let real = next.run(req).await;
                            assert!(real.status().is_success(), "the gateway delivered");
                            refuse()
                        }
                    }
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        TestSeller {
            hooks,
            facilitator,
            url,
            _dir: Arc::new(dir),
        }
    }

    pub fn base_url(&self) -> String {
        self.url.clone()
    }

    /// Holds paid requests at `h` until [`TestSeller::release`].
    pub fn hold(&self, h: Hold) {
        match h {
            Hold::BeforeSettle => {
                self.hooks.released.store(false, Ordering::SeqCst);
                self.hooks.holding.store(true, Ordering::SeqCst);
            }
            Hold::AfterSettle => self.facilitator.set(Route::Settle, Fault::Hold),
        }
    }

    /// Resolves once a paid request is held at `h`. After settling, that is
    /// this seller's first settlement: the facilitator has answered it and
    /// the answer is held. `Fault::Hold` holds any answer, so this checks the
    /// answer was a success: money moved, and the buyer has not heard so.
    pub async fn held(&self, h: Hold) {
        match h {
            Hold::BeforeSettle => self.hooks.held.notified().await,
            Hold::AfterSettle => {
                self.facilitator.answered(Route::Settle, 1).await;
                assert_eq!(
                    self.facilitator.settled_transactions().len(),
                    1,
                    "the held answer is a successful settlement"
                );
            }
        }
    }

    /// Lets held requests go and stops holding new ones.
    pub fn release(&self) {
        self.hooks.holding.store(false, Ordering::SeqCst);
        self.hooks.released.store(true, Ordering::SeqCst);
        self.hooks.release.notify_waiters();
        self.facilitator.set(Route::Settle, Fault::Pass);
        self.facilitator.release();
    }

    /// The next `times` paid requests are answered with `lie`.
    pub fn lie(&self, lie: Lie, times: u32) {
        *self.hooks.lie.lock().unwrap() = Some((lie, times));
    }

    /// Successful settlements (the facilitator's answers, also held ones).
    pub fn settlements(&self) -> usize {
        self.facilitator.settled_transactions().len()
    }

    /// Distinct payments (nonces) among the paid requests.
    pub fn distinct_nonces(&self) -> usize {
        self.hooks.nonces.lock().unwrap().len()
    }

    pub fn paid_requests(&self) -> u32 {
        self.hooks.paid_requests.load(Ordering::SeqCst)
    }
}
