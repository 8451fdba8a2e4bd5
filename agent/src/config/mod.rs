//! The agent's settings, from the environment (and `.env` via `dotenvy` in
//! `main`), validated once at start-up.
//!
//! Every problem is reported, one clear line each, before the process gives
//! up: an operator fixing a deployment should see the whole list at once, not
//! one error per restart. The process refuses to start half-configured: a
//! payment setting that does not parse is an error, never a silent default.
//! Values are read with [`plumbing::env`]'s one rule (trimmed; blank is unset).
//!
//! The names are the ones in `CONTRIBUTING.md` and `.env-sample`
//! (`# ---- Agent ----`). Secrets (`BUYER_PRIVATE_KEY`, `CDP_API_KEY_SECRET`,
//! `CDP_WALLET_SECRET`) may be given by value or, in AWS, as a Secrets Manager
//! ARN in `<NAME>_SECRET_ARN` (what the CDK stack passes); they are wrapped in
//! [`Secret`] (`secrecy`'s `SecretString`), whose `Debug` never prints the
//! value.
//!
//! One file per part of [`Config`]: [`server`] (listening, sessions, per-user
//! records), [`chain`], [`money`], [`signer`], [`images`], [`model`],
//! [`telemetry`], [`endpoints`].

mod chain;
mod endpoints;
mod images;
mod model;
mod money;
mod server;
mod signer;
mod telemetry;
#[cfg(test)]
mod tests;

use std::{fmt, str::FromStr};

use plumbing::env::Env;

pub use chain::ChainConfig;
pub use endpoints::Endpoints;
pub use images::{DEFAULT_PRESIGN_EXPIRY_SECONDS, ImagesConfig};
pub use model::{
    DEFAULT_MAX_TOKENS, DEFAULT_MAX_TURNS, DEFAULT_MODEL_ID, ModelConfig, ModelProvider,
};
pub use money::{
    DEFAULT_AUTO_APPROVE_MAX, DEFAULT_MAX_SESSION_BUDGET, DEFAULT_QUOTE_TTL_SECONDS,
    DEFAULT_SESSION_BUDGET, DEFAULT_USER_DAILY_CAP, DEFAULT_WALLET_DAILY_CAP, MoneyConfig,
};
/// A secret setting (by value or Secrets Manager ARN; resolved at start-up
/// by `wiring`) and its value, which `Debug` never prints.
pub use plumbing::secrets::{Secret, SecretString};
pub use server::{
    AccessConfig, DEFAULT_ACTOR_ID, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPT_CHARS, DEFAULT_PORT,
    ServerConfig, SessionsConfig,
};
pub use signer::SignerConfig;
pub use telemetry::{LogFormat, TelemetryConfig};

/// Everything the running agent needs, already validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub sessions: SessionsConfig,
    /// Session owners and daily-cap counters.
    pub access: AccessConfig,
    pub chain: ChainConfig,
    /// `GATEWAY_URL`: base URL of the x402 seller (`{GATEWAY_URL}/generate_image`).
    /// `None` when unset: the agent still chats, but buys nothing (the image
    /// tools must answer that image generation is unavailable). The local
    /// stack starts the agent this way when the gateway is not built; `main`
    /// logs a warning. Set but malformed is an error.
    pub gateway_url: Option<String>,
    pub money: MoneyConfig,
    pub signer: SignerConfig,
    pub images: ImagesConfig,
    pub model: ModelConfig,
    pub telemetry: TelemetryConfig,
    /// Local endpoints of outside services (moto, a CDP stand-in).
    pub endpoints: Endpoints,
}

/// All the problems found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the process environment (call `dotenvy::dotenv()` first to include `.env`).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut env = Env::new(get);
        let server = server::server(&mut env);
        let sessions = server::sessions(&env);
        let access = server::access(&env);
        let chain = chain::chain(&mut env);
        let gateway_url = chain::gateway_url(&mut env);
        let money = money::money(&mut env);
        let signer = signer::signer(&mut env);
        let images = images::images(&mut env);
        let model = model::model(&mut env);
        let telemetry = telemetry::telemetry(&mut env);
        let endpoints = endpoints::endpoints(&env);
        env.finish().map_err(|p| ConfigError(p.0))?;
        Ok(Config {
            server,
            sessions,
            access,
            chain,
            gateway_url,
            money,
            signer,
            images,
            model,
            telemetry,
            endpoints,
        })
    }
}

fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// A number that must be set above zero when set (`default` when unset).
fn positive<T: FromStr + PartialEq + Default + Copy>(env: &mut Env, key: &str, default: T) -> T
where
    T::Err: fmt::Display,
{
    let v = env.parse_or(key, default);
    if v == T::default() {
        env.problem(format!("{key} must be greater than zero"));
    }
    v
}

/// A value that must be set and parse.
fn required_parse<T: FromStr + Default>(env: &mut Env, key: &str, what: &str) -> T
where
    T::Err: fmt::Display,
{
    if env.opt(key).is_none() {
        env.problem(format!("{key} is required ({what})"));
        return T::default();
    }
    env.parse_or(key, T::default())
}
