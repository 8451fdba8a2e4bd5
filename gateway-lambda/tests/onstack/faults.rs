//! Faults around the paid flow. In each, the buyer's USDC and the content it
//! received agree: paid if and only if delivered.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use gateway_lambda::generate::{
    GeneratedImage, GenerationError, Generator, ImageJob, LocalGenerator,
};
use serde_json::json;
use testkit::facilitator::{Fault, Faulty, Route};
use x402::{Usdc, facilitator::HttpFacilitator, wire};

use crate::support::*;

#[tokio::test]
async fn facilitator_down_means_no_charge_and_the_payment_stays_usable() {
    let stack = stack();
    let dir = temp_dir();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = Arc::new(HttpFacilitator::new(
        format!("http://{closed}"),
        Duration::from_secs(2),
    ));
    let gw = Gateway::start(
        &stack,
        Options {
            facilitator: Some(down),
            dir: Some(dir.to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let (buyer, url, body, header, before) =
        purchase(&stack, &gw, "while the facilitator is down").await;

    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["code"], "facilitator_unavailable");
    assert!(!r.has_content());
    assert_eq!(stack.usdc_balance(buyer.address()).await.unwrap(), before);

    // Facilitator back: the same signed payment buys the content once.
    let gw = Gateway::start(
        &stack,
        Options {
            dir: Some(dir.to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
}

#[tokio::test]
async fn settle_failing_is_checked_on_chain_and_retried_without_double_charge() {
    let stack = stack();
    // settle fails with a 500 without forwarding: nothing happened.
    let f = Faulty::new(stack.facilitator());
    f.set(Route::Settle, Fault::Status(500));
    let gw = Gateway::start(
        &stack,
        Options {
            facilitator: Some(f.clone()),
            ..Options::default()
        },
    )
    .await;
    let (buyer, url, body, header, before) =
        purchase(&stack, &gw, "settle fails the first time").await;

    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["code"], "settlement_unknown");
    assert!(!r.has_content(), "content is released only when paid");
    assert_eq!(stack.usdc_balance(buyer.address()).await.unwrap(), before);
    assert_eq!(f.calls(Route::Settle), 1, "the injected failure was hit");

    f.set(Route::Settle, Fault::Pass);
    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.has_content());
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
    let r2 = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r2.body["imageBase64"], r.body["imageBase64"]);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
}

/// Generation that fails while `fail` is set, or drains the buyer's USDC
/// (a real transfer on chain) before generating when `drain` is set.
struct Gen {
    fail: AtomicBool,
    drain: Mutex<Option<(testkit::Stack, alloy::signers::local::PrivateKeySigner)>>,
}

#[async_trait]
impl Generator for Gen {
    async fn image(&self, job: &ImageJob) -> Result<GeneratedImage, GenerationError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(GenerationError::Unavailable("injected model outage".into()));
        }
        let drain = self.drain.lock().unwrap().take();
        if let Some((stack, buyer)) = drain {
            move_all_usdc(&stack, &buyer).await;
        }
        LocalGenerator.image(job).await
    }
    async fn text(&self, p: &str) -> Result<String, GenerationError> {
        LocalGenerator.text(p).await
    }
    async fn count_input_tokens(&self, p: &str) -> Result<u64, GenerationError> {
        LocalGenerator.count_input_tokens(p).await
    }
    fn name(&self) -> &'static str {
        "test"
    }
}

async fn move_all_usdc(stack: &testkit::Stack, from: &alloy::signers::local::PrivateKeySigner) {
    use alloy::providers::{Provider, ProviderBuilder};
    let p = ProviderBuilder::new()
        .wallet(from.clone())
        .connect_http(stack.rpc_url.parse().unwrap());
    let bal = stack.usdc_balance(from.address()).await.unwrap();
    let sink = alloy::primitives::Address::repeat_byte(0x5a);
    let tx = testkit::ITestUsdc::new(stack.usdc_contract, &p)
        .transfer(sink, bal.to_u256())
        .send()
        .await
        .unwrap();
    tx.get_receipt().await.unwrap();
    let _ = p.get_block_number().await;
}

#[tokio::test]
async fn generation_failing_after_verify_charges_nothing_and_the_payment_can_be_reused() {
    let stack = stack();
    let g = Arc::new(Gen {
        fail: AtomicBool::new(true),
        drain: Mutex::new(None),
    });
    let gw = Gateway::start(
        &stack,
        Options {
            generator: Some(g.clone()),
            ..Options::default()
        },
    )
    .await;
    let (buyer, url, body, header, before) = purchase(&stack, &gw, "the model is down").await;

    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.body["code"], "generation_failed");
    assert!(r.body["error"].as_str().unwrap().contains("not charged"));
    assert_eq!(stack.usdc_balance(buyer.address()).await.unwrap(), before);

    g.fail.store(false, Ordering::SeqCst);
    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );
}

#[tokio::test]
async fn a_settlement_that_fails_on_chain_releases_no_content() {
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let g = Arc::new(Gen {
        fail: AtomicBool::new(false),
        drain: Mutex::new(Some((stack.clone(), buyer.clone()))),
    });
    let gw = Gateway::start(
        &stack,
        Options {
            generator: Some(g),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "the buyer empties its wallet mid-request"});
    let q = quote(&url, &body).await;
    let header = pay_v2(&stack, &buyer, &q);
    let r = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["code"], "settlement_failed");
    assert!(!r.has_content());
    assert!(r.settlement().is_none());
    assert_eq!(
        stack.usdc_balance(buyer.address()).await.unwrap(),
        Usdc::ZERO
    );
}

#[tokio::test]
async fn a_crash_between_settlement_and_response_is_recovered_by_a_retry() {
    let stack = stack();
    let dir = temp_dir();
    // settle is forwarded and settles on chain, then never answers (the
    // process dies).
    let f = Faulty::new(stack.facilitator());
    f.set(Route::Settle, Fault::Hang);
    let gw = Gateway::start(
        &stack,
        Options {
            facilitator: Some(f.clone()),
            dir: Some(dir.to_path_buf()),
            lease: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let (buyer, url, body, header, before) =
        purchase(&stack, &gw, "paid, then the lights went out").await;

    let (u, b, h) = (url.clone(), body.clone(), header.clone());
    let first = tokio::spawn(async move { send(&u, &b, (wire::PAYMENT_SIGNATURE, &h)).await });
    f.answered(Route::Settle, 1).await;
    assert_eq!(f.settled_transactions().len(), 1, "settled, answer lost");
    // Money moved; the gateway "dies" before answering.
    first.abort();
    drop(gw);
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000)
    );

    // A new gateway over the same state; the buyer retries the same payment.
    let gw = Gateway::start(
        &stack,
        Options {
            dir: Some(dir.to_path_buf()),
            lease: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    // The dead request's lease (1 s) must run out first.
    let r = send_past_lease(&url, &body, &header).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.has_content(), "paid content is never lost");
    let s = r.settlement().unwrap();
    assert_eq!(s.transaction.len(), 66, "the transaction found on chain");
    assert_eq!(
        spent(&stack, buyer.address(), before).await,
        Usdc::from_atomic(40_000),
        "once"
    );
}
