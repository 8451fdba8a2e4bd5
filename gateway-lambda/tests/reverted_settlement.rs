//! A settlement that is mined and reverts. The facilitator verifies the
//! payment and sends `transferWithAuthorization`; with Anvil's automine off,
//! the payer drains its balance with a higher-tip transfer that lands in the
//! same block ahead of it, so the settlement transaction exists, is mined,
//! and reverts. The gateway must deliver nothing, charge nothing, and (issue
//! 12) keep a final record of the payment.
//!
//! Its own test binary: automine is off for the whole chain while it runs,
//! which would stall any other test's transactions in the same process.

#[path = "onstack/support.rs"]
#[allow(dead_code)]
mod support;

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use gateway_lambda::store::{FileStore, PaymentKey, PaymentRecord, PaymentStore};
use serde_json::{Value, json};
use support::*;
use testkit::facilitator::{Faulty, Route};
use tokio::sync::Mutex;
use x402::wire;

/// The tests here switch automine off for the whole chain: one at a time.
static CHAIN: Mutex<()> = Mutex::const_new(());

async fn rpc(stack: &testkit::Stack, method: &str, params: Value) -> Value {
    stack
        .provider()
        .raw_request::<_, Value>(method.to_owned().into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Polls Anvil's pool until `from` has a pending transaction; its hash.
async fn pending_from(stack: &testkit::Stack, from: Address) -> B256 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pool = rpc(stack, "txpool_content", json!([])).await;
        let mine = pool["pending"].as_object().and_then(|m| {
            m.iter()
                .find(|(a, _)| a.parse::<Address>().ok() == Some(from))
                .map(|(_, txs)| txs.clone())
        });
        if let Some(txs) = mine
            && let Some(tx) = txs.as_object().and_then(|t| t.values().next())
        {
            return tx["hash"].as_str().unwrap().parse().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the facilitator sent no settlement transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The payer moves all its USDC away with a tip far above the facilitator's.
async fn drain(stack: &testkit::Stack, payer: &PrivateKeySigner) {
    let p = ProviderBuilder::new()
        .wallet(payer.clone())
        .connect_http(stack.rpc_url.parse().unwrap());
    let balance = stack.usdc_balance(payer.address()).await.unwrap();
    let _pending = testkit::ITestUsdc::new(stack.usdc_contract, &p)
        .transfer(Address::repeat_byte(0x5a), balance.to_u256())
        .gas(100_000)
        .max_priority_fee_per_gas(500_000_000_000)
        .max_fee_per_gas(1_000_000_000_000)
        .send()
        .await
        .unwrap();
    pending_from(stack, payer.address()).await;
}

/// What the scenario left behind.
struct Reverted {
    response: Paid,
    settlement_tx: B256,
    record: Option<PaymentRecord>,
    buyer: Address,
    nonce: B256,
    seller_before: x402::Usdc,
    start: u64,
}

async fn mined_reverted_settlement(stack: &testkit::Stack) -> Reverted {
    let buyer = stack.fresh_wallet(1_000_000).await.unwrap();
    let dir = temp_dir();
    // The official facilitator; while its settlement transaction waits in
    // the pool, the payer's drain goes in with a higher tip and one block is
    // mined.
    let fac = Faulty::new(stack.facilitator());
    let settlement_tx = Arc::new(std::sync::Mutex::new(None::<B256>));
    let (chain, payer, seen) = (stack.clone(), buyer.clone(), settlement_tx.clone());
    fac.during(Route::Settle, move |_| {
        let (stack, payer, seen) = (chain.clone(), payer.clone(), seen.clone());
        async move {
            let tx = pending_from(&stack, stack.facilitator_address).await;
            *seen.lock().unwrap() = Some(tx);
            drain(&stack, &payer).await;
            rpc(&stack, "evm_mine", json!([])).await;
        }
    });
    let gw = Gateway::start(
        stack,
        Options {
            facilitator: Some(fac.clone()),
            dir: Some(dir.to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let url = format!("{}/generate_image", gw.url);
    let body = json!({"prompt": "paid with money that left before the block"});
    let q = quote(&url, &body).await;
    let header = pay_v2(stack, &buyer, &q);
    let payload: x402::wire::PaymentPayloadV2 = wire::decode_header(&header).unwrap();
    let nonce = payload.payload.authorization.nonce;
    let seller_before = stack.usdc_balance(stack.seller_wallet).await.unwrap();
    let start = stack.block_number().await.unwrap();

    rpc(stack, "evm_setAutomine", json!([false])).await;
    // In a task, so a panic still reaches the line that turns automine on.
    let (u, b, h) = (url.clone(), body.clone(), header.clone());
    let sent = tokio::spawn(async move { send(&u, &b, (wire::PAYMENT_SIGNATURE, &h)).await }).await;
    // Whatever happened, the chain mines on its own again.
    rpc(stack, "evm_setAutomine", json!([true])).await;
    let response = sent.expect("the paid request completes");

    let record = FileStore::new(dir.path())
        .unwrap()
        .get(&PaymentKey {
            payer: buyer.address(),
            nonce,
        })
        .await
        .unwrap();
    assert_eq!(
        fac.calls(Route::Settle),
        1,
        "the race ran beside one settlement"
    );
    let settlement_tx = settlement_tx
        .lock()
        .unwrap()
        .expect("a settlement transaction was sent");
    Reverted {
        response,
        settlement_tx,
        record,
        buyer: buyer.address(),
        nonce,
        seller_before,
        start,
    }
}

#[tokio::test]
async fn a_mined_reverted_settlement_delivers_nothing_and_charges_nothing() {
    let _one = CHAIN.lock().await;
    let stack = stack();
    let r = mined_reverted_settlement(&stack).await;

    // It was a real settlement transaction, mined, and it reverted.
    let receipt = stack
        .provider()
        .get_transaction_receipt(r.settlement_tx)
        .await
        .unwrap()
        .expect("the settlement transaction was mined");
    assert!(!receipt.status(), "{:#x} reverted", r.settlement_tx);

    assert!(
        !(200..300).contains(&r.response.status),
        "{}: {}",
        r.response.status,
        r.response.body
    );
    assert!(!r.response.has_content(), "nothing delivered");
    assert!(r.response.settlement().is_none(), "no settlement header");
    let end = stack.block_number().await.unwrap();
    assert_eq!(
        stack
            .count_transfers(r.buyer, stack.seller_wallet, r.start..=end)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        stack.usdc_balance(stack.seller_wallet).await.unwrap(),
        r.seller_before
    );
    assert!(
        !stack.authorization_state(r.buyer, r.nonce).await.unwrap(),
        "the nonce was not consumed by the reverted transaction"
    );
}

/// After a mined, reverted settlement that is final, the nonce is unused
/// and the authorization may still settle until its `validBefore`: the
/// gateway releases the payment's record (issue 12's seller rules), so the
/// same payment sent again is verified and settled afresh, never answered
/// from a record of a settlement that did not happen.
#[tokio::test]
async fn a_mined_reverted_settlement_releases_its_record() {
    let _one = CHAIN.lock().await;
    let stack = stack();
    let r = mined_reverted_settlement(&stack).await;
    assert!(
        r.record.is_none(),
        "released after the final revert: {:?}",
        r.record
    );
}
