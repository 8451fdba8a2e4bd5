//! The harness: an `agent` process of the test's own (web page on, paying
//! from a fresh wallet, images in the stack's moto S3 bucket), and the page
//! driven in headless Chromium by `agent/web/tests/page.mjs`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;
use testkit::Stack;
use testkit::free_port;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_agent");
/// Debian's chromium package (`cargo xtask setup` installs it).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Fresh wallets hold 5 USDC.
pub const WALLET_USDC_ATOMIC: u64 = 5_000_000;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Screenshots land here (`target/web-artifacts/`).
pub fn artifacts_dir() -> PathBuf {
    workspace_root().join("target").join("web-artifacts")
}

fn web_tests_dir() -> PathBuf {
    workspace_root().join("agent/web/tests")
}

/// One browser at a time: they share two cores with everything else.
pub static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Agent {
    pub stack: Stack,
    pub buyer: PrivateKeySigner,
    pub url: String,
    port: u16,
    dir: PathBuf,
    auto_approve_max: &'static str,
    child: Option<tokio::process::Child>,
    /// First block of the test: on-chain checks look from here.
    pub first_block: u64,
}

impl Agent {
    /// An agent with the web page on, a fresh wallet and its own sessions
    /// directory. `auto_approve_max` is `AUTO_APPROVE_MAX_USDC`.
    pub async fn start(what: &str, auto_approve_max: &'static str) -> Agent {
        let stack = Stack::load().expect("the local stack (cargo xtask stack)");
        stack
            .gateway_url
            .as_ref()
            .expect("the stack runs the gateway");
        let buyer = stack.fresh_wallet(WALLET_USDC_ATOMIC).await.unwrap();
        let first_block = stack.block_number().await.unwrap();
        let dir = std::env::temp_dir().join(format!("agent-web-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut agent = Agent {
            stack,
            buyer,
            url: String::new(),
            port: free_port(),
            dir,
            auto_approve_max,
            child: None,
            first_block,
        };
        agent.spawn().await;
        agent
    }

    async fn spawn(&mut self) {
        let s = &self.stack;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = tokio::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(&self.dir)
            .env("AGENT_HOST", "127.0.0.1")
            .env("AGENT_PORT", self.port.to_string())
            .env("AGENT_WEB_UI", "1")
            .env("SELLER_WALLET", s.seller_wallet.to_string())
            .env("GATEWAY_URL", s.gateway_url.as_deref().unwrap())
            .env(
                "BUYER_PRIVATE_KEY",
                alloy::hex::encode_prefixed(self.buyer.to_bytes()),
            )
            .env("NETWORK", s.network.v1_name())
            .env("RPC_URL", &s.rpc_url)
            .env("USDC_CONTRACT", s.usdc_contract.to_string())
            .env("AUTO_APPROVE_MAX_USDC", self.auto_approve_max)
            .env(
                "IMAGES_BUCKET",
                s.var("IMAGES_BUCKET")
                    .expect("stack.env names IMAGES_BUCKET"),
            )
            .env("SESSIONS_DIR", self.dir.join("sessions"))
            .env("MODEL_PROVIDER", "offline")
            .env("AWS_ENDPOINT_URL", &s.aws_endpoint_url)
            .env("AWS_REGION", &s.aws_region)
            .env("AWS_ACCESS_KEY_ID", &s.aws_access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &s.aws_secret_access_key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{}", self.port);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/ping", self.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent did not come up; see {}",
                self.dir.join("agent.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then the same binary again on the same port and sessions.
    pub async fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        self.spawn().await;
    }

    /// USDC moved from this test's wallet to the seller since it started.
    pub async fn paid_to_seller(&self) -> (usize, x402::Usdc) {
        let s = &self.stack;
        let last = s.block_number().await.unwrap();
        let range = self.first_block..=last;
        let from = self.buyer.address();
        (
            s.count_transfers(from, s.seller_wallet, range.clone())
                .await
                .unwrap(),
            s.transferred(from, s.seller_wallet, range).await.unwrap(),
        )
    }

    pub async fn balance(&self) -> x402::Usdc {
        self.stack.usdc_balance(self.buyer.address()).await.unwrap()
    }
}

/// Runs one scenario of `page.mjs` against `agent`; restarts the agent when
/// the page asks. Returns the scenario's result.
pub async fn run_page(agent: &mut Agent, scenario: &str) -> Value {
    assert!(
        Path::new(CHROMIUM).exists()
            && web_tests_dir()
                .join("node_modules/playwright-core")
                .exists(),
        "{CHROMIUM} or playwright-core is missing: run `cargo xtask setup`"
    );
    let _one = BROWSER.lock().await;
    let mut child = tokio::process::Command::new("node")
        .arg("page.mjs")
        .current_dir(web_tests_dir())
        .env("AGENT_URL", &agent.url)
        .env("SCENARIO", scenario)
        .env("ARTIFACTS", artifacts_dir())
        .env("BUYER_ADDRESS", agent.buyer.address().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut result = None;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("page: {line}");
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["step"] == "restart-agent" {
                agent.restart().await;
            } else if !v["result"].is_null() {
                result = Some(v["result"].clone());
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the browser scenario finished in time");
    assert!(
        status.success(),
        "scenario {scenario} failed in the browser (see above; screenshots in {})",
        artifacts_dir().display()
    );
    result.expect("the scenario reported its result")
}
