//! The gateway in-process on a loopback port, wired to the local stack's
//! real facilitator and chain, and a buyer that signs x402 payments with the
//! `x402` crate (the same wire types the `tools` client uses).

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use gateway_lambda::{
    app,
    generate::{Generator, LocalGenerator},
    payment::Seller,
    wiring::local_state,
};
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::Value;
use x402::{
    Usdc,
    eip3009::Authorization,
    facilitator::Facilitator,
    wire::{
        self, ExactEvmPayload, PaymentPayloadV1, PaymentPayloadV2, PaymentRequiredV1,
        PaymentRequiredV2, SettleResponse,
    },
};

pub struct Options {
    pub facilitator: Option<Arc<dyn Facilitator>>,
    pub generator: Option<Arc<dyn Generator>>,
    pub dir: Option<PathBuf>,
    pub lease: Duration,
    /// A payee of the test's own (default: the stack's seller wallet, which
    /// other tests pay concurrently), so its balance can be asserted exactly.
    pub pay_to: Option<Address>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            facilitator: None,
            generator: None,
            dir: None,
            lease: Duration::from_secs(120),
            pay_to: None,
        }
    }
}

pub struct Gateway {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
    /// The state directory it made itself (none given in `Options::dir`).
    _dir: Option<testkit::TempDir>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("the local stack must be up (cargo xtask stack)")
}

pub fn seller(stack: &testkit::Stack) -> Seller {
    Seller::usdc(stack.network, stack.usdc_contract, stack.seller_wallet)
}

/// `{tmp}/gw-test-…`, removed when the guard is dropped (kept when the test
/// fails).
pub fn temp_dir() -> testkit::TempDir {
    testkit::TempDir::new("gw-test")
}

impl Gateway {
    /// Paying `pay_to` (a payee of the test's own), generating with
    /// `generator`; everything else as [`Options::default`].
    pub async fn paying(
        stack: &testkit::Stack,
        pay_to: Address,
        generator: Arc<dyn Generator>,
    ) -> Gateway {
        Gateway::start(
            stack,
            Options {
                generator: Some(generator),
                pay_to: Some(pay_to),
                ..Options::default()
            },
        )
        .await
    }

    pub async fn start(stack: &testkit::Stack, opts: Options) -> Gateway {
        let own = opts.dir.is_none().then(temp_dir);
        let dir = opts
            .dir
            .unwrap_or_else(|| own.as_ref().expect("made above").to_path_buf());
        let mut seller = seller(stack);
        if let Some(pay_to) = opts.pay_to {
            seller.pay_to = pay_to;
        }
        let mut state = local_state(
            seller,
            opts.facilitator
                .unwrap_or_else(|| Arc::new(stack.facilitator())),
            opts.generator.unwrap_or_else(|| Arc::new(LocalGenerator)),
            &stack.rpc_url,
            &dir,
        )
        .unwrap();
        state.lease = opts.lease;
        state.generation_timeout = Duration::from_secs(30);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = app(Arc::new(state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Gateway {
            url,
            task,
            _dir: own,
        }
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        // A bound on a hang, not a timing claim (see `chain::until`).
        .timeout(Duration::from_secs(180))
        .build()
        .unwrap()
}

/// A fresh buyer (1 USDC), the gateway's `/generate_image` URL and body
/// for `prompt`, a v2 `PAYMENT-SIGNATURE` paying exactly what the gateway
/// quoted (not sent yet), and the buyer's USDC before paying.
pub async fn purchase(
    stack: &testkit::Stack,
    gw: &Gateway,
    prompt: &str,
) -> (PrivateKeySigner, String, Value, String, Usdc) {
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let body = serde_json::json!({ "prompt": prompt });
    let q = quote(&url, &body).await;
    let header = pay_v2(stack, &buyer, &q);
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    (buyer, url, body, header, before)
}

/// What the gateway asked for.
pub struct Quote {
    pub v1: PaymentRequiredV1,
    pub v2: PaymentRequiredV2,
}

pub async fn quote(url: &str, body: &Value) -> Quote {
    let resp = http().post(url).json(body).send().await.unwrap();
    assert_eq!(resp.status(), 402, "unpaid request must be quoted");
    let h = resp.headers()[wire::PAYMENT_REQUIRED]
        .to_str()
        .unwrap()
        .to_owned();
    let v2: PaymentRequiredV2 = wire::decode_header(&h).unwrap();
    let v1: PaymentRequiredV1 = resp.json().await.unwrap();
    Quote { v1, v2 }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An authorization for `amount` to `to`, valid now.
pub fn authorization(from: Address, to: Address, amount: u64) -> Authorization {
    Authorization {
        from,
        to,
        value: U256::from(amount),
        valid_after: U256::from(now() - 600),
        valid_before: U256::from(now() + 300),
        nonce: Authorization::random_nonce(),
    }
}

pub fn sign(
    stack: &testkit::Stack,
    key: &PrivateKeySigner,
    auth: Authorization,
) -> ExactEvmPayload {
    let sig = key
        .sign_hash_sync(&auth.signing_hash(&stack.usdc_domain()))
        .unwrap();
    ExactEvmPayload {
        signature: Bytes::from(sig.as_bytes().to_vec()),
        authorization: auth,
    }
}

/// A v2 `PAYMENT-SIGNATURE` paying exactly what `q` asks.
pub fn pay_v2(stack: &testkit::Stack, key: &PrivateKeySigner, q: &Quote) -> String {
    let r = &q.v2.accepts[0];
    let auth = authorization(key.address(), r.pay_to, r.amount.parse().unwrap());
    v2_header(q, sign(stack, key, auth))
}

pub fn v2_header(q: &Quote, payload: ExactEvmPayload) -> String {
    wire::encode_header(&PaymentPayloadV2 {
        x402_version: 2,
        resource: Some(q.v2.resource.clone()),
        accepted: q.v2.accepts[0].clone(),
        payload,
        extensions: None,
    })
}

/// A v1 `X-PAYMENT` paying exactly what `q` asks.
pub fn pay_v1(stack: &testkit::Stack, key: &PrivateKeySigner, q: &Quote) -> String {
    let r = &q.v1.accepts[0];
    let auth = authorization(
        key.address(),
        r.pay_to,
        r.max_amount_required.parse().unwrap(),
    );
    wire::encode_header(&PaymentPayloadV1 {
        x402_version: 1,
        scheme: "exact".into(),
        network: r.network.clone(),
        payload: sign(stack, key, auth),
    })
}

pub struct Paid {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Paid {
    pub fn settlement(&self) -> Option<SettleResponse> {
        let h = self
            .headers
            .get(wire::PAYMENT_RESPONSE)
            .or_else(|| self.headers.get(wire::X_PAYMENT_RESPONSE))?;
        Some(wire::decode_header(h.to_str().unwrap()).unwrap())
    }

    pub fn has_content(&self) -> bool {
        self.body.get("imageBase64").is_some() || self.body.get("content").is_some()
    }
}

pub async fn send(url: &str, body: &Value, header: (HeaderName, &str)) -> Paid {
    let resp = http()
        .post(url)
        .header(header.0, header.1)
        .json(body)
        .send()
        .await
        .unwrap();
    Paid {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

/// Sends the v2 payment `header` again while the gateway answers 409 (an
/// earlier request still holds the payment's lease), for up to 30 s; the
/// first other answer.
pub async fn send_past_lease(url: &str, body: &Value, header: &str) -> Paid {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = send(url, body, (wire::PAYMENT_SIGNATURE, header)).await;
        if r.status != 409 || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The buyer's balance, and how much it changed since `before`.
pub async fn spent(stack: &testkit::Stack, who: Address, before: Usdc) -> Usdc {
    before.saturating_sub(stack.usdc_balance(who).await.unwrap())
}

/// Sends one request per header to `url` at once; the count of answered
/// ones says, beside a held generator's calls, when all have arrived.
pub fn send_each(
    url: &str,
    body: &serde_json::Value,
    headers: Vec<String>,
) -> (
    Vec<tokio::task::JoinHandle<Paid>>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = headers
        .into_iter()
        .map(|header| {
            let (url, body, answered) = (url.to_owned(), body.clone(), answered.clone());
            tokio::spawn(async move {
                let r = send(&url, &body, (x402::wire::PAYMENT_SIGNATURE, &header)).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r
            })
        })
        .collect();
    (tasks, answered)
}
