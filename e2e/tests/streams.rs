//! The stack's own agent process (the binary as `cargo xtask stack` runs it:
//! offline model, local key, the stack's gateway) streaming a paid image
//! over SSE (`POST /invocations`, `Accept: text/event-stream`) and over the
//! `/ws` WebSocket. The events must come in order (tool start, payment,
//! image, completion) and agree with independent truth: the payee is the
//! seller configured in `stack.env`, the transaction is on chain with one
//! `Transfer` of the price from the stack's buyer to that seller, its
//! `AuthorizationUsed` nonce is new, and the image is a PNG (behind the
//! presigned moto S3 URL the stack's agent answers with, or on disk).

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    sol_types::SolEvent,
};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use x402::eip3009::IUsdc;

const PRICE: u64 = 40_000;
const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("the local stack must be up (cargo xtask stack)")
}

fn session(kind: &str) -> String {
    format!("streams-{kind}-{:032x}", rand::random::<u128>())
}

fn prompt(kind: &str) -> String {
    format!(
        "Generate an image of a lighthouse streamed over {kind} {:x}",
        rand::random::<u32>()
    )
}

/// The turn's events over SSE, in the order received.
async fn over_sse(agent: &str, session: &str, prompt: &str) -> Vec<Value> {
    let resp = reqwest::Client::new()
        .post(format!("{agent}/invocations"))
        .header("accept", "text/event-stream")
        .header(SESSION_HEADER, session)
        .json(&json!({"input": {"prompt": prompt}}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    // The stream ends when the turn does; the order of `data:` lines is the
    // order of the events.
    let text = resp.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect()
}

/// The turn's events over `/ws`, up to and including `complete` or `error`.
async fn over_ws(agent: &str, session: &str, prompt: &str) -> Vec<Value> {
    let url = format!("{}/ws", agent.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert(SESSION_HEADER, session.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        json!({"input": {"prompt": prompt}}).to_string(),
    ))
    .await
    .unwrap();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the turn ends within 60 s")
            .expect("the socket stays open until the turn ends")
            .unwrap();
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        let last = matches!(v["type"].as_str(), Some("complete" | "error"));
        events.push(v);
        if last {
            break;
        }
    }
    ws.close(None).await.ok();
    events
}

/// What one paid turn showed, checked against the chain and `stack.env`.
struct Checked {
    tx: B256,
    nonce: B256,
}

async fn check_turn(stack: &testkit::Stack, events: &[Value], output: &Value) -> Checked {
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let at = |kind: &str| {
        let found: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == kind)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found.len(), 1, "exactly one `{kind}` event: {kinds:?}");
        found[0]
    };
    let tool_start = kinds
        .iter()
        .zip(events)
        .position(|(k, e)| *k == "tool_start" && e["name"] == "generate_image")
        .unwrap_or_else(|| panic!("a generate_image tool_start: {kinds:?}"));
    let (payment, image, complete) = (at("payment"), at("image"), at("complete"));
    assert!(
        tool_start < payment && payment < image && image < complete,
        "tool_start < payment < image < complete: {kinds:?}"
    );
    assert_eq!(complete, events.len() - 1, "complete is last: {kinds:?}");
    assert!(!kinds.contains(&"error"), "{kinds:?}");

    // The receipt against stack.env, not against the agent's own output.
    let receipt = &events[payment]["receipt"];
    let buyer: Address = stack.var("BUYER_ADDRESS").unwrap().parse().unwrap();
    let pay_to: Address = receipt["pay_to"].as_str().unwrap().parse().unwrap();
    let payer: Address = receipt["payer"].as_str().unwrap().parse().unwrap();
    assert_eq!(pay_to, stack.seller_wallet, "paid the configured seller");
    assert_eq!(payer, buyer);
    assert_eq!(receipt["amount"], "0.04");
    assert_eq!(
        output["payments"],
        json!([receipt]),
        "the final output carries the same receipt"
    );

    // The chain: the transaction's receipt has exactly one Transfer of the
    // price from the buyer to the configured seller, and the nonce it used.
    let tx: B256 = receipt["transaction"].as_str().unwrap().parse().unwrap();
    let r = stack
        .provider()
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .expect("the transaction is mined");
    assert!(r.status(), "{tx:#x} succeeded");
    let logs: Vec<_> = r
        .inner
        .logs()
        .iter()
        .filter(|l| l.address() == stack.usdc_contract)
        .collect();
    let transfers: Vec<_> = logs
        .iter()
        .filter_map(|l| IUsdc::Transfer::decode_log_data(l.data()).ok())
        .collect();
    assert_eq!(transfers.len(), 1, "{tx:#x}: one Transfer");
    assert_eq!(
        (transfers[0].from, transfers[0].to, transfers[0].value),
        (buyer, stack.seller_wallet, U256::from(PRICE))
    );
    let used: Vec<_> = logs
        .iter()
        .filter_map(|l| IUsdc::AuthorizationUsed::decode_log_data(l.data()).ok())
        .collect();
    assert_eq!(used.len(), 1, "{tx:#x}");
    assert_eq!(used[0].authorizer, buyer);
    // And the seller-side view: the transfer log by (buyer, seller) in its block.
    let block = r.block_number.unwrap();
    let by_seller = stack
        .transfer_logs(buyer, stack.seller_wallet, block..=block)
        .await
        .unwrap();
    assert!(
        by_seller.iter().any(|l| l.transaction_hash == Some(tx)),
        "{tx:#x} among the seller's incoming transfers"
    );

    // The image: the event's URL is the output's, a PNG in the stack's images dir.
    let img = &events[image];
    let url = img["url"].as_str().unwrap();
    assert_eq!(
        output["images"][img["id"].as_str().unwrap()],
        url,
        "the final output has the same image"
    );
    // The stack's agent keeps images in moto's S3 and answers with presigned
    // http://127.0.0.1 URLs; an agent on a directory answers with file:// URLs.
    let png = match url.strip_prefix("file://") {
        Some(path) => {
            assert!(
                std::path::Path::new(path).starts_with(&stack.images_dir),
                "{path} is under {}",
                stack.images_dir.display()
            );
            std::fs::read(path).unwrap()
        }
        None => {
            assert!(
                url.starts_with("http://127.0.0.1:"),
                "a loopback URL: {url}"
            );
            let resp = reqwest::get(url).await.unwrap();
            assert!(resp.status().is_success(), "{url}: {}", resp.status());
            resp.bytes().await.unwrap().to_vec()
        }
    };
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{url}");
    Checked {
        tx,
        nonce: used[0].nonce,
    }
}

#[tokio::test]
async fn the_stack_agent_streams_a_paid_image_over_sse_and_ws() {
    let stack = stack();
    let agent = stack.require_agent().unwrap().to_owned();

    let events = over_sse(&agent, &session("sse"), &prompt("SSE")).await;
    let output = events.last().unwrap()["output"].clone();
    let sse = check_turn(&stack, &events, &output).await;

    let events = over_ws(&agent, &session("ws"), &prompt("WebSocket")).await;
    let last = events.last().unwrap();
    assert!(
        last["sessionId"]
            .as_str()
            .unwrap()
            .starts_with("streams-ws-")
    );
    let output = last["response"]["output"].clone();
    let ws = check_turn(&stack, &events, &output).await;

    assert_ne!(sse.tx, ws.tx, "two payments, two transactions");
    assert_ne!(sse.nonce, ws.nonce, "two payments, two nonces");
}
