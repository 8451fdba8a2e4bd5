//! The x402 client on the local stack: it pays our gateway (v2, and v1 when
//! the seller speaks only v1) and an official `@x402/express` seller; the
//! receipts carry real transactions whose transfers match the amounts. The
//! policy refuses before anything is signed. `hostile` holds a seller that
//! abuses the buyer's trust in its HTTP.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use alloy::{
    primitives::{Address, B256, Signature},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::{Eip712Domain, SolEvent},
};
use async_trait::async_trait;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tools::{
    client::{ClientError, PaidRequest, Receipt, X402Client},
    policy::{Limits, PaymentPolicy},
    signer::{LocalSigner, PaymentSigner, SignerError},
};
use x402::{Network, Usdc, eip3009::Authorization, wire};

#[path = "client/hostile.rs"]
mod hostile;

fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("the local stack must be up (cargo xtask stack)")
}

/// A real signer that counts what it is asked to sign.
#[derive(Debug)]
struct Counting {
    inner: LocalSigner,
    calls: AtomicU32,
}

#[async_trait]
impl PaymentSigner for Counting {
    fn address(&self) -> Address {
        self.inner.address()
    }
    async fn sign_transfer_authorization(
        &self,
        auth: &Authorization,
        domain: &Eip712Domain,
    ) -> Result<Signature, SignerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.sign_transfer_authorization(auth, domain).await
    }
    fn kind(&self) -> &'static str {
        "counting"
    }
}

fn counting(key: &PrivateKeySigner) -> Arc<Counting> {
    Arc::new(Counting {
        inner: LocalSigner::new(key.clone()),
        calls: AtomicU32::new(0),
    })
}

fn policy(stack: &testkit::Stack, pay_to: Address) -> PaymentPolicy {
    PaymentPolicy::new(Network::BaseSepolia, stack.usdc_contract, vec![pay_to])
}

/// Our gateway in-process, on a loopback port.
async fn gateway(stack: &testkit::Stack) -> String {
    use gateway_lambda::{app, generate::LocalGenerator, payment::Seller, wiring::local_state};
    let dir = std::env::temp_dir().join(format!("tools-gw-{:x}", rand::random::<u64>()));
    let state = local_state(
        Seller::usdc(stack.network, stack.usdc_contract, stack.seller_wallet),
        Arc::new(stack.facilitator()),
        Arc::new(LocalGenerator),
        &stack.rpc_url,
        &dir,
    )
    .unwrap();
    serve(app(Arc::new(state))).await
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// A proxy that hides the v2 `PAYMENT-REQUIRED` header: the seller looks
/// like a v1-only seller, so the client must fall back to the v1 body.
async fn v1_only(upstream: String) -> String {
    use axum::{
        body::Bytes,
        extract::State,
        http::{HeaderMap, Method, Uri},
        response::IntoResponse,
    };
    async fn forward(
        State(up): State<String>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let mut rb = reqwest::Client::new().request(method, format!("{up}{uri}"));
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                rb = rb.header(k, v);
            }
        }
        let r = rb.body(body).send().await.unwrap();
        let status = r.status();
        let mut out = HeaderMap::new();
        for (k, v) in r.headers() {
            if *k != wire::PAYMENT_REQUIRED && k != "content-length" && k != "transfer-encoding" {
                out.insert(k.clone(), v.clone());
            }
        }
        (status, out, r.bytes().await.unwrap()).into_response()
    }
    serve(axum::Router::new().fallback(forward).with_state(upstream)).await
}

/// The receipt's transaction moved exactly `amount` from `payer` to `pay_to`.
async fn assert_on_chain(stack: &testkit::Stack, receipt: &Receipt, payer: Address, amount: Usdc) {
    let hash: B256 = receipt.transaction.parse().unwrap();
    let tx = stack
        .provider()
        .get_transaction_receipt(hash)
        .await
        .unwrap()
        .expect("the receipt's transaction is on chain");
    assert!(tx.status());
    let transfers: Vec<_> = tx
        .inner
        .logs()
        .iter()
        .filter_map(|l| testkit::ITestUsdc::Transfer::decode_log(&l.inner).ok())
        .collect();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].from, payer);
    assert_eq!(transfers[0].to, receipt.pay_to);
    assert_eq!(Usdc::from_u256(transfers[0].value).unwrap(), amount);
}

#[tokio::test]
async fn pays_our_gateway_in_v2_and_v1_with_real_receipts() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let client = X402Client::new(counting(&key), policy(&stack, stack.seller_wallet));
    let limits = Limits::single(Usdc::from_atomic(100_000));

    for (base, version) in [(gw.clone(), "v2"), (v1_only(gw.clone()).await, "v1")] {
        let req = PaidRequest::post_json(
            format!("{base}/generate_image"),
            &json!({"prompt": format!("paid by the tools client, {version}")}),
        );
        let quote = client.quote(&req).await.unwrap();
        assert_eq!(quote.version, if version == "v2" { 2 } else { 1 });
        assert_eq!(quote.amount, Usdc::from_atomic(40_000));
        let before = stack.usdc_balance(key.address()).await.unwrap();
        let paid = client.pay(&req, &limits).await.unwrap();
        assert_eq!(paid.status, 200, "{version}");
        let receipt = paid.receipt.expect("a receipt");
        assert_eq!(
            receipt.network,
            if version == "v2" {
                "eip155:84532"
            } else {
                "base-sepolia"
            }
        );
        assert_on_chain(&stack, &receipt, key.address(), Usdc::from_atomic(40_000)).await;
        assert_eq!(
            before.saturating_sub(stack.usdc_balance(key.address()).await.unwrap()),
            Usdc::from_atomic(40_000),
            "{version}"
        );
    }
}

#[tokio::test]
async fn pays_official_x402_express_sellers_v2_and_v1() {
    for version in ["v2", "v1"] {
        pays_an_official_x402_express_seller(version).await;
    }
}

async fn pays_an_official_x402_express_seller(version: &str) {
    let stack = stack();
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../local");
    let mut child = tokio::process::Command::new("node")
        .current_dir(&local)
        .arg("interop/express-seller.mjs")
        .env("VERSION", version)
        .env("FACILITATOR_URL", &stack.facilitator_url)
        .env("PAY_TO", stack.seller_wallet.to_checksum(None))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next_line().await.unwrap().expect("the seller starts");
        if let Some(p) = line.strip_prefix("listening ") {
            break p.trim().to_owned();
        }
    };
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let client = X402Client::new(counting(&key), policy(&stack, stack.seller_wallet));
    let req = PaidRequest::post_json(
        format!("http://127.0.0.1:{port}/paid"),
        &json!({"hello": 1}),
    );
    let paid = client
        .pay(&req, &Limits::single(Usdc::from_atomic(10_000)))
        .await
        .unwrap();
    assert_eq!(paid.status, 200, "{version}");
    let body: serde_json::Value = serde_json::from_slice(&paid.body).unwrap();
    assert_eq!(body["content"], "paid content");
    let receipt = paid.receipt.expect("a settlement header");
    assert_eq!(
        receipt.network,
        if version == "v2" {
            "eip155:84532"
        } else {
            "base-sepolia"
        }
    );
    assert_on_chain(&stack, &receipt, key.address(), Usdc::from_atomic(10_000)).await;
}

#[tokio::test]
async fn the_policy_refuses_before_anything_is_signed() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let req = PaidRequest::post_json(format!("{gw}/generate_image"), &json!({"prompt": "x"}));
    let before = stack.usdc_balance(key.address()).await.unwrap();

    let other = Address::repeat_byte(0x42);
    let cases: Vec<(&str, PaymentPolicy, Limits)> = vec![
        (
            "authorised_amount",
            policy(&stack, stack.seller_wallet),
            Limits::single(Usdc::from_atomic(39_999)),
        ),
        (
            "pay_to",
            policy(&stack, other),
            Limits::single(Usdc::from_atomic(100_000)),
        ),
        (
            "asset",
            PaymentPolicy {
                asset: x402::network::BASE_USDC,
                ..policy(&stack, stack.seller_wallet)
            },
            Limits::single(Usdc::from_atomic(100_000)),
        ),
        (
            "session_budget",
            policy(&stack, stack.seller_wallet),
            Limits {
                authorised: Usdc::from_atomic(100_000),
                spent: Usdc::from_atomic(970_000),
                budget: Usdc::from_atomic(1_000_000),
            },
        ),
    ];
    for (rule, p, limits) in cases {
        let signer = counting(&key);
        let client = X402Client::new(signer.clone(), p);
        match client.pay(&req, &limits).await {
            Err(ClientError::Policy(r)) => {
                assert_eq!(r.rule(), rule, "{r}");
                assert!(r.to_string().contains("0.04"), "names the amount: {r}");
            }
            other => panic!("{rule}: expected a refusal, got {other:?}"),
        }
        assert_eq!(
            signer.calls.load(Ordering::SeqCst),
            0,
            "{rule}: nothing signed"
        );
    }
    // A different network: the seller offers nothing on Base mainnet.
    let signer = counting(&key);
    let client = X402Client::new(
        signer.clone(),
        PaymentPolicy {
            network: Network::Base,
            ..policy(&stack, stack.seller_wallet)
        },
    );
    let e = client
        .pay(&req, &Limits::single(Usdc::from_atomic(100_000)))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::BadQuote(_)), "{e:?}");
    assert_eq!(signer.calls.load(Ordering::SeqCst), 0);
    assert_eq!(stack.usdc_balance(key.address()).await.unwrap(), before);
}

#[tokio::test]
async fn an_unreachable_seller_gives_no_quote() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let key = PrivateKeySigner::random();
    let client = X402Client::new(
        counting(&key),
        PaymentPolicy::new(
            Network::BaseSepolia,
            x402::network::BASE_SEPOLIA_USDC,
            vec![],
        ),
    );
    let e = client
        .quote(&PaidRequest::post_json(
            format!("http://{closed}/generate_image"),
            &json!({}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot reach the seller"));
}

/// `x402-pay`, the command-line client, as a user runs it.
async fn x402_pay(
    stack: &testkit::Stack,
    key: &PrivateKeySigner,
    args: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_x402-pay"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIGNER", "local")
        .env(
            "BUYER_PRIVATE_KEY",
            format!("0x{}", alloy::hex::encode(key.to_bytes())),
        )
        .env("NETWORK", "base-sepolia")
        .env("USDC_CONTRACT", stack.usdc_contract.to_checksum(None))
        .env("SELLER_WALLET", stack.seller_wallet.to_checksum(None))
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn x402_pay_pays_within_max_and_refuses_above_it() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{gw}/generate_image");
    let before = stack.usdc_balance(key.address()).await.unwrap();

    let out = x402_pay(
        &stack,
        &key,
        &[
            "pay",
            "--max",
            "0.03",
            "-d",
            r#"{"prompt":"too dear"}"#,
            &url,
        ],
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused, nothing was signed or paid"), "{err}");
    assert!(
        err.contains("0.04") && err.contains("0.03"),
        "names amount and limit: {err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(stack.usdc_balance(key.address()).await.unwrap(), before);

    let out = x402_pay(
        &stack,
        &key,
        &["pay", "--max", "0.05", "-d", r#"{"prompt":"a cat"}"#, &url],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(body["imageBase64"].as_str().is_some_and(|s| !s.is_empty()));
    let receipt: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(receipt["status"], 200);
    let receipt: Receipt = serde_json::from_value(receipt["receipt"].clone()).unwrap();
    assert_on_chain(&stack, &receipt, key.address(), Usdc::from_atomic(40_000)).await;
    let key_hex = alloy::hex::encode(key.to_bytes());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&key_hex));
}
