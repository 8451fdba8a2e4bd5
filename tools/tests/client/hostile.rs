//! A seller that abuses the buyer's trust in its HTTP: a validity window of
//! centuries, a redirect of the paid request to another server, answers too
//! large to hold. A proxy in front of our real gateway tells each lie; the
//! chain shows no money moved.

use std::sync::{Arc, Mutex};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tools::client::{
    ClientError, MAX_402_BODY_BYTES, MAX_PAID_BODY_BYTES, PaidRequest, X402Client,
};
use tools::policy::{DEFAULT_MAX_TIMEOUT_SECONDS, Limits};
use x402::{Usdc, wire};

use super::{counting, gateway, policy, serve, stack};

/// What the proxy does with a request.
#[derive(Clone)]
enum Trick {
    /// Sets every offer's `maxTimeoutSeconds` in the 402 to this.
    Timeout(u64),
    /// Answers a paid request with `307` to this URL.
    Redirect(String),
    /// Answers a paid request `200` with this many bytes, streamed (no
    /// `Content-Length`).
    HugePaid(usize),
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    trick: Trick,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let paid =
        headers.contains_key(wire::PAYMENT_SIGNATURE) || headers.contains_key(wire::X_PAYMENT);
    match (&p.trick, paid) {
        (Trick::Redirect(to), true) => {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("{to}{uri}"))],
            )
                .into_response();
        }
        (Trick::HugePaid(n), true) => {
            let chunk = Bytes::from(vec![b'x'; 1 << 20]);
            let chunks = n.div_ceil(chunk.len());
            let stream = futures::stream::iter(
                (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            return (StatusCode::OK, Body::from_stream(stream)).into_response();
        }
        _ => {}
    }
    let mut rb = reqwest::Client::new().request(method, format!("{}{uri}", p.upstream));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            rb = rb.header(k, v);
        }
    }
    let r = rb.body(body).send().await.unwrap();
    let status = r.status();
    let mut out = HeaderMap::new();
    for (k, v) in r.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.insert(k.clone(), v.clone());
        }
    }
    if let (Trick::Timeout(secs), Some(h)) = (&p.trick, out.get(wire::PAYMENT_REQUIRED)) {
        let mut doc: Value = wire::decode_header(h.to_str().unwrap()).unwrap();
        for offer in doc["accepts"].as_array_mut().unwrap() {
            offer["maxTimeoutSeconds"] = json!(secs);
        }
        out.insert(
            wire::PAYMENT_REQUIRED,
            HeaderValue::from_str(&wire::encode_header(&doc)).unwrap(),
        );
    }
    (status, out, r.bytes().await.unwrap()).into_response()
}

async fn proxy(upstream: String, trick: Trick) -> String {
    serve(
        axum::Router::new()
            .fallback(forward)
            .with_state(Proxy { upstream, trick }),
    )
    .await
}

fn limits() -> Limits {
    Limits::single(Usdc::from_atomic(100_000))
}

#[tokio::test]
async fn a_huge_max_timeout_is_refused_by_the_policy_before_signing() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let before = stack.usdc_balance(key.address()).await.unwrap();
    for secs in [DEFAULT_MAX_TIMEOUT_SECONDS + 1, u64::MAX] {
        let seller = proxy(gw.clone(), Trick::Timeout(secs)).await;
        let signer = counting(&key);
        let client = X402Client::new(signer.clone(), policy(&stack, stack.seller_wallet));
        let req = PaidRequest::post_json(
            format!("{seller}/generate_image"),
            &json!({"prompt": "valid for ever"}),
        );
        assert_eq!(client.quote(&req).await.unwrap().max_timeout_seconds, secs);
        match client.pay(&req, &limits()).await {
            Err(ClientError::Policy(r)) => {
                assert_eq!(r.rule(), "max_timeout", "{r}");
                let msg = r.to_string();
                assert!(msg.contains(&secs.to_string()), "names the value: {msg}");
                assert!(msg.contains("600 s"), "names the limit: {msg}");
            }
            other => panic!("{secs}: expected the max_timeout rule, got {other:?}"),
        }
        assert_eq!(
            signer.calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing signed"
        );
    }
    assert_eq!(stack.usdc_balance(key.address()).await.unwrap(), before);
}

/// Records every request that reaches it.
async fn recorder() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let url = serve(axum::Router::new().fallback(move |headers: HeaderMap| {
        let keep = keep.clone();
        async move {
            keep.lock().unwrap().push(headers);
            (StatusCode::OK, "{}")
        }
    }))
    .await;
    (url, seen)
}

#[tokio::test]
async fn a_redirect_never_carries_the_payment_header() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let (elsewhere, reached) = recorder().await;
    let seller = proxy(gw, Trick::Redirect(elsewhere.clone())).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let before = stack.usdc_balance(key.address()).await.unwrap();
    let signer = counting(&key);
    let client = X402Client::new(signer.clone(), policy(&stack, stack.seller_wallet));
    let req = PaidRequest::post_json(
        format!("{seller}/generate_image"),
        &json!({"prompt": "follow me"}),
    );
    let e = client.pay(&req, &limits()).await.unwrap_err();
    assert!(matches!(e, ClientError::Indeterminate(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("redirects to {elsewhere}/generate_image")),
        "{e}"
    );
    assert_eq!(
        signer.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the payment was signed and sent to the seller's URL"
    );
    assert!(
        reached.lock().unwrap().is_empty(),
        "nothing reached the other server: {:?}",
        reached.lock().unwrap()
    );
    assert_eq!(stack.usdc_balance(key.address()).await.unwrap(), before);
}

#[tokio::test]
async fn an_oversized_402_is_refused_with_a_clear_error() {
    let key = alloy::signers::local::PrivateKeySigner::random();
    let big = vec![b' '; MAX_402_BODY_BYTES + 1];
    // With a Content-Length, and streamed without one.
    let sized = big.clone();
    let with_length = serve(axum::Router::new().fallback(move || {
        let body = sized.clone();
        async move { (StatusCode::PAYMENT_REQUIRED, body) }
    }))
    .await;
    let streamed = serve(axum::Router::new().fallback(move || {
        let body = big.clone();
        async move {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(4096)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            (
                StatusCode::PAYMENT_REQUIRED,
                Body::from_stream(futures::stream::iter(chunks)),
            )
        }
    }))
    .await;
    for url in [with_length, streamed] {
        let signer = counting(&key);
        let client = X402Client::new(
            signer.clone(),
            tools::policy::PaymentPolicy::new(
                x402::Network::BaseSepolia,
                x402::network::BASE_SEPOLIA_USDC,
                vec![],
            ),
        );
        let e = client
            .pay(&PaidRequest::get(format!("{url}/x")), &limits())
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::TooLarge { status: 402, limit } if limit == MAX_402_BODY_BYTES),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "the seller's 402 answer is larger than the {MAX_402_BODY_BYTES} bytes this client reads"
            )
        );
        assert_eq!(signer.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn an_oversized_paid_answer_is_refused_with_a_clear_error() {
    let stack = stack();
    let gw = gateway(&stack).await;
    let seller = proxy(gw, Trick::HugePaid(MAX_PAID_BODY_BYTES + 1)).await;
    let key = stack.fresh_wallet(1_000_000).await.unwrap();
    let client = X402Client::new(counting(&key), policy(&stack, stack.seller_wallet));
    let req = PaidRequest::post_json(
        format!("{seller}/generate_image"),
        &json!({"prompt": "too much"}),
    );
    let e = client.pay(&req, &limits()).await.unwrap_err();
    // Not "refused": a paid answer that cannot be read may have settled.
    assert!(matches!(e, ClientError::Indeterminate(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("larger than {MAX_PAID_BODY_BYTES} bytes")),
        "{e}"
    );
}
