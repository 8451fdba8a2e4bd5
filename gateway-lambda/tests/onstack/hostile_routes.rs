//! The hostile-payment table against every paid route (`/generate_image`,
//! `/generate` with `nova-canvas` and with `nova-llm`), plus a payment made
//! for a shorter (cheaper) `/generate` prompt and an overpayment on each
//! route: every case a clear status and code, no content, no settlement, no
//! money moved.

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use base64::Engine as _;
use reqwest::header::HeaderName;
use serde_json::{Value, json};
use x402::wire;

use crate::support::*;

/// `(name, header name, header value, status, code)`.
type Case = (String, HeaderName, String, u16, &'static str);

fn v2_accepting(
    q: &Quote,
    accepted: wire::RequirementsV2,
    payload: wire::ExactEvmPayload,
) -> String {
    wire::encode_header(&wire::PaymentPayloadV2 {
        x402_version: 2,
        resource: Some(q.v2.resource.clone()),
        accepted,
        payload,
        extensions: None,
    })
}

/// The table for one route and body, with the quote it got.
fn cases(stack: &testkit::Stack, buyer: &PrivateKeySigner, q: &Quote) -> Vec<Case> {
    let price: u64 = q.v2.accepts[0].amount.parse().unwrap();
    let to = stack.seller_wallet;
    let me = buyer.address();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = || sign(stack, buyer, authorization(me, to, price));
    let with = |f: &dyn Fn(&mut wire::RequirementsV2)| {
        let mut a = q.v2.accepts[0].clone();
        f(&mut a);
        a
    };
    let signed = |f: &dyn Fn(&mut x402::eip3009::Authorization)| {
        let mut a = authorization(me, to, price);
        f(&mut a);
        v2_header(q, sign(stack, buyer, a))
    };
    let mut tampered = sign(stack, buyer, authorization(me, to, 1));
    tampered.authorization.value = U256::from(price);
    let thief = PrivateKeySigner::random();
    vec![
        (
            "not base64".into(),
            wire::PAYMENT_SIGNATURE,
            "%%%".into(),
            400,
            "invalid_base64",
        ),
        (
            "not JSON".into(),
            wire::PAYMENT_SIGNATURE,
            b64("hello"),
            400,
            "invalid_payload",
        ),
        (
            "wrong x402Version".into(),
            wire::PAYMENT_SIGNATURE,
            b64(r#"{"x402Version":7,"payload":{}}"#),
            400,
            "unsupported_version",
        ),
        (
            "oversized header".into(),
            wire::PAYMENT_SIGNATURE,
            "A".repeat(5000),
            431,
            "payment_header_too_large",
        ),
        (
            "wrong scheme".into(),
            wire::PAYMENT_SIGNATURE,
            v2_accepting(q, with(&|a| a.scheme = "upto".into()), good()),
            402,
            "unsupported_scheme",
        ),
        (
            "wrong network".into(),
            wire::PAYMENT_SIGNATURE,
            v2_accepting(q, with(&|a| a.network = "eip155:8453".into()), good()),
            402,
            "network_mismatch",
        ),
        (
            "wrong asset".into(),
            wire::PAYMENT_SIGNATURE,
            v2_accepting(q, with(&|a| a.asset = x402::network::BASE_USDC), good()),
            402,
            "asset_mismatch",
        ),
        (
            "wrong payTo".into(),
            wire::PAYMENT_SIGNATURE,
            v2_accepting(
                q,
                with(&|a| a.pay_to = me),
                sign(stack, buyer, authorization(me, me, price)),
            ),
            402,
            "pay_to_mismatch",
        ),
        (
            "authorization below the price".into(),
            wire::PAYMENT_SIGNATURE,
            signed(&|a| a.value = U256::from(price - 1)),
            402,
            "amount_mismatch",
        ),
        (
            "authorization above the price (overpayment)".into(),
            wire::PAYMENT_SIGNATURE,
            signed(&|a| a.value = U256::from(price + 1)),
            402,
            "amount_mismatch",
        ),
        (
            "accepted amount and authorization above the price (overpayment)".into(),
            wire::PAYMENT_SIGNATURE,
            v2_accepting(
                q,
                with(&|a| a.amount = (price * 2).to_string()),
                sign(stack, buyer, authorization(me, to, price * 2)),
            ),
            402,
            "amount_mismatch",
        ),
        (
            "validBefore in the past".into(),
            wire::PAYMENT_SIGNATURE,
            signed(&|a| a.valid_before = U256::from(now() - 1)),
            402,
            "authorization_expired",
        ),
        (
            "validAfter in the future".into(),
            wire::PAYMENT_SIGNATURE,
            signed(&|a| a.valid_after = U256::from(now() + 3600)),
            402,
            "authorization_not_yet_valid",
        ),
        (
            "signature by another key".into(),
            wire::PAYMENT_SIGNATURE,
            v2_header(q, sign(stack, &thief, authorization(me, to, price))),
            402,
            "invalid_signature",
        ),
        (
            "signature over different fields".into(),
            wire::PAYMENT_SIGNATURE,
            v2_header(q, tampered),
            402,
            "invalid_signature",
        ),
    ]
}

async fn refused_without_money_or_content(
    stack: &testkit::Stack,
    buyer: &PrivateKeySigner,
    route: &str,
    url: &str,
    body: &Value,
    cases: &[Case],
) {
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    for (name, hname, value, status, code) in cases {
        let name = format!("{route} {body}: {name}");
        let r = send(url, body, (hname.clone(), value)).await;
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
        "{route}: no hostile payment moved money"
    );
}

#[tokio::test]
async fn the_hostile_table_is_refused_on_every_paid_route() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    for (route, body) in [
        ("/generate_image", json!({"prompt": "a hostile harbour"})),
        (
            "/generate",
            json!({"content": "a hostile harbour", "model": "nova-canvas"}),
        ),
        (
            "/generate",
            json!({"content": "Explain a hostile harbour.", "model": "nova-llm"}),
        ),
    ] {
        let url = format!("{}{route}", gw.url);
        let q = quote(&url, &body).await;
        let table = cases(&stack, &buyer, &q);
        refused_without_money_or_content(&stack, &buyer, route, &url, &body, &table).await;
    }
}

#[tokio::test]
async fn a_payment_for_a_shorter_prompt_does_not_buy_a_longer_one() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate", gw.url);
    let short = json!({"content": "Summarise x402.", "model": "nova-llm"});
    let long = json!({"content": "Summarise x402. ".repeat(400), "model": "nova-llm"});
    let (qs, ql) = (quote(&url, &short).await, quote(&url, &long).await);
    let (ps, pl): (u64, u64) = (
        qs.v2.accepts[0].amount.parse().unwrap(),
        ql.v2.accepts[0].amount.parse().unwrap(),
    );
    assert!(ps < pl, "the longer prompt costs more: {ps} vs {pl}");
    let cheap_v2 = pay_v2(&stack, &buyer, &qs);
    let cheap_v1 = pay_v1(&stack, &buyer, &qs);
    let cases: Vec<Case> = vec![
        (
            "v2 payment quoted for the shorter prompt".into(),
            wire::PAYMENT_SIGNATURE,
            cheap_v2.clone(),
            402,
            "amount_mismatch",
        ),
        (
            "v1 payment quoted for the shorter prompt".into(),
            wire::X_PAYMENT,
            cheap_v1,
            402,
            "amount_mismatch",
        ),
    ];
    refused_without_money_or_content(&stack, &buyer, "/generate", &url, &long, &cases).await;
    // The refused payment still buys what it was made for, once.
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let r = send(&url, &short, (wire::PAYMENT_SIGNATURE, &cheap_v2)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        x402::Usdc::from_atomic(ps)
    );
}
