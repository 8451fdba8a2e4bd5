//! The whole product on the local stack, for the full-path tests and the
//! chaos suite: the real gateway (in-process, its outside systems
//! injectable), the real agent binary as a process (killable), moto for S3
//! and AgentCore Memory, the official facilitator and Anvil.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use gateway_lambda::{
    app,
    generate::{Generator, LocalGenerator},
    payment::Seller,
    wiring::local_state,
};
use serde_json::{Value, json};
pub use testkit::free_port;
use x402::facilitator::{Facilitator, HttpFacilitator};

pub fn stack() -> testkit::Stack {
    testkit::Stack::load().expect("end-to-end tests need the local stack (cargo xtask stack)")
}

/// `{tmp}/e2e-{name}-…`, removed when the guard is dropped (kept when the
/// test fails).
pub fn temp_dir(name: &str) -> testkit::TempDir {
    testkit::TempDir::new(&format!("e2e-{name}"))
}

/// The gateway in-process on a loopback port.
pub struct GatewayOptions {
    pub facilitator_url: Option<String>,
    pub generator: Option<Arc<dyn Generator>>,
    pub facilitator_timeout: Duration,
    pub lease: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            facilitator_url: None,
            generator: None,
            facilitator_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(120),
        }
    }
}

/// A gateway started by [`start_gateway`]; its state directory is removed
/// when this is dropped.
pub struct Gateway {
    pub url: String,
    _dir: testkit::TempDir,
}

pub async fn start_gateway(stack: &testkit::Stack, opts: GatewayOptions) -> Gateway {
    let dir = temp_dir("gateway");
    let facilitator: Arc<dyn Facilitator> = Arc::new(HttpFacilitator::new(
        opts.facilitator_url
            .unwrap_or_else(|| stack.facilitator_url.clone()),
        opts.facilitator_timeout,
    ));
    let mut state = local_state(
        Seller::usdc(stack.network, stack.usdc_contract, stack.seller_wallet),
        facilitator,
        opts.generator.unwrap_or_else(|| Arc::new(LocalGenerator)),
        &stack.rpc_url,
        &dir,
    )
    .unwrap();
    state.lease = opts.lease;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app(Arc::new(state));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Gateway { url, _dir: dir }
}

/// The `agent` binary, built by `cargo test --workspace` (or `cargo build`).
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("agent");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p agent)",
        bin.display()
    );
    bin
}

/// How the agent process is configured.
#[derive(Clone)]
pub struct AgentSetup {
    pub port: u16,
    pub gateway_url: String,
    pub buyer: PrivateKeySigner,
    /// Endpoint for S3 and Memory (moto, or a fault proxy in front of it).
    pub aws_endpoint: String,
    pub memory_id: String,
    pub bucket: String,
    pub dir: PathBuf,
    /// Further environment for the agent process (e.g. `AWS_MAX_ATTEMPTS`).
    pub env: Vec<(String, String)>,
}

pub struct AgentProcess {
    pub child: tokio::process::Child,
    pub url: String,
}

impl AgentProcess {
    pub async fn start(stack: &testkit::Stack, s: &AgentSetup) -> AgentProcess {
        let mut cmd = tokio::process::Command::new(agent_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(&s.dir)
            .env("AGENT_HOST", "127.0.0.1")
            .env("AGENT_PORT", s.port.to_string())
            .env("SELLER_WALLET", stack.seller_wallet.to_checksum(None))
            .env("GATEWAY_URL", &s.gateway_url)
            .env(
                "BUYER_PRIVATE_KEY",
                alloy::hex::encode_prefixed(s.buyer.to_bytes()),
            )
            .env("NETWORK", stack.network.v1_name())
            .env("RPC_URL", &stack.rpc_url)
            .env("USDC_CONTRACT", stack.usdc_contract.to_checksum(None))
            .env("MODEL_PROVIDER", "offline")
            .env("BEDROCK_AGENTCORE_MEMORY_ID", &s.memory_id)
            .env("IMAGES_BUCKET", &s.bucket)
            .env("AWS_ENDPOINT_URL", &s.aws_endpoint)
            .env("AWS_REGION", &stack.aws_region)
            .env("AWS_ACCESS_KEY_ID", &stack.aws_access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &stack.aws_secret_access_key)
            .env(
                "RUST_LOG",
                std::env::var("E2E_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(s.env.iter().map(|(k, v)| (k, v)));
        let url = format!("http://127.0.0.1:{}", s.port);
        let child = testkit::process::spawn_until_ready(
            cmd,
            &s.dir.join("agent.log"),
            &format!("{url}/ping"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("the agent did not come up: {e:#}"));
        AgentProcess { child, url }
    }

    /// SIGKILL: no shutdown hooks, nothing flushed beyond what was persisted.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// `POST /invocations` (JSON).
/// Why an invocation gave no answer.
#[derive(Debug)]
pub enum InvokeError {
    /// No connection: the agent is not listening (killed, restarting).
    /// Nothing of the turn ran.
    Unreachable(String),
    /// The agent was reached but gave no good answer (an error status, or
    /// it died mid-turn).
    Failed(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Unreachable(e) => write!(f, "agent unreachable: {e}"),
            InvokeError::Failed(e) => write!(f, "{e}"),
        }
    }
}

pub async fn invoke(
    http: &reqwest::Client,
    agent: &str,
    session: &str,
    prompt: &str,
) -> Result<Value, InvokeError> {
    let resp = http
        .post(format!("{agent}/invocations"))
        .header("x-amzn-bedrock-agentcore-runtime-session-id", session)
        .json(&json!({"input": {"prompt": prompt}}))
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                InvokeError::Unreachable(e.to_string())
            } else {
                InvokeError::Failed(e.to_string())
            }
        })?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| InvokeError::Failed(e.to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(InvokeError::Failed(format!("{status}: {body}")))
    }
}

/// The session's records as the agent stored them in Memory.
pub async fn ledger(conf: &aws_config::SdkConfig, memory_id: &str, session: &str) -> Vec<Value> {
    use agent::session::{Record, SessionStore, memory::MemorySessionStore};
    let store = MemorySessionStore::new(
        aws_sdk_bedrockagentcore::Client::new(conf),
        memory_id.to_owned(),
    );
    store
        .load("default", session)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Ledger { entry } => Some(entry),
            Record::Message { .. } => None,
        })
        .collect()
}
