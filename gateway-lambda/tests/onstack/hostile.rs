//! Hostile input: every case gets a clear status and reason, and neither
//! money nor content moves.

use alloy::primitives::U256;
use base64::Engine as _;
use reqwest::header::HeaderName;
use serde_json::json;
use x402::wire;

use crate::support::*;

#[tokio::test]
async fn hostile_payments_are_refused_without_settlement_or_content() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "something valuable", "quality": "premium"});
    let q = quote(&url, &body).await;
    let price: u64 = q.v2.accepts[0].amount.parse().unwrap();
    let to = stack.seller_wallet;
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good_payload = || sign(&stack, &buyer, authorization(buyer.address(), to, price));

    // (name, header name, header value, status, code)
    let mut cases: Vec<(&str, HeaderName, String, u16, &str)> = vec![
        (
            "not base64",
            wire::PAYMENT_SIGNATURE,
            "%%%".into(),
            400,
            "invalid_base64",
        ),
        (
            "not JSON",
            wire::PAYMENT_SIGNATURE,
            b64("hello"),
            400,
            "invalid_payload",
        ),
        (
            "wrong x402Version",
            wire::PAYMENT_SIGNATURE,
            b64(r#"{"x402Version":7,"payload":{}}"#),
            400,
            "unsupported_version",
        ),
        (
            "oversized header",
            wire::PAYMENT_SIGNATURE,
            "A".repeat(5000),
            431,
            "payment_header_too_large",
        ),
    ];
    let mut accepted = q.v2.accepts[0].clone();
    accepted.scheme = "upto".into();
    cases.push((
        "wrong scheme",
        wire::PAYMENT_SIGNATURE,
        v2_with(&q, accepted, good_payload()),
        402,
        "unsupported_scheme",
    ));
    let mut accepted = q.v2.accepts[0].clone();
    accepted.network = "eip155:8453".into();
    cases.push((
        "wrong network",
        wire::PAYMENT_SIGNATURE,
        v2_with(&q, accepted, good_payload()),
        402,
        "network_mismatch",
    ));
    let mut accepted = q.v2.accepts[0].clone();
    accepted.asset = x402::network::BASE_USDC;
    cases.push((
        "wrong asset",
        wire::PAYMENT_SIGNATURE,
        v2_with(&q, accepted, good_payload()),
        402,
        "asset_mismatch",
    ));
    let mut accepted = q.v2.accepts[0].clone();
    accepted.pay_to = buyer.address();
    let self_pay = sign(
        &stack,
        &buyer,
        authorization(buyer.address(), buyer.address(), price),
    );
    cases.push((
        "wrong payTo",
        wire::PAYMENT_SIGNATURE,
        v2_with(&q, accepted, self_pay),
        402,
        "pay_to_mismatch",
    ));
    let low = sign(
        &stack,
        &buyer,
        authorization(buyer.address(), to, price - 1),
    );
    cases.push((
        "amount below the price",
        wire::PAYMENT_SIGNATURE,
        v2_header(&q, low),
        402,
        "amount_mismatch",
    ));
    let mut a = authorization(buyer.address(), to, price);
    a.valid_before = U256::from(now() - 1);
    cases.push((
        "validBefore in the past",
        wire::PAYMENT_SIGNATURE,
        v2_header(&q, sign(&stack, &buyer, a)),
        402,
        "authorization_expired",
    ));
    let mut a = authorization(buyer.address(), to, price);
    a.valid_after = U256::from(now() + 3600);
    cases.push((
        "validAfter in the future",
        wire::PAYMENT_SIGNATURE,
        v2_header(&q, sign(&stack, &buyer, a)),
        402,
        "authorization_not_yet_valid",
    ));
    let thief = alloy::signers::local::PrivateKeySigner::random();
    let forged = sign(&stack, &thief, authorization(buyer.address(), to, price));
    cases.push((
        "signature by another key",
        wire::PAYMENT_SIGNATURE,
        v2_header(&q, forged),
        402,
        "invalid_signature",
    ));
    let mut tampered = sign(&stack, &buyer, authorization(buyer.address(), to, 1));
    tampered.authorization.value = U256::from(price);
    cases.push((
        "signature over different fields",
        wire::PAYMENT_SIGNATURE,
        v2_header(&q, tampered),
        402,
        "invalid_signature",
    ));
    // A payment made for the cheaper standard image, presented for premium.
    let cheap = quote(&url, &json!({"prompt": "something valuable"})).await;
    cases.push((
        "payment for a cheaper request",
        wire::PAYMENT_SIGNATURE,
        pay_v2(&stack, &buyer, &cheap),
        402,
        "amount_mismatch",
    ));
    let v1_cheap = pay_v1(&stack, &buyer, &cheap);
    cases.push((
        "v1 payment for a cheaper request",
        wire::X_PAYMENT,
        v1_cheap,
        402,
        "amount_mismatch",
    ));

    for (name, hname, value, status, code) in &cases {
        let r = send(&url, &body, (hname.clone(), value)).await;
        assert_eq!(r.status, *status, "{name}: {}", r.body);
        assert_eq!(r.body["code"], *code, "{name}: {}", r.body);
        assert!(
            r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: a reason: {}",
            r.body
        );
        assert!(!r.has_content(), "{name}: no content");
        assert!(r.settlement().is_none(), "{name}: no settlement header");
        if *status == 402 {
            assert!(
                r.headers.get(wire::PAYMENT_REQUIRED).is_some(),
                "{name}: requirements again"
            );
        }
    }
    assert_eq!(
        stack.usdc_balance(buyer.address()).await.unwrap(),
        before,
        "no hostile payment moved money"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_quote() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let url = format!("{}/generate_image", gw.url);
    let c = http();
    let cases = [
        (
            json!({"prompt": "x".repeat(x402::catalog::MAX_PROMPT_CHARS + 1)}),
            413,
            "prompt_too_long",
        ),
        (json!({"prompt": "   "}), 400, "empty_prompt"),
        (
            json!({"prompt": "x", "size": "9x9"}),
            400,
            "invalid_request",
        ),
        (
            json!({"prompt": "x", "price": "0.000001"}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["code"], code, "{j}");
    }
    let r = c
        .post(format!("{}/generate", gw.url))
        .json(&json!({"content": "x", "model": "gpt-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_settled_payment_cannot_buy_another_request() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let first = json!({"prompt": "first"});
    let q = quote(&url, &first).await;
    let header = pay_v2(&stack, &buyer, &q);
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    assert_eq!(
        send(&url, &first, (wire::PAYMENT_SIGNATURE, &header))
            .await
            .status,
        200
    );
    // Same price, different prompt: the payment is spent on "first".
    let r = send(
        &url,
        &json!({"prompt": "second"}),
        (wire::PAYMENT_SIGNATURE, &header),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["code"], "payment_reused");
    assert!(!r.has_content());
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        x402::Usdc::from_atomic(40_000)
    );
}

fn v2_with(
    q: &Quote,
    accepted: x402::wire::RequirementsV2,
    payload: x402::wire::ExactEvmPayload,
) -> String {
    wire::encode_header(&x402::wire::PaymentPayloadV2 {
        x402_version: 2,
        resource: Some(q.v2.resource.clone()),
        accepted,
        payload,
        extensions: None,
    })
}
