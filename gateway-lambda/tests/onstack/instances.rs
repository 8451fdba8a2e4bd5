//! Two gateway processes (the real binary, as Lambda would run two
//! instances) sharing one DynamoDB payments table and one S3 results bucket
//! on moto, in front of the official facilitator through a proxy that can
//! hold `/verify` and lose a `/settle` answer. One payment, one settlement on
//! chain, whichever instance gets which copy of it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::watch;
use x402::{Usdc, wire};

use crate::support::*;

/// The official facilitator behind a proxy that counts `/verify` and
/// `/settle`, can hold every `/verify` until released, and can forward a
/// `/settle` and then never answer it (the instance "dies" after money moved).
struct Facilitator {
    url: String,
    upstream: String,
    verifies: AtomicU32,
    settles: AtomicU32,
    hold_verify: watch::Sender<bool>,
    lose_settle_answer: AtomicBool,
    /// Transactions the facilitator reported for settlements (also lost ones).
    settled: Mutex<Vec<String>>,
}

impl Facilitator {
    async fn start(stack: &testkit::Stack, hold: bool) -> Arc<Facilitator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let f = Arc::new(Facilitator {
            url: format!("http://{}", listener.local_addr().unwrap()),
            upstream: stack.facilitator_url.trim_end_matches('/').to_owned(),
            verifies: AtomicU32::new(0),
            settles: AtomicU32::new(0),
            hold_verify: watch::channel(hold).0,
            lose_settle_answer: AtomicBool::new(false),
            settled: Mutex::default(),
        });
        let app = Router::new().fallback(forward).with_state(f.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        f
    }

    fn release_verify(&self) {
        self.hold_verify.send_replace(false);
    }
}

async fn forward(
    State(f): State<Arc<Facilitator>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/verify" {
        f.verifies.fetch_add(1, Ordering::SeqCst);
        let mut rx = f.hold_verify.subscribe();
        let _ = rx.wait_for(|held| !*held).await;
    }
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", f.upstream));
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct);
    }
    let Ok(resp) = req.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    if path == "/settle" {
        f.settles.fetch_add(1, Ordering::SeqCst);
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && let Some(tx) = v["transaction"].as_str().filter(|t| !t.is_empty())
        {
            f.settled.lock().unwrap().push(tx.to_lowercase());
        }
        if f.lose_settle_answer.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
    (
        StatusCode::from_u16(status.as_u16()).unwrap(),
        [("content-type", "application/json")],
        bytes,
    )
        .into_response()
}

/// A moto table with the CDK schema (key `pk`, string) and a bucket.
async fn shared_stores(stack: &testkit::Stack) -> (String, String) {
    (
        stack.create_pk_table("payments").await.unwrap(),
        stack.create_bucket("results").await.unwrap(),
    )
}

/// The gateway binary on the shared stores.
struct Instance {
    url: String,
    child: tokio::process::Child,
    /// Its log; removed with the instance (kept when the test fails).
    _dir: testkit::TempDir,
}

impl Instance {
    async fn start(
        stack: &testkit::Stack,
        (table, bucket): &(String, String),
        facilitator: &str,
        lease_secs: u64,
    ) -> Instance {
        let port = testkit::free_port();
        let dir = temp_dir();
        let log = dir.join("gateway.log");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway-lambda"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEWAY_HOST", "127.0.0.1")
            .env("GATEWAY_PORT", port.to_string())
            .env("RPC_URL", &stack.rpc_url)
            .env("NETWORK", stack.network.v1_name())
            .env("USDC_CONTRACT", stack.usdc_contract.to_checksum(None))
            .env("SELLER_WALLET", stack.seller_wallet.to_checksum(None))
            .env("FACILITATOR_URL", facilitator)
            .env("GENERATION_BACKEND", "local")
            .env("PAYMENTS_TABLE", table)
            .env("RESULTS_BUCKET", bucket)
            .env("PAYMENT_LEASE_SECONDS", lease_secs.to_string())
            .env("FACILITATOR_TIMEOUT_SECONDS", "30")
            .env("AWS_ENDPOINT_URL", &stack.aws_endpoint_url)
            .env("AWS_REGION", &stack.aws_region)
            .env("AWS_ACCESS_KEY_ID", &stack.aws_access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &stack.aws_secret_access_key)
            .env("RUST_LOG", "warn");
        let url = format!("http://127.0.0.1:{port}");
        let child = testkit::process::spawn_until_ready(
            cmd,
            &log,
            &format!("{url}/health"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the gateway did not come up: {e:#}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Instance {
            url,
            child,
            _dir: dir,
        }
    }

    /// SIGKILL: the process is gone mid-request.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

async fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exactly one transfer of `price` from `buyer` to the configured seller
/// since `start`; returns its transaction.
async fn one_transfer(
    stack: &testkit::Stack,
    buyer: alloy::primitives::Address,
    start: u64,
) -> String {
    let end = stack.block_number().await.unwrap();
    let logs = stack
        .transfer_logs(buyer, stack.seller_wallet, start..=end)
        .await
        .unwrap();
    assert_eq!(logs.len(), 1, "one settlement on chain: {logs:?}");
    format!("{:#x}", logs[0].transaction_hash.unwrap())
}

#[tokio::test]
async fn duplicates_across_two_instances_settle_once_while_the_first_is_held() {
    let stack = stack();
    let stores = shared_stores(&stack).await;
    let fac = Facilitator::start(&stack, true).await;
    let a = Instance::start(&stack, &stores, &fac.url, 120).await;
    let b = Instance::start(&stack, &stores, &fac.url, 120).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let body = json!({"prompt": "one payment, two instances"});
    let q = quote(&format!("{}/generate_image", a.url), &body).await;
    let header = pay_v2(&stack, &buyer, &q);
    let start = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    let call = |base: &str| {
        let (url, body, header) = (
            format!("{base}/generate_image"),
            body.clone(),
            header.clone(),
        );
        tokio::spawn(async move { send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await })
    };
    let first = call(&a.url);
    // The first copy is inside instance A, held at /verify.
    poll("the first copy reaches /verify", || {
        fac.verifies.load(Ordering::SeqCst) >= 1
    })
    .await;
    // Duplicates to both instances while it is held.
    let dups: Vec<_> = (0..6)
        .map(|i| call(if i % 2 == 0 { &b.url } else { &a.url }))
        .collect();
    // Each duplicate is answered, or is itself parked at /verify: only then
    // does the first go on, so every duplicate overlapped it.
    poll("every duplicate answered or held", || {
        let answered = dups.iter().filter(|d| d.is_finished()).count();
        let held = fac.verifies.load(Ordering::SeqCst).saturating_sub(1) as usize;
        answered + held >= dups.len()
    })
    .await;
    let answered_while_held = dups.iter().filter(|d| d.is_finished()).count();
    fac.release_verify();

    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.has_content());
    let tx = first.settlement().unwrap().transaction.to_lowercase();
    let mut in_progress = 0;
    for d in dups {
        let r = d.await.unwrap();
        match r.status {
            409 => {
                assert_eq!(r.body["code"], "payment_in_progress", "{}", r.body);
                assert!(!r.has_content());
                in_progress += 1;
            }
            200 => {
                assert_eq!(r.settlement().unwrap().transaction.to_lowercase(), tx);
                assert_eq!(r.body["imageBase64"], first.body["imageBase64"]);
            }
            s => panic!("duplicate answered {s}: {}", r.body),
        }
    }
    println!(
        "instances: {answered_while_held} duplicates answered while the first was held, \
         {in_progress} payment_in_progress"
    );
    assert!(in_progress >= 1, "the overlap was forced: at least one 409");
    assert_eq!(fac.settles.load(Ordering::SeqCst), 1, "one /settle");
    assert_eq!(one_transfer(&stack, buyer.address(), start).await, tx);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );

    // Afterwards, the other instance replays it from the shared stores.
    let r = send(
        &format!("{}/generate_image", b.url),
        &body,
        (wire::PAYMENT_SIGNATURE, &header),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.settlement().unwrap().transaction.to_lowercase(), tx);
    assert_eq!(r.body["imageBase64"], first.body["imageBase64"]);
    assert_eq!(fac.settles.load(Ordering::SeqCst), 1);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
}

#[tokio::test]
async fn an_instance_killed_after_settlement_is_recovered_by_the_other() {
    let stack = stack();
    let stores = shared_stores(&stack).await;
    let fac = Facilitator::start(&stack, false).await;
    fac.lose_settle_answer.store(true, Ordering::SeqCst);
    let a = Instance::start(&stack, &stores, &fac.url, 2).await;
    let b = Instance::start(&stack, &stores, &fac.url, 2).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let body = json!({"prompt": "paid, then instance A died"});
    let q = quote(&format!("{}/generate_image", a.url), &body).await;
    let header = pay_v2(&stack, &buyer, &q);
    let start = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    let (url, b2, h2) = (
        format!("{}/generate_image", a.url),
        body.clone(),
        header.clone(),
    );
    let first = tokio::spawn(async move { send(&url, &b2, (wire::PAYMENT_SIGNATURE, &h2)).await });
    poll("A's settlement lands on chain", || {
        !fac.settled.lock().unwrap().is_empty()
    })
    .await;
    a.kill().await;
    first.abort();
    let settled_tx = fac.settled.lock().unwrap()[0].clone();
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000),
        "money moved; A never answered"
    );
    fac.lose_settle_answer.store(false, Ordering::SeqCst);

    // The buyer retries the same payment on instance B.
    let url = format!("{}/generate_image", b.url);
    // A's lease (2 s) must run out first.
    let r = send_past_lease(&url, &body, &header).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.has_content(), "paid content is never lost");
    assert_eq!(
        r.settlement().unwrap().transaction.to_lowercase(),
        settled_tx,
        "the transaction A's settlement made"
    );
    assert_eq!(
        one_transfer(&stack, buyer.address(), start).await,
        settled_tx
    );
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000),
        "once"
    );
}
