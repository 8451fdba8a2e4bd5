//! Builds the running agent from a validated [`Config`]: the outside systems
//! (AWS clients, session store, secrets) and the tool loop's dependencies,
//! behind the server's [`TurnRunner`].
//!
//! This is the only place that chooses implementations (AgentCore Memory or
//! local sessions, S3 or directory images, Bedrock or offline model, which
//! signer); everything else takes traits.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_bedrockagentcore::error::DisplayErrorContext;
use tokio::sync::mpsc;

use crate::{
    config::{Config, Secret, SecretString, SessionsConfig},
    events::{AgentEvent, Output},
    server::{AppState, Limits, TurnRunner},
    session::{SessionStore, local::LocalSessionStore, memory::MemorySessionStore},
    turn::{self, TurnError, TurnRequest},
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WiringError {
    #[error("cannot read secret {arn}: {cause}")]
    Secret { arn: String, cause: String },
    #[error("{0}")]
    Setup(String),
}

/// AWS settings from the standard chain (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for moto, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` for a
/// local Bedrock stand-in). Loading makes no network call.
pub async fn aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The session store the configuration names.
pub fn session_store(cfg: &Config, aws: &SdkConfig) -> Arc<dyn SessionStore> {
    match &cfg.sessions {
        SessionsConfig::AgentCoreMemory { memory_id } => Arc::new(MemorySessionStore::new(
            aws_sdk_bedrockagentcore::Client::new(aws),
            memory_id.clone(),
        )),
        SessionsConfig::Local { dir } => Arc::new(LocalSessionStore::new(dir.clone())),
    }
}

/// A secret's value: given directly, or read once from Secrets Manager
/// (`SecretString` of the secret). The value is never logged.
pub async fn resolve_secret(secret: &Secret, aws: &SdkConfig) -> Result<SecretString, WiringError> {
    match secret {
        Secret::Value(v) => Ok(v.clone()),
        Secret::Arn(arn) => {
            let out = aws_sdk_secretsmanager::Client::new(aws)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| WiringError::Secret {
                    arn: arn.clone(),
                    cause: DisplayErrorContext(&e).to_string(),
                })?;
            let value = out.secret_string().map(str::trim).filter(|s| !s.is_empty());
            value
                .map(SecretString::new)
                .ok_or_else(|| WiringError::Secret {
                    arn: arn.clone(),
                    cause: "the secret has no string value".into(),
                })
        }
    }
}

/// Server limits from the configuration.
pub fn limits(cfg: &Config) -> Limits {
    Limits {
        max_prompt_chars: cfg.server.max_prompt_chars,
        max_body_bytes: cfg.server.max_body_bytes,
        max_session_budget: cfg.money.max_session_budget,
        default_actor_id: cfg.server.default_actor_id.clone(),
    }
}

/// The whole service, ready for [`server::app`](crate::server::app).
pub async fn build(cfg: &Config) -> Result<AppState, WiringError> {
    let aws = aws_config().await;
    let _store = session_store(cfg, &aws);
    let runner = Arc::new(LoopRunner);
    Ok(AppState::new(runner, limits(cfg)))
}

/// The tool loop behind the server.
///
/// Integration point with `turn` (CORE's side): today `turn::run_turn` is the
/// lead's stub and takes only the request. When it takes its dependencies
/// (`TurnDeps`/`Agent`: model, session store, x402 client, image store,
/// signer, money settings), `build` constructs them here from `cfg` — the
/// store from [`session_store`], secrets through [`resolve_secret`], the
/// seller from `cfg.chain.seller_wallet`, limits from `cfg.money`, the model
/// from `cfg.model` — and this struct holds them. Background work that must
/// not be cut short takes `AppState::health().busy()`.
struct LoopRunner;

#[async_trait]
impl TurnRunner for LoopRunner {
    async fn run_turn(
        &self,
        req: TurnRequest,
        events: mpsc::Sender<AgentEvent>,
    ) -> Result<Output, TurnError> {
        turn::run_turn(req, events).await
    }
}
