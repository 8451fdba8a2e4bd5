//! The web chat page in a real headless Chromium (Debian's `chromium`,
//! driven by playwright-core from `agent/web/tests/page.mjs`), against a real
//! `agent` process on the local stack: the real gateway, facilitator, Anvil
//! and moto S3. The chain is the judge of every payment. Also the WebSocket
//! messages the original sample's frontend relies on, from the same agent.
//!
//! Needs the stack (`cargo xtask stack`) and `cargo xtask setup` (chromium,
//! playwright-core). Screenshots: `target/web-artifacts/`.

mod support;

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use support::{Agent, WALLET_USDC_ATOMIC, run_page};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
use x402::Usdc;

fn usdc(s: &str) -> Usdc {
    s.parse().unwrap()
}

/// The original sample's conversation in the page: wallet details, then a
/// paid image rendered at 1024 px with its transaction link; that
/// transaction is the one transfer on chain.
#[tokio::test]
async fn the_sample_conversation_shows_the_paid_image_and_its_transaction() {
    let mut agent = Agent::start("conversation", "0.10").await;
    let r = run_page(&mut agent, "conversation").await;
    let tx: alloy::primitives::B256 = r["tx"].as_str().unwrap().parse().unwrap();
    assert!(
        agent.stack.wait_for_receipt(tx).await.unwrap(),
        "the linked transaction succeeded on chain"
    );
    assert_eq!(agent.paid_to_seller().await, (1, usdc("0.04")));
    assert_eq!(
        agent.balance().await,
        Usdc::from_atomic(WALLET_USDC_ATOMIC - 40_000)
    );
    // The page's wallet line read the chain after the payment.
    assert_eq!(r["wallet_usdc"], "4.96");
}

/// A session budget below the price: the page shows the refusal with its
/// rule, and nothing moves on chain.
#[tokio::test]
async fn over_budget_shows_the_refusal_and_pays_nothing() {
    let mut agent = Agent::start("over-budget", "0.10").await;
    let r = run_page(&mut agent, "over_budget").await;
    assert!(r["refusal"].as_str().unwrap().contains("budget"));
    assert_eq!(agent.paid_to_seller().await, (0, Usdc::ZERO));
    assert_eq!(agent.balance().await, Usdc::from_atomic(WALLET_USDC_ATOMIC));
}

/// The agent is SIGKILLed and restarted under the open page: the page says
/// so, reconnects by itself and the session goes on (its spend carries over;
/// the next image is paid once).
#[tokio::test]
async fn the_page_reconnects_after_the_agent_restarts_and_continues_the_session() {
    let mut agent = Agent::start("restart", "0.10").await;
    let r = run_page(&mut agent, "restart").await;
    let txs = r["txs"].as_array().unwrap();
    assert_eq!(txs.len(), 2);
    assert_ne!(txs[0], txs[1]);
    assert_eq!(agent.paid_to_seller().await, (2, usdc("0.08")));
}

/// Above the auto-approve limit the page shows an approval card bound to the
/// quote; Approve pays exactly once.
#[tokio::test]
async fn approve_above_auto_approve_pays_once() {
    let mut agent = Agent::start("approve", "0.01").await;
    let r = run_page(&mut agent, "approve").await;
    let tx: alloy::primitives::B256 = r["tx"].as_str().unwrap().parse().unwrap();
    assert!(agent.stack.wait_for_receipt(tx).await.unwrap());
    assert_eq!(agent.paid_to_seller().await, (1, usdc("0.04")));
}

/// Decline pays nothing.
#[tokio::test]
async fn decline_above_auto_approve_pays_nothing() {
    let mut agent = Agent::start("decline", "0.01").await;
    run_page(&mut agent, "decline").await;
    assert_eq!(agent.paid_to_seller().await, (0, Usdc::ZERO));
    assert_eq!(agent.balance().await, Usdc::from_atomic(WALLET_USDC_ATOMIC));
}

// ---------------------------------------------------------------- the sample's /ws contract

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(120), ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .unwrap();
        if let tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Sends a prompt and returns every message up to the turn's `complete`/`error`.
async fn turn(ws: &mut Ws, body: Value) -> Vec<Value> {
    ws.send(tungstenite::Message::text(body.to_string()))
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let v = next_json(ws).await;
        let done = v["type"] == "complete" || v["type"] == "error";
        got.push(v);
        if done {
            return got;
        }
    }
}

/// What the original sample's React app reads from `/ws`: `complete` with
/// `response.output.message.content[0].text` and `response.output.images`
/// (id -> URL it renders), `error` with `message`. Here from the real agent
/// with a real payment, and the image URL is one a browser can load.
#[tokio::test]
async fn the_samples_websocket_messages_keep_their_shape() {
    let agent = Agent::start("ws-contract", "0.10").await;
    let ws_url = agent.url.replace("http://", "ws://") + "/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.into_client_request().unwrap())
        .await
        .unwrap();
    let session = format!("ws-contract-{}", uuid::Uuid::new_v4());

    let msgs = turn(
        &mut ws,
        json!({"input": {"prompt": "Generate an image of a futuristic city at sunset"}, "session_id": session}),
    )
    .await;
    let complete = msgs.last().unwrap();
    assert_eq!(complete["type"], "complete", "{complete}");
    assert_eq!(complete["sessionId"], session.as_str());
    let output = &complete["response"]["output"];
    let text = output["message"]["content"][0]["text"].as_str().unwrap();
    assert!(!text.is_empty());
    let images = output["images"].as_object().unwrap();
    assert_eq!(images.len(), 1, "{output}");
    let url = images.values().next().unwrap().as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let png = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1024, "the IHDR width of the image behind the URL");
    assert!(
        msgs.iter().any(|m| m["type"] == "image" && m["url"] == url),
        "the image event carries the same URL"
    );
    assert_eq!(agent.paid_to_seller().await, (1, usdc("0.04")));

    // A message the server cannot use: `error` with `message`, socket open.
    let msgs = turn(&mut ws, json!({"input": {}})).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["type"], "error");
    assert!(!msgs[0]["message"].as_str().unwrap().is_empty());
    let again = turn(
        &mut ws,
        json!({"input": {"prompt": "What are my wallet details?"}, "session_id": session}),
    )
    .await;
    assert_eq!(again.last().unwrap()["type"], "complete");
}

/// The page and its status endpoint, served only when enabled, with a CSP
/// that lets nothing but the page's own files run.
#[tokio::test]
async fn the_page_is_served_with_its_policy_and_the_status_reads_the_ledger() {
    let agent = Agent::start("serve", "0.10").await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/", agent.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    let js = http
        .get(format!("{}/assets/app.js", agent.url))
        .send()
        .await
        .unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let status: Value = http
        .get(format!(
            "{}/api/status?session_id=fresh-session&budget_usdc=2.5",
            agent.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["spent"], "0.00");
    assert_eq!(status["budget"], "2.50");
    assert_eq!(status["remaining"], "2.50");
    assert_eq!(status["auto_approve_max"], "0.10");
    assert_eq!(status["wallet"]["usdc"], "5.00");
    for bad in [
        "session_id=../x",
        "session_id=s&budget_usdc=99",
        "session_id=s&budget_usdc=-1",
    ] {
        let r = http
            .get(format!("{}/api/status?{bad}", agent.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}
