//! `MemorySessionStore` against moto's AgentCore Memory (the local stack's
//! `AWS_ENDPOINT_URL`), through the real `aws-sdk-bedrockagentcore` client.

use agent::session::{Record, SessionStore, memory::MemorySessionStore};
use aws_sdk_bedrockagentcore::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    types::PayloadType,
};
use serde_json::json;

fn client(stack: &testkit::Stack) -> Client {
    let conf = aws_sdk_bedrockagentcore::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(stack.aws_region.clone()))
        .endpoint_url(&stack.aws_endpoint_url)
        .credentials_provider(Credentials::new(
            &stack.aws_access_key_id,
            &stack.aws_secret_access_key,
            None,
            None,
            "testkit",
        ))
        .build();
    Client::from_conf(conf)
}

fn msg(text: &str) -> Record {
    Record::Message {
        message: json!({"role": "user", "content": [{"text": text}]}),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn records_round_trip_in_order_with_strictly_increasing_timestamps() {
    let stack = testkit::Stack::load().expect("local stack");
    let memory = unique("mem");
    let store = MemorySessionStore::new(client(&stack), &memory);
    let (actor, session) = ("default", unique("s"));

    assert!(store.load(actor, &session).await.unwrap().is_empty());
    // Appends in quick succession land in the same millisecond: the store
    // must still give them strictly increasing timestamps.
    for i in 0..5 {
        store
            .append(actor, &session, &[msg(&format!("m{i}"))], &format!("k{i}"))
            .await
            .unwrap();
    }
    store
        .append(
            actor,
            &session,
            &[Record::Ledger {
                entry: json!({"spent": "0.04"}),
            }],
            "k5",
        )
        .await
        .unwrap();

    // A new store instance (as after a restart) reads the same state.
    let fresh = MemorySessionStore::new(client(&stack), &memory);
    let got = fresh.load(actor, &session).await.unwrap();
    let expected: Vec<Record> = (0..5)
        .map(|i| msg(&format!("m{i}")))
        .chain([Record::Ledger {
            entry: json!({"spent": "0.04"}),
        }])
        .collect();
    assert_eq!(got, expected);

    // What is actually stored: one blob event per append, timestamps strictly increasing.
    let raw = client(&stack)
        .list_events()
        .memory_id(&memory)
        .actor_id(actor)
        .session_id(&session)
        .include_payloads(true)
        .send()
        .await
        .unwrap();
    let mut ts: Vec<i64> = raw
        .events()
        .iter()
        .map(|e| e.event_timestamp().to_millis().unwrap())
        .collect();
    assert_eq!(ts.len(), 6);
    assert!(
        raw.events()
            .iter()
            .all(|e| matches!(e.payload(), [PayloadType::Blob(_)]))
    );
    ts.sort_unstable();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "timestamps not strictly increasing: {ts:?}"
    );

    // After a restart, the next append still sorts after everything stored.
    fresh
        .append(actor, &session, &[msg("after restart")], "k6")
        .await
        .unwrap();
    let got = MemorySessionStore::new(client(&stack), &memory)
        .load(actor, &session)
        .await
        .unwrap();
    assert_eq!(got.last(), Some(&msg("after restart")));
}

#[tokio::test]
async fn a_retried_append_is_visible_once() {
    let stack = testkit::Stack::load().expect("local stack");
    let store = MemorySessionStore::new(client(&stack), unique("mem"));
    let session = unique("s");
    for _ in 0..3 {
        store
            .append("a", &session, &[msg("paid once")], "same-key")
            .await
            .unwrap();
    }
    assert_eq!(
        store.load("a", &session).await.unwrap(),
        vec![msg("paid once")]
    );
}

#[tokio::test]
async fn sessions_and_actors_never_see_each_other() {
    let stack = testkit::Stack::load().expect("local stack");
    let store = MemorySessionStore::new(client(&stack), unique("mem"));
    let (s1, s2) = (unique("s"), unique("s"));
    store
        .append("alice", &s1, &[msg("alice s1")], "k")
        .await
        .unwrap();
    store
        .append("alice", &s2, &[msg("alice s2")], "k")
        .await
        .unwrap();
    store
        .append("bob", &s1, &[msg("bob s1")], "k")
        .await
        .unwrap();
    assert_eq!(
        store.load("alice", &s1).await.unwrap(),
        vec![msg("alice s1")]
    );
    assert_eq!(
        store.load("alice", &s2).await.unwrap(),
        vec![msg("alice s2")]
    );
    assert_eq!(store.load("bob", &s1).await.unwrap(), vec![msg("bob s1")]);
}

#[tokio::test]
async fn ids_outside_memorys_alphabet_are_mapped_not_rejected() {
    let stack = testkit::Stack::load().expect("local stack");
    let store = MemorySessionStore::new(client(&stack), unique("mem"));
    // The chat Lambda's client ids may contain '.' and ':'; the AgentCore
    // header may be up to 256 characters.
    let odd = format!("user:42.{}", "x".repeat(200));
    store
        .append("team.a", &odd, &[msg("odd")], "k")
        .await
        .unwrap();
    assert_eq!(store.load("team.a", &odd).await.unwrap(), vec![msg("odd")]);
    assert!(store.load("team.a", "user:42.y").await.unwrap().is_empty());
}
