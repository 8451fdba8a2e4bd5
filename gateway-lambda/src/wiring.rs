//! From configuration to a running [`AppState`]: the AWS or local
//! implementation of each outside system.

use std::sync::Arc;

use plumbing::secrets::{ExposeSecret as _, Secret};
use x402::facilitator::{Facilitator, HttpFacilitator};

use crate::{
    chain::RpcChain,
    config::{Backend, CdpKey, Config, Storage},
    generate::{Generator, LocalGenerator},
    payment::Seller,
    state::AppState,
    store::{FileStore, PaymentStore, ReservationStore, ResultStore},
};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WiringError(pub String);

pub async fn state(cfg: &Config) -> Result<AppState, WiringError> {
    let needs_aws = !matches!(
        (&cfg.backend, &cfg.storage),
        (Backend::Local, Storage::Dir(_))
    ) || matches!(
        &cfg.cdp,
        Some(CdpKey {
            secret: Secret::Arn(_),
            ..
        })
    );
    let aws = if needs_aws {
        Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
    } else {
        None
    };
    let mut facilitator =
        HttpFacilitator::new(cfg.facilitator_url.clone(), cfg.facilitator_timeout);
    if let Some(key) = &cfg.cdp {
        let secret = match &key.secret {
            Secret::Value(v) => v.clone(),
            Secret::Arn(_) => key
                .secret
                .resolve(aws.as_ref().expect("loaded for the ARN"))
                .await
                .map_err(|e| WiringError(format!("CDP_API_KEY_SECRET_ARN: {e}")))?,
        };
        facilitator = facilitator.with_auth(Arc::new(crate::aws::cdp_auth::CdpJwt::new(
            key.id.clone(),
            secret.expose_secret().to_owned(),
        )));
    }
    let generator: Arc<dyn Generator> = match &cfg.backend {
        Backend::Local => Arc::new(LocalGenerator),
        Backend::Bedrock {
            canvas_model,
            lite_model,
        } => Arc::new(crate::aws::bedrock::BedrockGenerator::new(
            aws_sdk_bedrockruntime::Client::new(aws.as_ref().expect("loaded for bedrock")),
            canvas_model.clone(),
            lite_model.clone(),
        )),
    };
    type Stores = (
        Arc<dyn PaymentStore>,
        Arc<dyn ReservationStore>,
        Arc<dyn ResultStore>,
    );
    let (payments, reservations, results): Stores = match &cfg.storage {
        Storage::Dir(dir) => {
            let store = Arc::new(FileStore::new(dir).map_err(|e| WiringError(e.to_string()))?);
            (store.clone(), store.clone(), store)
        }
        Storage::Aws { table, bucket } => {
            let aws = aws.as_ref().expect("loaded for aws storage");
            let dynamo = Arc::new(crate::aws::dynamo::DynamoPaymentStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                table.clone(),
            ));
            (
                dynamo.clone(),
                dynamo,
                Arc::new(crate::aws::s3::S3ResultStore::new(
                    // A local S3 (AWS_ENDPOINT_URL, e.g. moto) needs path-style URLs.
                    aws_sdk_s3::Client::from_conf(
                        aws_sdk_s3::config::Builder::from(aws)
                            .force_path_style(cfg.aws_endpoint_url.is_some())
                            .build(),
                    ),
                    bucket.clone(),
                )),
            )
        }
    };
    Ok(AppState {
        seller: cfg.seller.clone(),
        prices: cfg.prices,
        facilitator: Arc::new(facilitator),
        generator,
        payments,
        reservations,
        results,
        chain: Arc::new(
            RpcChain::new(&cfg.rpc_url, cfg.seller.asset)
                .map_err(|e| WiringError(e.to_string()))?,
        ),
        public_url: cfg.public_url.clone(),
        lease: cfg.lease,
        generation_timeout: cfg.generation_timeout,
        retention: cfg.retention,
        confirmations: cfg.confirmations,
        payer_locks: Default::default(),
    })
}

/// The gateway with file stores under `dir` and the chain at `rpc_url`: the
/// local composition, for development, tests and benchmarks. Defaults: the
/// published price list, a 120 s lease, a 60 s generation timeout, 30 days'
/// retention, a reverted settlement final once mined; the fields are public
/// to override.
pub fn local_state(
    seller: Seller,
    facilitator: Arc<dyn Facilitator>,
    generator: Arc<dyn Generator>,
    rpc_url: &str,
    dir: &std::path::Path,
) -> Result<AppState, WiringError> {
    let store = Arc::new(FileStore::new(dir).map_err(|e| WiringError(e.to_string()))?);
    Ok(AppState {
        chain: Arc::new(
            RpcChain::new(rpc_url, seller.asset).map_err(|e| WiringError(e.to_string()))?,
        ),
        seller,
        prices: crate::pricing::ImagePrices::default(),
        facilitator,
        generator,
        payments: store.clone(),
        reservations: store.clone(),
        results: store,
        public_url: None,
        lease: std::time::Duration::from_secs(120),
        generation_timeout: std::time::Duration::from_secs(60),
        retention: crate::state::DEFAULT_RETENTION,
        confirmations: 0,
        payer_locks: Default::default(),
    })
}
