//! A buyer who cheats, with nothing but the chain and HTTP (issue 12):
//! burning the nonce while the gateway works, spending one balance many
//! times at once, and a settlement left pending. Races are arranged on
//! Anvil, not hoped for: automine off, the settlement seen in the pool, the
//! competing transaction with a higher tip, one block mined.

use std::sync::{Arc, atomic::Ordering};

use alloy::primitives::{B256, U256};
use gateway_lambda::generate::Generator as _;
use serde_json::json;
use testkit::facilitator::{Fault, Faulty, Route};
use x402::{Usdc, wire};

use crate::{chain::*, support::*};

const PRICE: u64 = 40_000;

/// The burn lands in the same block as the facilitator's settlement, ahead
/// of it: the settlement reverts, the nonce reads "used".
async fn burnt_in_the_race(how: Burn) {
    let _mining = MINING.lock().await;
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let pay_to = fresh_payee();
    let generator = Arc::new(Counted::default());
    let gw = Gateway::paying(&stack, pay_to, generator.clone()).await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": format!("burnt by {how:?} in the race")});
    let q = quote(&url, &body).await;
    let auth = authorization(buyer.address(), pay_to, PRICE);
    let nonce = auth.nonce;
    let header = v2_header(&q, sign(&stack, &buyer, auth));
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    let mining = Automine::off(&stack).await;
    let (u, b, h) = (url.clone(), body.clone(), header.clone());
    let request = tokio::spawn(async move { send(&u, &b, (wire::PAYMENT_SIGNATURE, &h)).await });
    wait_in_pool(&stack, nonce, 1).await; // the settlement, pending
    burn(&stack, &buyer, nonce, how).await;
    wait_in_pool(&stack, nonce, 2).await;
    mining.mine_one(&stack).await;
    mining.resume(&stack).await;

    let r = request.await.unwrap();
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["code"], "payment_not_received", "{}", r.body);
    assert!(!r.has_content(), "nothing delivered");
    assert!(r.settlement().is_none());
    assert!(
        stack
            .authorization_state(buyer.address(), nonce)
            .await
            .unwrap()
    );
    assert_eq!(
        stack.usdc_balance(pay_to).await.unwrap(),
        Usdc::ZERO,
        "seller unpaid"
    );
    assert_eq!(stack.usdc_balance(buyer.address()).await.unwrap(), before);
    assert_eq!(generator.calls(), 1);

    // Final: the same payment is refused again, without generating.
    let again = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(again.status, 402, "{}", again.body);
    assert_eq!(again.body["code"], "payment_not_received");
    assert!(!again.has_content());
    assert_eq!(generator.calls(), 1);
    assert_eq!(stack.usdc_balance(pay_to).await.unwrap(), Usdc::ZERO);
}

#[tokio::test]
async fn a_nonce_canceled_ahead_of_the_settlement_buys_nothing() {
    burnt_in_the_race(Burn::Cancel).await;
}

#[tokio::test]
async fn a_same_nonce_transfer_to_itself_ahead_of_the_settlement_buys_nothing() {
    burnt_in_the_race(Burn::Transfer).await;
}

/// The burn is mined while the gateway generates (the generator is held), so
/// the facilitator names no transaction: the proof is looked up by the
/// `AuthorizationUsed` log, and that transaction did not pay us.
#[tokio::test]
async fn a_same_nonce_receive_while_generating_buys_nothing() {
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let pay_to = fresh_payee();
    let generator = Counted::held();
    let gw = Gateway::paying(&stack, pay_to, generator.clone()).await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "burnt by receiveWithAuthorization while generating"});
    let q = quote(&url, &body).await;
    let auth = authorization(buyer.address(), pay_to, PRICE);
    let nonce = auth.nonce;
    let header = v2_header(&q, sign(&stack, &buyer, auth));

    let (u, b, h) = (url.clone(), body.clone(), header.clone());
    let request = tokio::spawn(async move { send(&u, &b, (wire::PAYMENT_SIGNATURE, &h)).await });
    until("generation started", || generator.calls() == 1).await;
    let tx = burn(&stack, &buyer, nonce, Burn::Receive).await;
    assert!(
        stack.wait_for_receipt(tx).await.unwrap(),
        "the burn succeeds"
    );
    generator.release();

    let r = request.await.unwrap();
    assert_eq!(r.status, 402, "{}", r.body);
    assert_eq!(r.body["code"], "payment_not_received", "{}", r.body);
    assert!(!r.has_content());
    assert_eq!(stack.usdc_balance(pay_to).await.unwrap(), Usdc::ZERO);
    let again = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(again.body["code"], "payment_not_received", "{}", again.body);
    assert_eq!(generator.calls(), 1);
}

#[tokio::test]
async fn a_settled_payment_is_redeemed_after_its_authorization_expired() {
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let generator = Arc::new(Counted::default());
    let gw = Gateway::start(
        &stack,
        Options {
            generator: Some(generator.clone()),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "paid, answer lost, asked again later"});
    let q = quote(&url, &body).await;
    let mut auth = authorization(buyer.address(), stack.seller_wallet, PRICE);
    let valid_before = now() + 12;
    auth.valid_before = U256::from(valid_before);
    let header = v2_header(&q, sign(&stack, &buyer, auth));
    let before = stack.usdc_balance(buyer.address()).await.unwrap();

    let first = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let paid = stack.usdc_balance(buyer.address()).await.unwrap();
    assert_eq!(before.saturating_sub(paid), Usdc::from_atomic(PRICE));

    until("validBefore has passed", || now() > valid_before).await;
    let again = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.settlement().unwrap().transaction,
        first.settlement().unwrap().transaction,
        "the same transaction"
    );
    assert_eq!(again.body, first.body, "the same bytes");
    assert_eq!(generator.calls(), 1);
    assert_eq!(
        stack.usdc_balance(buyer.address()).await.unwrap(),
        paid,
        "no money moved"
    );
}

#[tokio::test]
async fn five_authorizations_against_a_balance_for_one_buy_one_generation() {
    let stack = stack();
    let buyer = stack.fresh_wallet(PRICE).await.unwrap();
    let pay_to = fresh_payee();
    let generator = Counted::held();
    let gw = Gateway::paying(&stack, pay_to, generator.clone()).await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "one balance, five buyers"});
    let q = quote(&url, &body).await;
    let headers = (0..5).map(|_| pay_v2(&stack, &buyer, &q)).collect();
    let (requests, answered) = send_each(&url, &body, headers);
    // All five are in: answered, or held in the generator.
    until("every request answered or generating", || {
        answered.load(Ordering::SeqCst) + generator.calls() >= 5
    })
    .await;
    assert_eq!(generator.calls(), 1, "one generation for one balance");
    generator.release();

    let mut statuses = Vec::new();
    for r in requests {
        let r = r.await.unwrap();
        if r.status == 402 {
            assert_eq!(r.body["code"], "insufficient_funds", "{}", r.body);
            assert!(!r.has_content());
        }
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 402, 402, 402, 402]);
    assert_eq!(generator.calls(), 1);
    assert_eq!(
        stack.usdc_balance(pay_to).await.unwrap(),
        Usdc::from_atomic(PRICE),
        "one settlement"
    );
    assert_eq!(
        stack.usdc_balance(buyer.address()).await.unwrap(),
        Usdc::ZERO
    );
}

#[tokio::test]
async fn a_pending_settlement_is_not_released_before_valid_before() {
    let _mining = MINING.lock().await;
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let pay_to = fresh_payee();
    let generator = Arc::new(Counted::default());
    // The real facilitator, except that its first `/settle` gives up once
    // the transaction is in the pool (its answer lost), and later ones fail
    // clearly without forwarding: the case where releasing on "facilitator
    // failed and the nonce is unused" would lose a payment still pending.
    let facilitator = Faulty::new(stack.facilitator());
    facilitator.next(Route::Settle, Fault::LoseAnswer);
    facilitator.set(
        Route::Settle,
        Fault::Refuse("invalid_transaction_state".into()),
    );
    let pool = stack.clone();
    facilitator.during(Route::Settle, move |p| {
        let stack = pool.clone();
        async move { wait_in_pool(&stack, p.exact().authorization.nonce, 1).await }
    });
    let gw = Gateway::start(
        &stack,
        Options {
            generator: Some(generator.clone()),
            facilitator: Some(facilitator.clone()),
            pay_to: Some(pay_to),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "a settlement stuck in the pool"});
    let q = quote(&url, &body).await;
    let auth = authorization(buyer.address(), pay_to, PRICE);
    let nonce: B256 = auth.nonce;
    let header = v2_header(&q, sign(&stack, &buyer, auth));

    let mining = Automine::off(&stack).await;
    let first = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(first.status, 502, "{}", first.body);
    assert_eq!(first.body["code"], "settlement_unknown");
    // A clear failure now, the nonce still unused, validBefore ahead: kept.
    let second = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(second.status, 402, "{}", second.body);
    assert_eq!(second.body["code"], "settlement_failed");
    assert!(!second.has_content());
    assert_eq!(facilitator.calls(Route::Settle), 2, "lost, then refused");
    assert_eq!(pending_with(&stack, nonce).await, 1, "still pending");
    assert!(
        !stack
            .authorization_state(buyer.address(), nonce)
            .await
            .unwrap()
    );

    // The pending settlement lands after all.
    mining.mine_one(&stack).await;
    mining.resume(&stack).await;
    let landed = facilitator.take_lost_settle().unwrap();
    let landed = landed.await.unwrap().unwrap();
    assert!(landed.success, "{landed:?}");
    assert_eq!(
        stack.usdc_balance(pay_to).await.unwrap(),
        Usdc::from_atomic(PRICE)
    );

    // The record was kept, so the paid content is still there.
    let third = send(&url, &body, (wire::PAYMENT_SIGNATURE, &header)).await;
    assert_eq!(third.status, 200, "{}", third.body);
    assert!(third.has_content());
    assert_eq!(third.settlement().unwrap().transaction, landed.transaction);
    assert_eq!(generator.calls(), 1);
    assert_eq!(
        stack.usdc_balance(pay_to).await.unwrap(),
        Usdc::from_atomic(PRICE),
        "paid once"
    );
}

#[tokio::test]
async fn text_is_generated_within_the_output_tokens_priced() {
    let stack = stack();
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let generator = Arc::new(Counted::default());
    let gw = Gateway::start(
        &stack,
        Options {
            generator: Some(generator.clone()),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate", gw.url);
    let content = "Explain the x402 protocol in one paragraph.";
    let body = json!({"model": "nova-llm", "content": content});
    let q = quote(&url, &body).await;
    let tokens = gateway_lambda::generate::LocalGenerator
        .count_input_tokens(content)
        .await
        .unwrap();
    assert_eq!(
        q.v2.accepts[0].amount,
        gateway_lambda::pricing::text_price(tokens).atomic_string()
    );
    let r = send(
        &url,
        &body,
        (wire::PAYMENT_SIGNATURE, &pay_v2(&stack, &buyer, &q)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        generator.max_output_tokens(),
        Some(gateway_lambda::pricing::text_output_estimate(tokens)),
        "the model's output limit is the output priced"
    );
}
