//! The `agent` binary under the money rules: killed with SIGKILL mid-payment
//! and restarted, and invoked concurrently with the same request. The chain
//! is the judge: exactly one transfer per request.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use testkit::{TempDir, free_port};
use tokio::process::Command;

use crate::{money::Money, seller::Hold, support::usdc};

const BIN: &str = env!("CARGO_BIN_EXE_agent");
const SESSION_HEADER: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

pub struct AgentProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

impl AgentProcess {
    /// Starts the binary with the offline model, paying the test's seller on
    /// the stack, keeping sessions and images under `dir` (so a restart finds
    /// them); `signer` adds how it signs. Its output goes to
    /// `dir/agent-{port}.log`.
    pub async fn start(m: &Money, dir: &Path, signer: impl FnOnce(&mut Command)) -> AgentProcess {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(dir)
            .env("AGENT_HOST", "127.0.0.1")
            .env("AGENT_PORT", port.to_string())
            .env("SELLER_WALLET", m.stack.seller_wallet.to_string())
            .env("GATEWAY_URL", m.seller.base_url())
            .env("NETWORK", m.stack.network.v1_name())
            .env("RPC_URL", &m.stack.rpc_url)
            .env("USDC_CONTRACT", m.stack.usdc_contract.to_string())
            .env("IMAGES_DIR", dir.join("images"))
            .env("SESSIONS_DIR", dir.join("sessions"))
            .env("MODEL_PROVIDER", "offline")
            .env("AWS_REGION", "us-east-1");
        signer(&mut cmd);
        let url = format!("http://127.0.0.1:{port}");
        let child = testkit::process::spawn_until_ready(
            cmd,
            &dir.join(format!("agent-{port}.log")),
            &format!("{url}/ping"),
            Duration::from_secs(30),
        )
        .await
        .expect("the agent comes up");
        AgentProcess { child, url }
    }
}

/// The buyer's key in the environment (`SIGNER` unset: local).
async fn start_agent(m: &Money, dir: &Path) -> AgentProcess {
    AgentProcess::start(m, dir, |cmd| {
        cmd.env(
            "BUYER_PRIVATE_KEY",
            alloy::hex::encode_prefixed(m.buyer.to_bytes()),
        );
    })
    .await
}

pub async fn invoke(url: &str, session: &str, prompt: &str) -> reqwest::Result<Value> {
    reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .header(SESSION_HEADER, session)
        .json(&json!({"input": {"prompt": prompt}}))
        .timeout(Duration::from_secs(120))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

async fn killed_mid_payment_then_restarted_pays_once(hold: Hold) {
    let m = Money::new(1_000_000).await;
    let dir = TempDir::new("agent-core-kill");
    m.seller.hold(hold);
    let mut agent = start_agent(&m, &dir).await;
    let url = agent.url.clone();
    let first = tokio::spawn(async move {
        invoke(&url, "kill-session", "Generate an image of a lighthouse").await
    });
    tokio::time::timeout(Duration::from_secs(60), m.seller.held(hold))
        .await
        .expect("the payment reaches the seller");

    // SIGKILL: no shutdown hooks, nothing flushed beyond what was persisted.
    agent.child.start_kill().unwrap();
    agent.child.wait().await.unwrap();
    assert!(
        first.await.unwrap().is_err(),
        "the first invocation died with the process"
    );
    m.seller.release();

    let agent = start_agent(&m, &dir).await;
    let out = invoke(
        &agent.url,
        "kill-session",
        "Generate an image of a lighthouse",
    )
    .await
    .unwrap();
    let images = out["output"]["images"].as_object().unwrap();
    assert_eq!(
        images.len(),
        1,
        "the paid image is delivered after the restart: {out}"
    );
    let url = images.values().next().unwrap().as_str().unwrap();
    assert!(
        std::fs::read(url.strip_prefix("file://").unwrap())
            .unwrap()
            .starts_with(b"\x89PNG")
    );

    assert_eq!(m.balance().await, usdc("0.96"), "paid exactly once");
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
    assert_eq!(m.seller.settlements(), 1);
    assert!(
        m.seller.paid_requests() >= 2 && m.seller.distinct_nonces() == 1,
        "the restart re-sent the same payment: {} paid requests, {} distinct nonces",
        m.seller.paid_requests(),
        m.seller.distinct_nonces()
    );
}

#[tokio::test]
async fn killed_after_settlement_then_restarted_pays_once_and_delivers() {
    killed_mid_payment_then_restarted_pays_once(Hold::AfterSettle).await;
}

#[tokio::test]
async fn killed_before_settlement_then_restarted_pays_once_and_delivers() {
    killed_mid_payment_then_restarted_pays_once(Hold::BeforeSettle).await;
}

#[tokio::test]
async fn concurrent_duplicate_invocations_pay_once() {
    let m = Money::new(1_000_000).await;
    let dir = TempDir::new("agent-core-concurrent");
    let agent = start_agent(&m, &dir).await;
    let prompt = "Generate an image of a windmill";
    let outs =
        futures::future::join_all((0..4).map(|_| invoke(&agent.url, "dup-session", prompt))).await;
    let outs: Vec<Value> = outs.into_iter().map(Result::unwrap).collect();
    let payments: usize = outs
        .iter()
        .map(|o| o["output"]["payments"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        payments, 1,
        "one invocation paid, the others got the stored image"
    );
    let first = &outs[0]["output"]["images"];
    assert!(
        outs.iter().all(|o| &o["output"]["images"] == first),
        "every invocation got the same image"
    );
    assert_eq!(m.balance().await, usdc("0.96"));
    assert_eq!(m.transfers_to(m.stack.seller_wallet).await, 1);
    assert_eq!(m.seller.settlements(), 1);
}
