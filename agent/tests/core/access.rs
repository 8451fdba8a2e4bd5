//! Who may make the agent spend, on the local stack: daily caps across
//! sessions (DynamoDB on moto, and the local file store), reserved
//! atomically before signing and checked on chain; session ids that belong
//! to another user; requests from foreign web origins. Real gateway, real
//! facilitator, Anvil.

use crate::scripted::{ScriptedModel, Step};
use std::{sync::Arc, time::Duration};

use agent::{
    events::Output,
    model::offline::OfflineModel,
    server::{self, AppState, RequestLimits},
    session::SessionStore as _,
    turn::TurnRequest,
};
use alloy::primitives::Address;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
use tools::access::{
    AccessError, AccessStore, Claim, Reservation, dynamodb::DynamoAccessStore,
    local::LocalAccessStore,
};
use tools::policy::caps::{DailyCaps, utc_day};

use crate::{
    money::Money,
    support::{AfterQuote, Harness, usdc},
};

/// A new agent-state table on moto, with the schema `access/dynamodb.rs` documents.
async fn dynamo_store(stack: &testkit::Stack) -> DynamoAccessStore {
    let client = aws_sdk_dynamodb::Client::new(&stack.aws_config().await);
    let name = stack.create_pk_table("agent-state").await.unwrap();
    DynamoAccessStore::new(client, name)
}

const NOW: u64 = 1_800_000_000;

async fn store_contract(store: &dyn AccessStore) {
    let wallet = Address::repeat_byte(7);
    let user = format!("u-{}", uuid::Uuid::new_v4().simple());
    let day = utc_day(NOW);
    let caps = DailyCaps {
        per_user: usdc("0.10"),
        wallet: usdc("0.15"),
    };
    let res = |id: &str, u: &str, amount: &str| Reservation::new(u, id, wallet, NOW, usdc(amount));

    // Session owners: first come; the owner may come back; others may not.
    let session = format!("s-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(
        store.claim_session(&user, &session).await.unwrap(),
        Claim::Owned
    );
    assert_eq!(
        store.claim_session(&user, &session).await.unwrap(),
        Claim::Owned
    );
    assert_eq!(
        store.claim_session("mallory", &session).await.unwrap(),
        Claim::OtherUser
    );

    // Reservations: idempotent per request, exact at the cap.
    store
        .reserve(&res("r1", &user, "0.04"), &caps)
        .await
        .unwrap();
    store
        .reserve(&res("r1", &user, "0.04"), &caps)
        .await
        .unwrap();
    assert_eq!(
        store.committed(&user, wallet, &day).await.unwrap().user,
        usdc("0.04")
    );
    store
        .reserve(&res("r2", &user, "0.06"), &caps)
        .await
        .unwrap();
    let Err(AccessError::Cap(refusal)) = store.reserve(&res("r3", &user, "0.01"), &caps).await
    else {
        panic!("over the user cap")
    };
    assert_eq!(refusal.rule(), "user_daily_cap");
    assert_eq!(
        refusal.to_string(),
        "user daily cap: 0.01 USDC more would pass your daily limit of 0.10 USDC (0.10 USDC already committed today)"
    );
    // Released (the payment could not settle): the room is back, once.
    store.release(&res("r2", &user, "0.06")).await.unwrap();
    store.release(&res("r2", &user, "0.06")).await.unwrap();
    let c = store.committed(&user, wallet, &day).await.unwrap();
    assert_eq!((c.user, c.wallet), (usdc("0.04"), usdc("0.04")));

    // The wallet's cap binds across users.
    let other = format!("{user}-b");
    store
        .reserve(&res("r4", &other, "0.10"), &caps)
        .await
        .unwrap();
    let third = format!("{user}-c");
    let Err(AccessError::Cap(refusal)) = store.reserve(&res("r5", &third, "0.02"), &caps).await
    else {
        panic!("over the wallet cap")
    };
    assert_eq!(refusal.rule(), "wallet_daily_cap");
    assert_eq!(refusal.limit(), usdc("0.15"));

    // Twenty concurrent reservations of 0.01 against a fresh 0.10 cap.
    let racer = format!("{user}-race");
    let wallet2 = Address::repeat_byte(8);
    let caps = DailyCaps {
        per_user: usdc("0.10"),
        wallet: usdc("100"),
    };
    let results = futures::future::join_all((0..20).map(|i| {
        let r = Reservation::new(&racer, &format!("race{i}"), wallet2, NOW, usdc("0.01"));
        async move { store.reserve(&r, &caps).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 10, "{results:?}");
    assert_eq!(
        store.committed(&racer, wallet2, &day).await.unwrap().user,
        usdc("0.10")
    );
}

#[tokio::test]
async fn the_dynamodb_store_claims_reserves_and_releases_atomically_on_moto() {
    let stack = testkit::Stack::load().expect("the local stack (moto)");
    store_contract(&dynamo_store(&stack).await).await;
}

#[tokio::test]
async fn the_local_store_claims_reserves_and_releases_durably() {
    let dir = crate::support::temp_dir("access");
    store_contract(&LocalAccessStore::new(&dir)).await;
    // A restarted process reads the same counters.
    let again = LocalAccessStore::new(&dir);
    let c = again
        .committed("nobody", Address::repeat_byte(7), &utc_day(NOW))
        .await
        .unwrap();
    assert_eq!(c.wallet, usdc("0.14"));
}

const RACERS: usize = 5;

/// `RACERS` sessions buy one 0.04 image each at once under a 0.12 cap:
/// three pay, two are refused by `rule`, and the chain shows exactly 0.12.
async fn race(
    store: Arc<dyn AccessStore>,
    caps: DailyCaps,
    user: impl Fn(usize) -> String,
    rule: &str,
) {
    let m = Money::new(1_000_000).await;
    let mut opts = m.options();
    // every quote is held until all `RACERS` sessions have one: all
    // sessions are past quote before any reserves or signs
    let barrier = Arc::new(Barrier::new(RACERS));
    opts.seller = Some(Arc::new(AfterQuote::new(m.seller_client(), move |q| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            q
        }
    })));
    opts.access = Some(store.clone());
    opts.caps = caps;
    let h = Harness::new(Arc::new(OfflineModel), opts);
    let turns = futures::future::join_all((0..RACERS).map(|i| {
        h.run(TurnRequest {
            session_id: format!("race-{i}"),
            actor_id: user(i),
            prompt: format!("Generate an image of a racing car number {i}"),
            session_budget: None,
            approval: None,
        })
    }));
    let outs: Vec<Output> = tokio::time::timeout(Duration::from_secs(180), turns)
        .await
        .expect("all sessions reach the quote barrier")
        .into_iter()
        .map(|(o, _)| o.unwrap())
        .collect();
    let paid: usize = outs.iter().map(|o| o.payments.len()).sum();
    let refused: Vec<&str> = outs
        .iter()
        .flat_map(|o| o.refusals.iter().map(|r| r.rule.as_str()))
        .collect();
    assert_eq!(paid, 3, "{outs:#?}");
    assert_eq!(refused, [rule, rule], "{outs:#?}");
    assert_eq!(
        m.balance().await,
        usdc("0.88"),
        "exactly the cap left the wallet"
    );
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 3);
    let day = utc_day(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let c = store
        .committed(&user(0), m.buyer.address(), &day)
        .await
        .unwrap();
    assert_eq!(c.wallet, usdc("0.12"));
}

#[tokio::test]
async fn sessions_of_one_user_racing_the_daily_cap_spend_at_most_the_cap() {
    let stack = testkit::Stack::load().expect("the local stack");
    let user = format!("racer-{}", uuid::Uuid::new_v4().simple());
    let caps = DailyCaps {
        per_user: usdc("0.12"),
        wallet: usdc("1000"),
    };
    race(
        Arc::new(dynamo_store(&stack).await),
        caps,
        |_| user.clone(),
        "user_daily_cap",
    )
    .await;
}

#[tokio::test]
async fn users_racing_the_wallet_cap_spend_at_most_the_cap() {
    let caps = DailyCaps {
        per_user: usdc("1000"),
        wallet: usdc("0.12"),
    };
    let store = Arc::new(LocalAccessStore::new(crate::support::temp_dir(
        "wallet-race",
    )));
    race(store, caps, |i| format!("user-{i}"), "wallet_daily_cap").await;
}

/// The seller refuses a signed payment (0.01 USDC cannot pay a 0.04 image:
/// the facilitator says so at /verify), but the authorization stays valid
/// until its `validBefore`: whoever holds it could still settle it once the
/// balance allows. So it stays reserved against the daily caps; it is given
/// back only when the chain shows it unused and expired
/// (`declined::a_402_to_an_expired_unused_payment_is_refused_and_its_reservation_released`).
#[tokio::test]
async fn a_payment_the_seller_refuses_stays_reserved_while_it_can_settle() {
    let m = Money::new(10_000).await;
    let store = Arc::new(LocalAccessStore::new(crate::support::temp_dir("release")));
    let mut opts = m.options();
    opts.access = Some(store.clone());
    let h = Harness::new(Arc::new(OfflineModel), opts);
    let (out, _) = h.turn("s1", "Generate an image of a kite").await;
    assert!(out.unwrap().payments.is_empty());
    assert_eq!(
        m.seller.paid_requests(),
        1,
        "the payment was signed and sent"
    );
    assert_eq!(m.seller.settlements(), 0);
    let day = utc_day(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let c = store
        .committed("tester", m.buyer.address(), &day)
        .await
        .unwrap();
    assert_eq!((c.user, c.wallet), (usdc("0.04"), usdc("0.04")), "kept");
    assert_eq!(m.balance().await, usdc("0.01"));
}

// ------------------------------------------------------------- over HTTP

/// The real tool loop behind the real HTTP surface on 127.0.0.1, with the
/// agent's own origin on the port it got.
async fn serve_agent(h: Harness, access: Arc<dyn AccessStore>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = RequestLimits {
        max_prompt_chars: 1000,
        max_body_bytes: 64 * 1024,
        max_session_budget: usdc("10"),
        default_actor_id: "default".into(),
        port,
        allowed_origins: vec![],
    };
    let state = AppState::new(Arc::new(h.deps), limits).with_access(access);
    tokio::spawn(async move { axum::serve(listener, server::app(state)).await });
    format!("http://127.0.0.1:{port}")
}

const USER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";
const SESSION: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

#[tokio::test]
async fn another_users_session_id_gives_no_data_and_runs_no_turn() {
    let m = Money::new(1_000_000).await;
    let model = Arc::new(ScriptedModel::new([
        Step::tool("generate_image", json!({"prompt": "alice's secret garden"})),
        Step::text("Here is your garden."),
    ]));
    // One store for the tools' caps and the server's session owners.
    let access: Arc<dyn AccessStore> =
        Arc::new(LocalAccessStore::new(crate::support::temp_dir("owners")));
    let mut opts = m.options();
    opts.access = Some(access.clone());
    let h = Harness::new(model.clone(), opts);
    let sessions = h.store.clone();
    let url = serve_agent(h, access).await;
    let http = reqwest::Client::new();
    let session = format!("shared-{}", uuid::Uuid::new_v4());

    let alice: Value = http
        .post(format!("{url}/invocations"))
        .header(USER, "alice")
        .header(SESSION, &session)
        .json(&json!({"prompt": "Generate an image of a secret garden"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image_url = alice["output"]["images"]
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(Value::as_str)
        .expect("alice got her image")
        .to_owned();

    // Mallory presents alice's session id: over HTTP, in the header and in the body...
    for (header, body) in [
        (
            Some(session.as_str()),
            json!({"prompt": "analyze that image"}),
        ),
        (
            None,
            json!({"prompt": "show my images", "session_id": session}),
        ),
    ] {
        let mut req = http
            .post(format!("{url}/invocations"))
            .header(USER, "mallory");
        if let Some(s) = header {
            req = req.header(SESSION, s);
        }
        let res = req.json(&body).send().await.unwrap();
        assert_eq!(res.status(), 403);
        let text = res.text().await.unwrap();
        assert!(text.contains("belongs to another user"), "{text}");
        assert!(text.contains("request_id"), "{text}");
        assert!(
            !text.contains(&image_url) && !text.contains("garden"),
            "{text}"
        );
    }
    // ...and over the WebSocket: refused at the upgrade, or per message.
    let mut req = format!("{}/ws", url.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(USER, "mallory".parse().unwrap());
    req.headers_mut().insert(SESSION, session.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut req = format!("{}/ws", url.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(USER, "mallory".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tungstenite::Message::Text(
        json!({"input": {"prompt": "analyze that image"}, "session_id": session})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply: Value = match ws.next().await.unwrap().unwrap() {
        tungstenite::Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reply["type"], "error");
    assert!(
        reply["message"].as_str().unwrap().contains("another user"),
        "{reply}"
    );

    assert_eq!(model.calls(), 2, "only alice's turn called the model");
    assert_eq!(model.remaining(), 0);
    assert!(sessions.load("mallory", &session).await.unwrap().is_empty());
    assert_eq!(m.seller.paid_requests(), 1, "alice's image only");
}

#[tokio::test]
async fn cross_origin_requests_are_refused_with_nothing_run() {
    let m = Money::new(1_000_000).await;
    // One step, for the positive control at the end.
    let model = Arc::new(ScriptedModel::new([Step::text("hello from your own page")]));
    let access: Arc<dyn AccessStore> = Arc::new(LocalAccessStore::in_memory());
    let mut opts = m.options();
    opts.access = Some(access.clone());
    let h = Harness::new(model.clone(), opts);
    let url = serve_agent(h, access).await;
    let http = reqwest::Client::new();
    let buy = r#"{"prompt":"Generate an image of a yacht and pay for it"}"#;

    // What a hostile page can send without a CORS preflight: text/plain.
    for origin in [Some("http://evil.example"), None] {
        let mut req = http
            .post(format!("{url}/invocations"))
            .header("content-type", "text/plain;charset=UTF-8");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.body(buy).send().await.unwrap();
        let status = res.status().as_u16();
        assert!(status == 403 || status == 415, "{origin:?}: {status}");
        let v: Value = res.json().await.unwrap();
        assert!(v["request_id"].is_string(), "{v}");
    }
    // JSON from a foreign origin (e.g. after DNS rebinding) is refused too.
    let res = http
        .post(format!("{url}/invocations"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(buy)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // A WebSocket opened by a foreign page never opens.
    let ws_url = format!("{}/ws", url.replace("http", "ws"));
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(model.calls(), 0, "no turn, no model call");
    assert_eq!(m.seller.paid_requests(), 0);

    // The agent's own origin is served (the refusals above are not breakage).
    let mut req = ws_url.as_str().into_client_request().unwrap();
    let own = url.replace("127.0.0.1", "localhost");
    req.headers_mut().insert("origin", own.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tungstenite::Message::Text(
        json!({"prompt": "hi"}).to_string().into(),
    ))
    .await
    .unwrap();
    loop {
        let tungstenite::Message::Text(t) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "complete" {
            break;
        }
    }
    assert_eq!(model.calls(), 1);
}
