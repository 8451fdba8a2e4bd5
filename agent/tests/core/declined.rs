//! A seller that answers `402` to a payment the agent signed and sent. The
//! agent asks the chain before it calls that "refused, no money moved":
//! settled -> recorded as paid and the content recovered with the same
//! payment (or "paid, not delivered" said exactly); unused but still valid
//! -> pending; unused and expired -> refused. Real payments on Anvil through
//! the official facilitator; the lie is told by a middleware in front of
//! the real gateway.

use crate::scripted::{ScriptedModel, Step};
use std::sync::{Arc, Mutex};

use agent::{
    model::{ContentBlock, ModelRequest},
    session::{Record, SessionStore as _},
};
use alloy::{primitives::B256, providers::Provider as _};
use serde_json::{Value, json};
use tools::{
    access::{AccessStore as _, Reservation, local::LocalAccessStore},
    ledger::{self, LedgerEntry},
};
use tools::{
    client::{PaidRequest, X402Client},
    policy::caps::{DailyCaps, utc_day},
    policy::{Limits, PaymentPolicy},
    signer::LocalSigner,
};
use x402::{Usdc, catalog::ImageRequest};

use crate::{
    money::Money,
    seller::Lie,
    support::{Harness, usdc},
};

/// A model that calls `generate_image` with `args` once and keeps the result.
fn generate(args: Value) -> (Arc<ScriptedModel>, Arc<Mutex<Option<Value>>>) {
    let seen = Arc::new(Mutex::new(None));
    let keep = seen.clone();
    let model = Arc::new(ScriptedModel::new([
        Step::tool("generate_image", args),
        Step::dynamic(move |req: &ModelRequest| {
            let ContentBlock::ToolResult(r) = req.messages.last().unwrap().content.last().unwrap()
            else {
                panic!("expected a tool result")
            };
            *keep.lock().unwrap() = Some(serde_json::to_value(r).unwrap());
            Step::text("done")
        }),
    ]));
    (model, seen)
}

fn result(seen: &Mutex<Option<Value>>) -> Value {
    seen.lock().unwrap().clone().expect("the tool ran")
}

fn error_text(r: &Value) -> String {
    assert_eq!(r["status"], "error", "{r}");
    r["content"][0]["text"].as_str().unwrap().to_owned()
}

fn types(ledger: &[Value]) -> Vec<&str> {
    ledger.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_402_after_settling_is_checked_on_chain_and_the_content_recovered() {
    let m = Money::new(1_000_000).await;
    m.seller.lie(Lie::RefuseAfterSettling, 1);
    let (model, seen) = generate(json!({"prompt": "a harbour at dawn"}));
    let h = Harness::new(model, m.options());
    h.turn("lied-once", "Generate a harbour").await.0.unwrap();

    let r = result(&seen);
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["content"][0]["json"]["status"], "generated", "{r}");
    let ledger = h.ledger("lied-once").await;
    assert_eq!(
        types(&ledger),
        ["quoted", "prepared", "paid", "stored"],
        "paid per the chain, then delivered; never rejected"
    );
    assert_eq!(m.seller.paid_requests(), 2, "the same payment re-sent once");
    assert_eq!(m.seller.settlements(), 1);
    assert_eq!(m.balance().await, usdc("0.96"), "paid once");
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
}

#[tokio::test]
async fn a_settled_payment_the_seller_keeps_refusing_is_recorded_paid_not_delivered() {
    let m = Money::new(1_000_000).await;
    m.seller.lie(Lie::RefuseAfterSettling, u32::MAX);
    let (model, seen) = generate(json!({"prompt": "a lying seller"}));
    let h = Harness::new(model, m.options());
    h.turn("lied-always", "Generate it").await.0.unwrap();

    let ledger = h.ledger("lied-always").await;
    assert_eq!(types(&ledger), ["quoted", "prepared", "paid"], "{ledger:?}");
    let tx = ledger[2]["receipt"]["transaction"].as_str().unwrap();
    let receipt = m
        .stack
        .provider()
        .get_transaction_receipt(tx.parse::<B256>().unwrap())
        .await
        .unwrap()
        .expect("the recorded transaction is on chain");
    assert!(receipt.status());
    let text = error_text(&result(&seen));
    assert!(text.contains("is paid (0.04 USDC"), "{text}");
    assert!(text.contains(tx), "names the transaction: {text}");
    assert!(text.contains("content not received"), "{text}");
    assert!(!text.contains("no money moved"), "{text}");
    assert_eq!(m.seller.paid_requests(), 2, "recovery tried once");
    assert_eq!(m.balance().await, usdc("0.96"));
}

#[tokio::test]
async fn a_402_to_an_unexpired_unused_payment_stays_pending_and_the_same_payment_lands() {
    let m = Money::new(1_000_000).await;
    m.seller.lie(Lie::RefuseUnsettled, 1);
    let args = json!({"prompt": "a pending lighthouse"});
    let (model, seen) = generate(args.clone());
    let h = Harness::new(model, m.options());
    h.turn("pending", "Generate a lighthouse").await.0.unwrap();

    let text = error_text(&result(&seen));
    assert!(text.contains("pending, not refused"), "{text}");
    assert_eq!(
        types(&h.ledger("pending").await),
        ["quoted", "prepared"],
        "not recorded as rejected while it may still settle"
    );
    assert_eq!(m.balance().await, usdc("1.00"), "nothing settled yet");

    // Asked again: the same signed payment goes out, and this time lands.
    let (model, seen) = generate(args);
    let h = Harness::in_dir(model, m.options(), h.dir.clone());
    h.turn("pending", "Try again").await.0.unwrap();
    let r = result(&seen);
    assert_eq!(r["content"][0]["json"]["status"], "generated", "{r}");
    let ledger = h.ledger("pending").await;
    assert_eq!(types(&ledger), ["quoted", "prepared", "paid", "stored"]);
    assert_eq!(m.seller.paid_requests(), 2);
    assert_eq!(m.balance().await, usdc("0.96"), "one payment, paid once");
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
}

#[tokio::test]
async fn a_402_to_an_expired_unused_payment_is_refused_and_its_reservation_released() {
    let m = Money::new(1_000_000).await;
    let h = Harness::new(
        generate(json!({"prompt": "an expired authorization"})).0,
        m.options(),
    );
    // A payment signed 400 s ago for the gateway's 300 s window: it expired
    // 100 s ago and was never sent, so its nonce is unused.
    let client = X402Client::new(
        Arc::new(LocalSigner::new(m.buyer.clone())),
        PaymentPolicy::new(
            m.stack.network,
            m.stack.usdc_contract,
            vec![m.stack.seller_wallet],
        ),
    );
    let req = ImageRequest {
        prompt: "an expired authorization".into(),
        size: Default::default(),
        quality: Default::default(),
        seed: None,
    };
    let url = format!("{}/generate_image", m.seller.base_url());
    let quote = client
        .quote(&PaidRequest::post_json(url, &req))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payment = client
        .prepare_at(&quote, &Limits::single(quote.amount), now - 400)
        .await
        .unwrap();
    assert!(payment.valid_before < now);
    let amount = payment.amount;
    let session = "expired";
    let request_id = ledger::request_id(session, &req);
    for entry in [
        LedgerEntry::Quoted {
            request_id: request_id.clone(),
            turn_id: "t0".into(),
            request: req.clone(),
            quote: Box::new(quote),
            expires_at: now + 300,
        },
        LedgerEntry::Prepared {
            request_id: request_id.clone(),
            payment,
        },
    ] {
        h.store
            .append(
                "tester",
                session,
                &[Record::Ledger {
                    entry: serde_json::to_value(&entry).unwrap(),
                }],
                &entry.idempotency_key(),
            )
            .await
            .unwrap();
    }
    // The chain's clock decides: a fresh block carries the current time.
    let _: Value = m
        .stack
        .provider()
        .raw_request("evm_mine".into(), ())
        .await
        .unwrap();

    // Reserved against the daily caps when it was signed.
    let access = Arc::new(LocalAccessStore::new(crate::support::temp_dir(
        "expired-caps",
    )));
    access
        .reserve(
            &Reservation::new("tester", &request_id, m.buyer.address(), now, amount),
            &DailyCaps {
                per_user: usdc("10"),
                wallet: usdc("100"),
            },
        )
        .await
        .unwrap();

    let (model, seen) = generate(json!({"prompt": "an expired authorization"}));
    let mut opts = m.options();
    opts.access = Some(access.clone());
    let h = Harness::in_dir(model, opts, h.dir.clone());
    h.turn(session, "Generate it").await.0.unwrap();
    let text = error_text(&result(&seen));
    assert!(text.contains("no money moved"), "{text}");
    let ledger = h.ledger(session).await;
    assert_eq!(types(&ledger), ["quoted", "prepared", "rejected"]);
    let reason = ledger[2]["reason"].as_str().unwrap();
    assert!(reason.contains("unused and expired"), "{reason}");
    assert_eq!(m.seller.paid_requests(), 1, "the stored payment was sent");
    assert_eq!(m.balance().await, usdc("1.00"));
    // It can never settle now: its reservation is given back.
    let c = access
        .committed("tester", m.buyer.address(), &utc_day(now))
        .await
        .unwrap();
    assert_eq!((c.user, c.wallet), (Usdc::ZERO, Usdc::ZERO), "released");
}
