//! Builds the running agent from a validated [`Config`]: the outside systems
//! (AWS clients, session store, secrets) and the tool loop's dependencies,
//! behind the server's [`TurnRunner`](crate::turn::TurnRunner) ([`TurnDeps`] implements it).
//!
//! This is the only place that chooses implementations (AgentCore Memory or
//! local sessions, S3 or directory images, Bedrock or offline model, which
//! signer); everything else takes traits.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use tools::{
    access::{AccessStore, dynamodb::DynamoAccessStore, local::LocalAccessStore},
    ledger::MoneyRules,
    seller::{ImageSeller, X402Seller, agentcore::AgentCoreSeller},
    signer::{
        CdpConfig, PaymentSigner, SignerSpec,
        agentcore::{AgentCoreConfig, AgentCorePayments, InstrumentWallet},
    },
    storage::{DirImageStore, ImageStore, S3ImageStore},
    toolbox::{Spending, ToolBox, system_clock},
    wallet::{ChainWallet, Wallet},
};

use crate::{
    config::{
        AccessConfig, Config, ImagesConfig, ModelProvider, Secret, SecretString, SessionsConfig,
        SignerConfig,
    },
    model::{
        Model, ModelVision,
        bedrock::{self, BedrockModel},
        offline::OfflineModel,
        retry::{Backoff, Retry},
    },
    server::{AppState, RequestLimits},
    session::{SessionStore, local::LocalSessionStore, memory::MemorySessionStore},
    turn::{TurnDeps, TurnSettings},
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

/// The store of session owners and daily-cap counters the configuration
/// names: a DynamoDB table shared by all runtime sessions, or a local file.
pub fn access_store(cfg: &Config, aws: &SdkConfig) -> Arc<dyn AccessStore> {
    match &cfg.access {
        AccessConfig::DynamoDb { table } => Arc::new(DynamoAccessStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            table.clone(),
        )),
        AccessConfig::Local { dir } => Arc::new(LocalAccessStore::new(dir.clone())),
    }
}

/// A secret's value: given directly, or read once from Secrets Manager
/// (`SecretString` of the secret). The value is never logged.
pub async fn resolve_secret(secret: &Secret, aws: &SdkConfig) -> Result<SecretString, WiringError> {
    secret.resolve(aws).await.map_err(|e| WiringError::Secret {
        arn: e.arn,
        cause: e.cause,
    })
}

/// Server limits from the configuration.
pub fn limits(cfg: &Config) -> RequestLimits {
    RequestLimits {
        max_prompt_chars: cfg.server.max_prompt_chars,
        max_body_bytes: cfg.server.max_body_bytes,
        max_session_budget: cfg.money.max_session_budget,
        default_actor_id: cfg.server.default_actor_id.clone(),
        port: cfg.server.port,
        allowed_origins: cfg.server.allowed_origins.clone(),
    }
}

/// The whole service, ready for [`server::app`](crate::server::app).
pub async fn build(cfg: &Config) -> Result<AppState, WiringError> {
    let aws = aws_config().await;
    let store = session_store(cfg, &aws);
    let access = access_store(cfg, &aws);
    let runner = Arc::new(turn_deps(cfg, &aws, store, access.clone()).await?);
    let state = AppState::new(runner.clone(), limits(cfg)).with_access(access);
    Ok(if cfg.server.web_ui {
        state.with_web_ui(crate::web::WebUi::new(
            runner,
            cfg.server.default_actor_id.clone(),
            cfg.money.max_session_budget,
        ))
    } else {
        state
    })
}

/// The model the configuration names: the offline planner, or Bedrock
/// (ConverseStream) behind the throttling retry layer.
pub fn model(cfg: &Config, aws: &SdkConfig) -> Arc<dyn Model> {
    match cfg.model.provider {
        ModelProvider::Offline => Arc::new(OfflineModel),
        ModelProvider::Bedrock => Arc::new(Retry::new(
            BedrockModel::new(bedrock::client(aws), cfg.model.model_id.clone()),
            Backoff::default(),
        )),
    }
}

/// The payment signer the configuration names (`tools::signer`): a local
/// key, the CDP server wallet (remote typed-data signing, or its key
/// exported once), or a KMS key. Secrets given as ARNs are resolved first.
pub async fn signer(cfg: &Config, aws: &SdkConfig) -> Result<Arc<dyn PaymentSigner>, WiringError> {
    let setup = |e: tools::signer::SignerError| WiringError::Setup(format!("signer: {e}"));
    let spec = match &cfg.signer {
        SignerConfig::Local { private_key } => {
            let key = resolve_secret(private_key, aws).await?;
            SignerSpec::Local(key)
        }
        SignerConfig::Cdp {
            export,
            api_key_id,
            api_key_secret,
            wallet_secret,
            account_name,
        } => {
            let c = CdpConfig {
                api_key_id: api_key_id.clone(),
                api_key_secret: resolve_secret(api_key_secret, aws).await?,
                wallet_secret: resolve_secret(wallet_secret, aws).await?,
                account_name: account_name.clone(),
                base_url: cfg.endpoints.cdp_base_url.clone(),
            };
            if *export {
                SignerSpec::CdpExport(c)
            } else {
                SignerSpec::Cdp(c)
            }
        }
        SignerConfig::Kms { key_id } => SignerSpec::Kms {
            key_id: key_id.clone(),
            aws: Box::new(aws.clone()),
        },
        SignerConfig::AgentCore { .. } => {
            return Err(WiringError::Setup(
                "SIGNER=agentcore signs whole payments through AgentCore Payments, not typed data: \
                 use agentcore_payments()"
                    .into(),
            ));
        }
    };
    tools::signer::from_config(spec).await.map_err(setup)
}

/// The AgentCore Payments backend (`SIGNER=agentcore`): reads the payment
/// instrument now, so a wrong ARN or id stops start-up. `None` for the
/// other signers. The endpoint is the SDK's (`AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`
/// points it at a local stand-in).
pub async fn agentcore_payments(
    cfg: &Config,
    aws: &SdkConfig,
) -> Result<Option<Arc<AgentCorePayments>>, WiringError> {
    let SignerConfig::AgentCore {
        payment_manager_arn,
        payment_connector_id,
        payment_instrument_id,
        session_minutes,
    } = &cfg.signer
    else {
        return Ok(None);
    };
    let payments = AgentCorePayments::connect(
        aws_sdk_bedrockagentcore::Client::new(aws),
        AgentCoreConfig {
            payment_manager_arn: payment_manager_arn.clone(),
            payment_connector_id: payment_connector_id.clone(),
            payment_instrument_id: payment_instrument_id.clone(),
            default_user_id: cfg.server.default_actor_id.clone(),
            agent_name: cfg.telemetry.service_name.clone(),
            session_minutes: *session_minutes,
        },
        cfg.chain.network,
    )
    .await
    .map_err(|e| WiringError::Setup(format!("AgentCore payments: {e}")))?;
    Ok(Some(Arc::new(payments)))
}

/// The image store the configuration names.
pub fn image_store(cfg: &Config, aws: &SdkConfig) -> Arc<dyn ImageStore> {
    match &cfg.images {
        ImagesConfig::Dir { dir } => Arc::new(DirImageStore::new(dir.clone())),
        ImagesConfig::S3 {
            bucket,
            prefix,
            presign_expiry_seconds,
        } => {
            let conf = aws_sdk_s3::config::Builder::from(aws)
                .force_path_style(cfg.endpoints.s3_path_style())
                .build();
            Arc::new(S3ImageStore::new(
                aws_sdk_s3::Client::from_conf(conf),
                bucket.clone(),
                prefix.clone(),
                std::time::Duration::from_secs(*presign_expiry_seconds),
            ))
        }
    }
}

/// The tool loop and everything it depends on.
pub async fn turn_deps(
    cfg: &Config,
    aws: &SdkConfig,
    store: Arc<dyn SessionStore>,
    access: Arc<dyn AccessStore>,
) -> Result<TurnDeps, WiringError> {
    let model = model(cfg, aws);
    let rules = MoneyRules {
        seller: cfg.chain.seller_wallet,
        asset: cfg.chain.usdc_contract,
        network: cfg.chain.network,
        auto_approve_max: cfg.money.auto_approve_max,
        max_timeout_seconds: cfg.money.max_payment_timeout_seconds,
    };
    // The ledger checks quotes against the rules; the client checks the same
    // policy again when it signs.
    let policy = rules.policy();
    let (seller, wallet): (Option<Arc<dyn ImageSeller>>, Arc<dyn Wallet>) =
        match agentcore_payments(cfg, aws).await? {
            // AgentCore pays and reports the instrument's balance.
            Some(payments) => (
                cfg.gateway_url.as_deref().map(|url| {
                    Arc::new(AgentCoreSeller::new(url, payments.clone(), policy.clone()))
                        as Arc<dyn ImageSeller>
                }),
                {
                    let chain = ChainWallet::new(
                        &cfg.chain.rpc_url,
                        cfg.chain.network,
                        cfg.chain.usdc_contract,
                        payments.address(),
                    )
                    .map_err(|e| WiringError::Setup(e.to_string()))?;
                    Arc::new(InstrumentWallet::new(payments, chain)) as Arc<dyn Wallet>
                },
            ),
            None => {
                let signer = signer(cfg, aws).await?;
                let wallet = ChainWallet::new(
                    &cfg.chain.rpc_url,
                    cfg.chain.network,
                    cfg.chain.usdc_contract,
                    signer.address(),
                )
                .map_err(|e| WiringError::Setup(e.to_string()))?;
                (
                    cfg.gateway_url.as_deref().map(|url| {
                        Arc::new(X402Seller::new(url, signer.clone(), policy.clone()))
                            as Arc<dyn ImageSeller>
                    }),
                    Arc::new(wallet) as Arc<dyn Wallet>,
                )
            }
        };
    let tools = ToolBox {
        seller,
        images: image_store(cfg, aws),
        wallet,
        vision: Arc::new(ModelVision(model.clone())),
        rules,
        spending: Spending {
            access,
            caps: tools::policy::caps::DailyCaps {
                per_user: cfg.money.user_daily_cap,
                wallet: cfg.money.wallet_daily_cap,
            },
            quote_ttl_seconds: cfg.money.quote_ttl_seconds,
            clock: system_clock(),
        },
    };
    Ok(TurnDeps {
        model,
        store,
        tools: Arc::new(tools),
        settings: TurnSettings {
            max_turns: cfg.model.max_turns,
            max_tokens: cfg.model.max_tokens,
            default_budget: cfg.money.session_budget,
        },
    })
}
