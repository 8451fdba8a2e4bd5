//! The gateway's AWS stores against moto: the DynamoDB replay guard (one
//! conditional write per transition, one winner among concurrent claims)
//! and the S3 results, with the table schema the CDK stack creates; the
//! per-payer reservations in the same table (one winner when concurrent
//! requests compete for one balance).

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use gateway_lambda::{
    aws::{dynamo::DynamoPaymentStore, s3::S3ResultStore},
    reservation::{self, Reserved},
    store::{PaymentKey, PaymentRecord, PaymentState, PaymentStore, ReservationStore, ResultStore},
};
use x402::wire::SettleResponse;

fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("this test needs the local stack (moto)")
}

async fn aws() -> aws_config::SdkConfig {
    stack().aws_config().await
}

/// The payments table as `cdk/lib/gateway-stack.ts` defines it: key `pk` (S).
async fn table() -> String {
    stack().create_pk_table("payments").await.unwrap()
}

fn key() -> PaymentKey {
    PaymentKey {
        payer: Address::repeat_byte(0x3c),
        nonce: B256::from(rand::random::<[u8; 32]>()),
    }
}

fn rec(version: u64, state: PaymentState) -> PaymentRecord {
    PaymentRecord {
        fingerprint: "fp".into(),
        state,
        version,
        expires_at: 1_900_000_000,
    }
}

#[tokio::test]
async fn dynamodb_transitions_are_conditional_writes() {
    let conf = aws().await;
    let name = table().await;
    let store = DynamoPaymentStore::new(aws_sdk_dynamodb::Client::new(&conf), name.clone());
    let k = key();
    assert_eq!(store.get(&k).await.unwrap(), None);
    let claimed = rec(1, PaymentState::InFlight { lease_until: 10 });
    assert!(store.put_if(&k, None, &claimed).await.unwrap());
    assert!(
        !store.put_if(&k, None, &claimed).await.unwrap(),
        "claimed once"
    );
    let settled = rec(
        2,
        PaymentState::Settled {
            result_key: "r.json".into(),
            settlement: SettleResponse {
                success: true,
                error_reason: None,
                payer: None,
                transaction: format!("{:#x}", B256::repeat_byte(9)),
                network: "eip155:84532".into(),
            },
        },
    );
    assert!(
        !store.put_if(&k, Some(5), &settled).await.unwrap(),
        "stale version"
    );
    assert!(store.put_if(&k, Some(1), &settled).await.unwrap());
    assert_eq!(store.get(&k).await.unwrap(), Some(settled));
    assert!(!store.delete_if(&k, 1).await.unwrap());
    assert!(store.delete_if(&k, 2).await.unwrap());
    assert_eq!(store.get(&k).await.unwrap(), None);

    // The TTL attribute the CDK table expires items by.
    assert!(store.put_if(&k, None, &claimed).await.unwrap());
    let item = aws_sdk_dynamodb::Client::new(&conf)
        .get_item()
        .table_name(&name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(k.id()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item().unwrap()["expiresAt"].as_n().unwrap(),
        "1900000000"
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_payment_have_one_winner_in_dynamodb() {
    let conf = aws().await;
    let store = Arc::new(DynamoPaymentStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        table().await,
    ));
    let k = key();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_if(&k, None, &rec(1, PaymentState::InFlight { lease_until: 1 }))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn s3_keeps_results_by_key() {
    let conf = aws().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let bucket = stack().create_bucket("results").await.unwrap();
    let store = S3ResultStore::new(s3, bucket);
    assert_eq!(store.get("missing.json").await.unwrap(), None);
    store.put("k.json", b"{\"a\":1}").await.unwrap();
    assert_eq!(store.get("k.json").await.unwrap().unwrap(), b"{\"a\":1}");
}

/// What the flow does per request: read the payer's item, reserve against
/// the balance, conditional write; retried when another writer won.
async fn reserve_once(store: &DynamoPaymentStore, payer: Address, n: u8, balance: U256) -> bool {
    let entry = Reserved {
        nonce: B256::repeat_byte(n),
        amount: U256::from(40_000),
        until: 1_900_000_000,
    };
    loop {
        let cur = store.reservations(payer).await.unwrap();
        match reservation::reserve(&cur, entry.clone(), balance, 1_800_000_000) {
            Ok(None) => return true,
            Ok(Some(next)) => {
                if store
                    .put_reservations_if(payer, cur.version, &next)
                    .await
                    .unwrap()
                {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn reservations_in_dynamodb_let_one_balance_cover_one_payment() {
    let conf = aws().await;
    let name = table().await;
    let store = Arc::new(DynamoPaymentStore::new(
        aws_sdk_dynamodb::Client::new(&conf),
        name.clone(),
    ));
    let payer = Address::from(rand::random::<[u8; 20]>());
    assert_eq!(store.reservations(payer).await.unwrap().version, 0);

    // Eight requests at once against a balance for two.
    let balance = U256::from(80_000);
    let tasks: Vec<_> = (1..=8u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { reserve_once(&store, payer, n, balance).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 2, "exactly what the balance covers");
    let cur = store.reservations(payer).await.unwrap();
    assert_eq!(cur.entries.len(), 2);
    assert_eq!(cur.in_flight(1_800_000_000), balance);

    // A stale version loses; a release frees the headroom for another.
    let released = reservation::release(&cur, cur.entries[0].nonce, 1_800_000_000).unwrap();
    assert!(
        !store
            .put_reservations_if(payer, cur.version - 1, &released)
            .await
            .unwrap()
    );
    assert!(
        store
            .put_reservations_if(payer, cur.version, &released)
            .await
            .unwrap()
    );
    assert!(reserve_once(&store, payer, 9, balance).await);
    assert!(!reserve_once(&store, payer, 10, balance).await);

    // The item lives beside the payments and expires a day after its last entry.
    let item = aws_sdk_dynamodb::Client::new(&conf)
        .get_item()
        .table_name(&name)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("reservations-{payer:#x}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item().unwrap()["expiresAt"].as_n().unwrap().clone(),
        (1_900_000_000u64 + 24 * 3600).to_string()
    );
}
