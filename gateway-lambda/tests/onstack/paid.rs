//! Paying both routes, in both protocol versions, and the idempotent retry.

use std::sync::atomic::Ordering;

use base64::Engine as _;
use serde_json::json;
use x402::{Usdc, wire};

use crate::support::*;

fn png_size(b64: &str) -> (u32, u32) {
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

#[tokio::test]
async fn generate_image_paid_with_v2_moves_exactly_the_price_once() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "a futuristic city at sunset", "quality": "premium"});

    let q = quote(&url, &body).await;
    assert_eq!(q.v2.accepts[0].amount, "60000", "premium 1024 is 0.06");
    assert_eq!(q.v1.accepts[0].max_amount_required, "60000");
    assert_eq!(q.v2.accepts[0].pay_to, stack.seller_wallet);
    assert_eq!(q.v1.accepts[0].resource, url);

    let start = stack.block_number().await.unwrap();
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let header = pay_v2(&stack, &buyer, &q);
    let paid = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(
        png_size(paid.body["imageBase64"].as_str().unwrap()),
        (1024, 1024)
    );
    assert_eq!(paid.body["price"], "0.06");
    let s = paid.settlement().expect("PAYMENT-RESPONSE");
    assert!(s.success);
    assert_eq!(s.network, "eip155:84532");
    assert_eq!(s.transaction.len(), 66);
    assert!(
        paid.body["transactionUrl"]
            .as_str()
            .unwrap()
            .ends_with(&s.transaction)
    );
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(60_000)
    );

    // The same payment again: the same content, no second charge.
    let again = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["imageBase64"], paid.body["imageBase64"]);
    assert_eq!(again.settlement().unwrap().transaction, s.transaction);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(60_000)
    );
    let end = stack.block_number().await.unwrap();
    assert_eq!(
        stack
            .count_transfers(buyer.address(), stack.seller_wallet, start..=end)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn generate_image_paid_with_v1_at_2048() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "a lighthouse", "size": "2048x2048", "seed": 42});
    let q = quote(&url, &body).await;
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let paid = send(&url, &body, (wire::X_PAYMENT, &pay_v1(&stack, &buyer, &q))).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["seed"], 42);
    assert_eq!(
        png_size(paid.body["imageBase64"].as_str().unwrap()),
        (2048, 2048)
    );
    let s = paid.settlement().expect("X-PAYMENT-RESPONSE");
    assert_eq!(s.network, "base-sepolia", "v1 names the network the v1 way");
    assert!(paid.headers.get(wire::X_PAYMENT_RESPONSE).is_some());
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(60_000)
    );
}

#[tokio::test]
async fn generate_text_is_priced_from_tokens_and_canvas_like_an_image() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let url = format!("{}/generate", gw.url);

    let body = json!({"content": "Explain x402 in one sentence.", "model": "nova-llm"});
    let q = quote(&url, &body).await;
    // 29 characters -> 8 tokens (local count); output 960 -> 2.4 + 0.0024 -> 2403 micro.
    let expected = gateway_lambda::pricing::text_price(8);
    assert_eq!(q.v2.accepts[0].amount, expected.atomic_string());
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let paid = send(
        &url,
        &body,
        (wire::PAYMENT_SIGNATURE, &pay_v2(&stack, &buyer, &q)),
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], "success");
    assert_eq!(paid.body["model"], "nova-llm");
    assert!(paid.body["content"].as_str().unwrap().contains("x402"));
    assert!(paid.body["transactionUrl"].as_str().unwrap().contains("0x"));
    assert_eq!(spent(&stack, buyer.address(), before).await, expected);

    let body = json!({"content": "a red bicycle", "model": "nova-canvas"});
    let q = quote(&url, &body).await;
    assert_eq!(q.v2.accepts[0].amount, "40000");
    let before = stack.usdc_balance(buyer.address()).await.unwrap();
    let paid = send(
        &url,
        &body,
        (wire::PAYMENT_SIGNATURE, &pay_v2(&stack, &buyer, &q)),
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["model"], "nova-canvas");
    png_size(paid.body["content"].as_str().unwrap());
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_payment_settle_once() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let (buyer, url, body, header, before) = purchase(&stack, &gw, "twins").await;
    let start = stack.block_number().await.unwrap();

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (url, body, header) = (url.clone(), body.clone(), header.clone());
            tokio::spawn(async move { send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await })
        })
        .collect();
    let mut delivered = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => delivered.push(r.body["imageBase64"].clone()),
            409 => assert_eq!(r.body["code"], "payment_in_progress", "{}", r.body),
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert!(!delivered.is_empty());
    assert!(
        delivered.iter().all(|d| *d == delivered[0]),
        "one content per payment"
    );
    // The losers retry with the same header and get the same content.
    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.body["imageBase64"], delivered[0]);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
    let end = stack.block_number().await.unwrap();
    assert_eq!(
        stack
            .count_transfers(buyer.address(), stack.seller_wallet, start..=end)
            .await
            .unwrap(),
        1
    );
}

/// One buyer running many requests at once (an agent serving many sessions
/// from one wallet): each payment is its own, so none may be turned away as
/// "in progress". The generator holds every request until all of them have
/// reserved and verified, so all 32 reservations are on the payer's record at
/// once, and each had to be added beside the others.
#[tokio::test]
async fn thirty_two_payments_from_one_payer_at_once_all_settle() {
    const N: usize = 32;
    const PRICE: u64 = 40_000;
    let stack = stack();
    let pay_to = crate::chain::fresh_payee();
    let generator = crate::chain::Counted::held();
    let gw = Gateway::paying(&stack, pay_to, generator.clone()).await;
    let buyer = stack.fresh_wallet(N as u64 * PRICE).await.unwrap();
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "one wallet, many sessions"});
    let q = quote(&url, &body).await;
    let headers = (0..N).map(|_| pay_v2(&stack, &buyer, &q)).collect();
    let (tasks, answered) = send_each(&url, &body, headers);
    crate::chain::until("every request answered or generating", || {
        answered.load(Ordering::SeqCst) + generator.calls() >= N
    })
    .await;
    let generating = generator.calls();
    generator.release();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(generating, N, "all reserved at once");
    assert_eq!(
        stack.usdc_balance(pay_to).await.unwrap(),
        Usdc::from_atomic(N as u64 * PRICE),
        "each payment settled once"
    );
    assert_eq!(
        stack.usdc_balance(buyer.address()).await.unwrap(),
        Usdc::ZERO
    );
}

#[tokio::test]
async fn pricing_health_and_cors_are_free() {
    let stack = stack();
    let gw = Gateway::start(&stack, Options::default()).await;
    let p: serde_json::Value = http()
        .get(format!("{}/pricing", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["generate_image"].as_array().unwrap().len(), 4);
    assert_eq!(p["payTo"], stack.seller_wallet.to_checksum(None));
    let h = http()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let pre = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/generate_image", gw.url),
        )
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "payment-signature,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    let allow = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allow.contains("payment-signature") && allow.contains("x-payment"),
        "{allow}"
    );
    let quote = http()
        .post(format!("{}/generate_image", gw.url))
        .header("origin", "http://example.test")
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    let expose = quote.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in ["payment-required", "payment-response", "x-payment-response"] {
        assert!(expose.contains(h), "{expose}");
    }
}
