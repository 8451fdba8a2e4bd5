//! The agent's settings, from the environment (and `.env` via `dotenvy` in
//! `main`), validated once at start-up.
//!
//! Every problem is reported, one clear line each, before the process gives
//! up: an operator fixing a deployment should see the whole list at once, not
//! one error per restart. The process refuses to start half-configured: a
//! payment setting that does not parse is an error, never a silent default.
//!
//! The names are the ones in `CONTRIBUTING.md` and `.env-sample`
//! (`# ---- Agent ----`). Secrets (`BUYER_PRIVATE_KEY`, `CDP_API_KEY_SECRET`,
//! `CDP_WALLET_SECRET`) may be given by value or, in AWS, as a Secrets Manager
//! ARN in `<NAME>_SECRET_ARN` (what the CDK stack passes); they are wrapped in
//! [`Secret`] (`secrecy`'s `SecretString`), whose `Debug` never prints the
//! value.

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr};

use alloy::primitives::Address;
/// A secret setting (by value or Secrets Manager ARN; resolved at start-up
/// by `wiring`) and its value, which `Debug` never prints.
pub use plumbing::secrets::{Secret, SecretString};
use plumbing::secrets::ExposeSecret as _;
use x402::{Network, Usdc};

/// Claude Sonnet 4.5 through the US cross-region inference profile.
pub const DEFAULT_MODEL_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
pub const DEFAULT_PORT: u16 = 8080;
/// Longest chat prompt accepted, in characters (same bound as the WebSocket
/// chat Lambda, so a message it forwards is never refused here).
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 16_000;
/// Largest `/invocations` body or `/ws` message accepted, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_SESSION_BUDGET: Usdc = Usdc::from_atomic(1_000_000);
pub const DEFAULT_AUTO_APPROVE_MAX: Usdc = Usdc::from_atomic(100_000);
/// The most a caller may set as a session budget in the invocation payload.
pub const DEFAULT_MAX_SESSION_BUDGET: Usdc = Usdc::from_atomic(10_000_000);
pub const DEFAULT_MAX_TURNS: u32 = 8;
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_PRESIGN_EXPIRY_SECONDS: u64 = 3600;
/// AgentCore Memory actor used when the caller sends no user id.
pub const DEFAULT_ACTOR_ID: &str = "default";
/// What one user may commit per UTC day, across all their sessions.
pub const DEFAULT_USER_DAILY_CAP: Usdc = Usdc::from_atomic(10_000_000);
/// What the wallet may commit per UTC day, across all users.
pub const DEFAULT_WALLET_DAILY_CAP: Usdc = Usdc::from_atomic(100_000_000);
/// How long a quote (and so an approval of it) stays valid.
pub const DEFAULT_QUOTE_TTL_SECONDS: u64 = 300;

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
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `AGENT_HOST`, default `127.0.0.1`: a local agent is not reachable
    /// from the network. The Dockerfile sets `0.0.0.0` (AgentCore's contract).
    pub host: IpAddr,
    /// `AGENT_PORT`, default 8080.
    pub port: u16,
    /// `MAX_PROMPT_CHARS`: a longer prompt is refused with 413.
    pub max_prompt_chars: usize,
    /// `MAX_REQUEST_BYTES`: a larger body or WebSocket message is refused with 413.
    pub max_body_bytes: usize,
    /// `AGENT_ACTOR_ID`: the AgentCore Memory actor when the request carries
    /// no `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`.
    pub default_actor_id: String,
    /// `AGENT_WEB_UI` (`1`/`true`), default off: also serve the web chat page
    /// at `/` ([`crate::web`]); not part of the AgentCore contract.
    pub web_ui: bool,
    /// `AGENT_ALLOWED_ORIGINS` (comma-separated, e.g. `http://localhost:5173`):
    /// browser origins allowed besides the agent's own
    /// (`http://127.0.0.1:<port>`, `http://localhost:<port>`). Default none.
    pub allowed_origins: Vec<String>,
}

/// Where session owners and the daily-cap counters live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessConfig {
    /// `AGENT_STATE_TABLE` set: a DynamoDB table shared by all runtime sessions.
    DynamoDb { table: String },
    /// Otherwise: a file under `AGENT_STATE_DIR` (default `.local/agent-state`).
    Local { dir: PathBuf },
}

/// Where session state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionsConfig {
    /// `BEDROCK_AGENTCORE_MEMORY_ID` set: AgentCore Memory events.
    AgentCoreMemory { memory_id: String },
    /// Otherwise: JSON lines under `SESSIONS_DIR` (default `.local/sessions`).
    Local { dir: PathBuf },
}

#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// `NETWORK` (`base-sepolia` | `base`, v2 names accepted), default `base-sepolia`.
    pub network: Network,
    /// `RPC_URL`, default the network's public RPC (used for balances only;
    /// payments are settled by the seller's facilitator).
    pub rpc_url: String,
    /// `USDC_CONTRACT`, default the network's USDC.
    pub usdc_contract: Address,
    /// `SELLER_WALLET` (required): the only address the agent ever pays.
    /// A quote naming any other `payTo` is refused before signing.
    pub seller_wallet: Address,
}

/// Money limits. The model can change none of them; the caller may set the
/// session budget (up to `max_session_budget`) in the invocation payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyConfig {
    /// `SESSION_BUDGET_USDC`, default 1.00: cumulative spend limit per session.
    pub session_budget: Usdc,
    /// `AUTO_APPROVE_MAX_USDC`, default 0.10: an image up to this price is
    /// paid without asking the user (if the budget allows).
    pub auto_approve_max: Usdc,
    /// `MAX_SESSION_BUDGET_USDC`, default 10.00: the highest budget a caller
    /// may request per invocation (`session_budget_usdc`); above it, 400.
    pub max_session_budget: Usdc,
    /// `USER_DAILY_CAP_USDC`, default 10.00: what one user may commit per
    /// UTC day across all their sessions.
    pub user_daily_cap: Usdc,
    /// `WALLET_DAILY_CAP_USDC`, default 100.00: what the wallet may commit
    /// per UTC day across all users.
    pub wallet_daily_cap: Usdc,
    /// `QUOTE_TTL_SECONDS`, default 300: how long a quote that needs the
    /// user's approval, and the approval itself, stay valid.
    pub quote_ttl_seconds: u64,
    /// `MAX_PAYMENT_TIMEOUT_SECONDS`, default 600: the longest authorization
    /// window (the seller's `maxTimeoutSeconds`) the agent signs.
    pub max_payment_timeout_seconds: u64,
}

/// Who signs the EIP-3009 authorizations (`SIGNER`, default `local`).
#[derive(Clone, Debug)]
pub enum SignerConfig {
    /// `BUYER_PRIVATE_KEY` (or `BUYER_PRIVATE_KEY_SECRET_ARN`).
    Local { private_key: Secret },
    /// CDP server wallet: `CDP_API_KEY_ID`, `CDP_API_KEY_SECRET`,
    /// `CDP_WALLET_SECRET` (each secret or its `_SECRET_ARN`), `CDP_ACCOUNT_NAME`.
    /// `export = true` for `cdp-export` (key exported once, signed locally).
    Cdp {
        export: bool,
        api_key_id: String,
        api_key_secret: Secret,
        wallet_secret: Secret,
        account_name: String,
    },
    /// AWS KMS secp256k1 key: `KMS_KEY_ID`.
    Kms { key_id: String },
    /// Amazon Bedrock AgentCore Payments (`SIGNER=agentcore`): the wallet is
    /// a payment instrument AWS holds; `ProcessPayment` signs whole payments
    /// within a payment session's limit. `AGENTCORE_PAYMENT_MANAGER_ARN`,
    /// `AGENTCORE_PAYMENT_CONNECTOR_ID`, `AGENTCORE_PAYMENT_INSTRUMENT_ID`,
    /// `AGENTCORE_PAYMENT_SESSION_MINUTES` (default 60). No secret.
    AgentCore {
        payment_manager_arn: String,
        payment_connector_id: String,
        payment_instrument_id: String,
        session_minutes: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagesConfig {
    /// `IMAGES_BUCKET` (+ `IMAGES_PREFIX`, `PRESIGN_EXPIRY_SECONDS`): S3 with presigned URLs.
    S3 {
        bucket: String,
        prefix: String,
        presign_expiry_seconds: u64,
    },
    /// `IMAGES_DIR`: a local directory (file URLs).
    Dir { dir: PathBuf },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelProvider {
    /// The deterministic offline planner (no AWS); labelled offline in `model`.
    Offline,
    /// Amazon Bedrock Converse / ConverseStream.
    Bedrock,
}

#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// `MODEL_PROVIDER` (`offline` | `bedrock`), default `offline`.
    pub provider: ModelProvider,
    /// `MODEL_ID`, default Claude Sonnet 4.5 (US inference profile).
    pub model_id: String,
    /// `MAX_TURNS`, default 8: model calls per invocation before giving up.
    pub max_turns: u32,
    /// `MAX_TOKENS`, default 4096: the model's output limit per call.
    pub max_tokens: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (default; what CloudWatch and AgentCore expect).
    Json,
    /// Human-readable, for a terminal.
    Text,
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: when set, spans are exported over OTLP/HTTP.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`, default `x402-agent`.
    pub service_name: String,
    /// `LOG_FORMAT` (`json` | `text`), default `json`.
    pub log_format: LogFormat,
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
        let mut r = Reader {
            get: &get,
            problems: Vec::new(),
        };

        let server = ServerConfig {
            host: r.parse_or("AGENT_HOST", IpAddr::from([127, 0, 0, 1])),
            port: r.parse_or("AGENT_PORT", DEFAULT_PORT),
            max_prompt_chars: r.positive("MAX_PROMPT_CHARS", DEFAULT_MAX_PROMPT_CHARS),
            max_body_bytes: r.positive("MAX_REQUEST_BYTES", DEFAULT_MAX_BODY_BYTES),
            default_actor_id: r
                .opt("AGENT_ACTOR_ID")
                .unwrap_or_else(|| DEFAULT_ACTOR_ID.into()),
            web_ui: r.flag("AGENT_WEB_UI"),
            allowed_origins: r.origins("AGENT_ALLOWED_ORIGINS"),
        };
        if !crate::session::ids::is_valid_client_id(&server.default_actor_id) {
            r.problem("AGENT_ACTOR_ID must be 1-256 letters, digits, '-', '_', '.' or ':'");
        }

        let sessions = match r.opt("BEDROCK_AGENTCORE_MEMORY_ID") {
            Some(memory_id) => SessionsConfig::AgentCoreMemory { memory_id },
            None => SessionsConfig::Local {
                dir: r
                    .opt("SESSIONS_DIR")
                    .unwrap_or_else(|| ".local/sessions".into())
                    .into(),
            },
        };

        let access = match r.opt("AGENT_STATE_TABLE") {
            Some(table) => AccessConfig::DynamoDb { table },
            None => AccessConfig::Local {
                dir: r
                    .opt("AGENT_STATE_DIR")
                    .unwrap_or_else(|| ".local/agent-state".into())
                    .into(),
            },
        };

        let network = match r.opt("NETWORK") {
            None => Network::BaseSepolia,
            Some(s) => Network::from_any_name(&s).unwrap_or_else(|_| {
                r.problem(format!(
                    "NETWORK={s:?} is not a supported network (base-sepolia, base)"
                ));
                Network::BaseSepolia
            }),
        };
        let chain = ChainConfig {
            network,
            rpc_url: r
                .opt("RPC_URL")
                .unwrap_or_else(|| default_rpc_url(network).into()),
            usdc_contract: r.parse_or("USDC_CONTRACT", network.default_usdc()),
            seller_wallet: r.required_parse("SELLER_WALLET", "the only address the agent may pay"),
        };
        if chain.seller_wallet == Address::ZERO && r.opt("SELLER_WALLET").is_some() {
            r.problem("SELLER_WALLET must not be the zero address");
        }
        if !is_http_url(&chain.rpc_url) {
            r.problem("RPC_URL must be an http(s) URL");
        }

        let gateway_url = r.opt("GATEWAY_URL");
        if let Some(gateway_url) = &gateway_url
            && !is_http_url(gateway_url)
        {
            r.problem(format!(
                "GATEWAY_URL={gateway_url:?} must be an http(s) URL"
            ));
        }

        let money = MoneyConfig {
            session_budget: r.parse_or("SESSION_BUDGET_USDC", DEFAULT_SESSION_BUDGET),
            auto_approve_max: r.parse_or("AUTO_APPROVE_MAX_USDC", DEFAULT_AUTO_APPROVE_MAX),
            max_session_budget: r.parse_or("MAX_SESSION_BUDGET_USDC", DEFAULT_MAX_SESSION_BUDGET),
            user_daily_cap: r.parse_or("USER_DAILY_CAP_USDC", DEFAULT_USER_DAILY_CAP),
            wallet_daily_cap: r.parse_or("WALLET_DAILY_CAP_USDC", DEFAULT_WALLET_DAILY_CAP),
            quote_ttl_seconds: r.positive("QUOTE_TTL_SECONDS", DEFAULT_QUOTE_TTL_SECONDS),
            max_payment_timeout_seconds: r.parse_or(
                "MAX_PAYMENT_TIMEOUT_SECONDS",
                tools::policy::DEFAULT_MAX_TIMEOUT_SECONDS,
            ),
        };
        if money.session_budget > money.max_session_budget {
            r.problem(format!(
                "SESSION_BUDGET_USDC ({}) is above MAX_SESSION_BUDGET_USDC ({})",
                money.session_budget, money.max_session_budget
            ));
        }

        let signer = r.signer();
        let images = r.images();

        let model = ModelConfig {
            provider: match r.opt("MODEL_PROVIDER").as_deref() {
                None | Some("offline") => ModelProvider::Offline,
                Some("bedrock") => ModelProvider::Bedrock,
                Some(other) => {
                    r.problem(format!(
                        "MODEL_PROVIDER={other:?} must be `offline` or `bedrock`"
                    ));
                    ModelProvider::Offline
                }
            },
            model_id: r.opt("MODEL_ID").unwrap_or_else(|| DEFAULT_MODEL_ID.into()),
            max_turns: r.positive("MAX_TURNS", DEFAULT_MAX_TURNS),
            max_tokens: r.positive("MAX_TOKENS", DEFAULT_MAX_TOKENS),
        };

        let telemetry = TelemetryConfig {
            otlp_endpoint: r.opt("OTEL_EXPORTER_OTLP_ENDPOINT"),
            service_name: r
                .opt("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "x402-agent".into()),
            log_format: match r.opt("LOG_FORMAT").as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("text") => LogFormat::Text,
                Some(other) => {
                    r.problem(format!("LOG_FORMAT={other:?} must be `json` or `text`"));
                    LogFormat::Json
                }
            },
        };
        if let Some(ep) = &telemetry.otlp_endpoint
            && !is_http_url(ep)
        {
            r.problem("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL");
        }

        if r.problems.is_empty() {
            Ok(Config {
                server,
                sessions,
                access,
                chain,
                gateway_url: gateway_url.map(|u| u.trim_end_matches('/').to_owned()),
                money,
                signer,
                images,
                model,
                telemetry,
            })
        } else {
            Err(ConfigError(r.problems))
        }
    }
}

fn default_rpc_url(network: Network) -> &'static str {
    match network {
        Network::Base => "https://mainnet.base.org",
        Network::BaseSepolia => "https://sepolia.base.org",
    }
}

fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Collects problems instead of stopping at the first.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    fn opt(&self, key: &str) -> Option<String> {
        (self.get)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A switch: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; unset is off.
    fn flag(&mut self, key: &str) -> bool {
        match self.opt(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("0" | "false" | "no" | "off") => false,
            Some("1" | "true" | "yes" | "on") => true,
            Some(v) => {
                self.problem(format!("{key}={v:?} is invalid: use 1 or 0"));
                false
            }
        }
    }

    /// A comma-separated list of browser origins (`scheme://host[:port]`).
    fn origins(&mut self, key: &str) -> Vec<String> {
        let Some(list) = self.opt(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for o in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let o = o.trim_end_matches('/');
            match reqwest::Url::parse(o) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.has_host()
                        && u.path() == "/"
                        && u.query().is_none() =>
                {
                    out.push(u.origin().ascii_serialization());
                }
                _ => self.problem(format!(
                    "{key}: {o:?} is not an origin like https://chat.example.com or http://localhost:5173"
                )),
            }
        }
        out
    }

    fn required(&mut self, key: &str, what: &str) -> String {
        self.opt(key).unwrap_or_else(|| {
            self.problem(format!("{key} is required ({what})"));
            String::new()
        })
    }

    fn parse_or<T: FromStr>(&mut self, key: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.opt(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|e| {
                self.problem(format!("{key}={v:?} is invalid: {e}"));
                default
            }),
        }
    }

    fn required_parse<T: FromStr + Default>(&mut self, key: &str, what: &str) -> T
    where
        T::Err: fmt::Display,
    {
        if self.opt(key).is_none() {
            self.problem(format!("{key} is required ({what})"));
            return T::default();
        }
        self.parse_or(key, T::default())
    }

    fn positive<T: FromStr + PartialEq + Default + Copy>(&mut self, key: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        let v = self.parse_or(key, default);
        if v == T::default() {
            self.problem(format!("{key} must be greater than zero"));
        }
        v
    }

    /// A secret by value (`KEY`) or by Secrets Manager ARN (`KEY_SECRET_ARN`,
    /// or `KEY_ARN` when the name already ends in `_SECRET`: the CDK's
    /// `CDP_WALLET_SECRET_ARN`); exactly one.
    fn secret(&mut self, key: &str) -> Secret {
        let arn_key = if key.ends_with("_SECRET") {
            format!("{key}_ARN")
        } else {
            format!("{key}_SECRET_ARN")
        };
        match (self.opt(key), self.opt(&arn_key)) {
            (Some(v), None) => Secret::Value(v.into()),
            (None, Some(arn)) if arn.starts_with("arn:") => Secret::Arn(arn),
            (None, Some(_)) => {
                self.problem(format!("{arn_key} must be a Secrets Manager ARN (arn:...)"));
                Secret::Arn(String::new())
            }
            (Some(_), Some(_)) => {
                self.problem(format!("set {key} or {arn_key}, not both"));
                Secret::Arn(String::new())
            }
            (None, None) => {
                self.problem(format!("{key} (or {arn_key}) is required for SIGNER"));
                Secret::Arn(String::new())
            }
        }
    }

    fn signer(&mut self) -> SignerConfig {
        match self.opt("SIGNER").as_deref() {
            None | Some("local") => {
                let private_key = self.secret("BUYER_PRIVATE_KEY");
                if let Secret::Value(k) = &private_key {
                    let k = k.expose_secret();
                    let hex = k.strip_prefix("0x").unwrap_or(k);
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        // Never echo the value: it is a key, even when malformed.
                        self.problem(
                            "BUYER_PRIVATE_KEY must be 32 bytes of hex (0x + 64 hex digits)",
                        );
                    }
                }
                SignerConfig::Local { private_key }
            }
            Some(kind @ ("cdp" | "cdp-export")) => SignerConfig::Cdp {
                export: kind == "cdp-export",
                api_key_id: self.required("CDP_API_KEY_ID", "CDP API key id"),
                api_key_secret: self.secret("CDP_API_KEY_SECRET"),
                wallet_secret: self.secret("CDP_WALLET_SECRET"),
                account_name: self.required("CDP_ACCOUNT_NAME", "CDP EVM account name"),
            },
            Some("kms") => SignerConfig::Kms {
                key_id: self.required("KMS_KEY_ID", "KMS secp256k1 key id or ARN"),
            },
            Some("agentcore") => {
                let payment_manager_arn = self.required(
                    "AGENTCORE_PAYMENT_MANAGER_ARN",
                    "the AgentCore payment manager to pay through",
                );
                if !payment_manager_arn.is_empty() && !payment_manager_arn.starts_with("arn:") {
                    self.problem("AGENTCORE_PAYMENT_MANAGER_ARN must be an ARN (arn:...)");
                }
                let session_minutes: i32 = self.parse_or("AGENTCORE_PAYMENT_SESSION_MINUTES", 60);
                if !(1..=480).contains(&session_minutes) {
                    self.problem("AGENTCORE_PAYMENT_SESSION_MINUTES must be 1-480");
                }
                SignerConfig::AgentCore {
                    payment_manager_arn,
                    payment_connector_id: self.required(
                        "AGENTCORE_PAYMENT_CONNECTOR_ID",
                        "the payment connector of the instrument",
                    ),
                    payment_instrument_id: self.required(
                        "AGENTCORE_PAYMENT_INSTRUMENT_ID",
                        "the payment instrument (wallet) that pays",
                    ),
                    session_minutes,
                }
            }
            Some(other) => {
                self.problem(format!(
                    "SIGNER={other:?} must be local, cdp, cdp-export, kms or agentcore"
                ));
                SignerConfig::Kms {
                    key_id: String::new(),
                }
            }
        }
    }

    fn images(&mut self) -> ImagesConfig {
        let presign_expiry_seconds =
            self.positive("PRESIGN_EXPIRY_SECONDS", DEFAULT_PRESIGN_EXPIRY_SECONDS);
        // S3 presigned URLs cannot outlive 7 days.
        if presign_expiry_seconds > 7 * 24 * 3600 {
            self.problem("PRESIGN_EXPIRY_SECONDS must be at most 604800 (7 days)");
        }
        match (self.opt("IMAGES_BUCKET"), self.opt("IMAGES_DIR")) {
            (Some(bucket), None) => ImagesConfig::S3 {
                bucket,
                prefix: self
                    .opt("IMAGES_PREFIX")
                    .unwrap_or_else(|| "images/".into()),
                presign_expiry_seconds,
            },
            (None, Some(dir)) => ImagesConfig::Dir { dir: dir.into() },
            (Some(_), Some(_)) => {
                self.problem("set IMAGES_BUCKET (S3) or IMAGES_DIR (local directory), not both");
                ImagesConfig::Dir {
                    dir: PathBuf::new(),
                }
            }
            (None, None) => {
                self.problem(
                    "IMAGES_BUCKET (S3) or IMAGES_DIR (local directory) is required: where paid images are kept",
                );
                ImagesConfig::Dir {
                    dir: PathBuf::new(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "SELLER_WALLET",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            ),
            ("GATEWAY_URL", "http://127.0.0.1:13001/"),
            ("BUYER_PRIVATE_KEY", KEY),
            ("IMAGES_DIR", "/tmp/images"),
        ]
    }

    #[test]
    fn minimal_local_config_gets_documented_defaults() {
        let c = cfg(&minimal()).unwrap();
        assert_eq!(c.server.port, 8080);
        assert_eq!(
            c.server.host.to_string(),
            "127.0.0.1",
            "a local agent listens on loopback only"
        );
        assert!(c.server.allowed_origins.is_empty());
        assert_eq!(c.money.user_daily_cap.to_string(), "10.00");
        assert_eq!(c.money.wallet_daily_cap.to_string(), "100.00");
        assert_eq!(c.money.quote_ttl_seconds, 300);
        assert_eq!(
            c.access,
            AccessConfig::Local {
                dir: ".local/agent-state".into()
            }
        );
        assert!(!c.server.web_ui, "the web page is off unless asked for");
        assert_eq!(c.money.session_budget.to_string(), "1.00");
        assert_eq!(c.money.auto_approve_max, Usdc::from_atomic(100_000));
        assert_eq!(c.money.max_payment_timeout_seconds, 600);
        assert_eq!(c.chain.network, Network::BaseSepolia);
        assert_eq!(c.chain.usdc_contract, Network::BaseSepolia.default_usdc());
        assert_eq!(
            c.gateway_url.as_deref(),
            Some("http://127.0.0.1:13001"),
            "trailing slash trimmed"
        );
        assert_eq!(c.model.provider, ModelProvider::Offline);
        assert_eq!(c.model.model_id, DEFAULT_MODEL_ID);
        assert_eq!(
            c.sessions,
            SessionsConfig::Local {
                dir: ".local/sessions".into()
            }
        );
        assert!(matches!(
            c.signer,
            SignerConfig::Local {
                private_key: Secret::Value(_)
            }
        ));
    }

    #[test]
    fn the_web_page_is_a_switch() {
        let with = |v| {
            let mut e = minimal();
            e.push(("AGENT_WEB_UI", v));
            cfg(&e)
        };
        assert!(with("1").unwrap().server.web_ui);
        assert!(with("true").unwrap().server.web_ui);
        assert!(!with("0").unwrap().server.web_ui);
        assert!(with("maybe").is_err());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = cfg(&[
            ("AGENT_PORT", "eighty"),
            ("SESSION_BUDGET_USDC", "1.0000001"),
            ("AUTO_APPROVE_MAX_USDC", "-1"),
            ("MODEL_PROVIDER", "gpt"),
            ("SIGNER", "local"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "AGENT_PORT",
            "SESSION_BUDGET_USDC",
            "AUTO_APPROVE_MAX_USDC",
            "MODEL_PROVIDER",
            "SELLER_WALLET is required",
            "BUYER_PRIVATE_KEY (or BUYER_PRIVATE_KEY_SECRET_ARN) is required",
            "IMAGES_BUCKET (S3) or IMAGES_DIR",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert_eq!(err.0.len(), 7, "{text}");
    }

    #[test]
    fn a_malformed_key_is_refused_without_echoing_it() {
        let mut env = minimal();
        env.retain(|(k, _)| *k != "BUYER_PRIVATE_KEY");
        env.push(("BUYER_PRIVATE_KEY", "0xdeadbeefsecret"));
        let text = cfg(&env).unwrap_err().to_string();
        assert!(text.contains("BUYER_PRIVATE_KEY must be 32 bytes"));
        assert!(!text.contains("deadbeef"), "{text}");
        let ok = cfg(&minimal()).unwrap();
        assert!(
            !format!("{ok:?}").contains(&KEY[2..]),
            "Debug leaks the key"
        );
    }

    #[test]
    fn cdp_secrets_given_by_value_stay_out_of_debug() {
        let mut env = minimal();
        env.retain(|(k, _)| *k != "BUYER_PRIVATE_KEY");
        env.extend([
            ("SIGNER", "cdp-export"),
            ("CDP_API_KEY_ID", "key-id"),
            ("CDP_API_KEY_SECRET", "api-s3cr3t"),
            ("CDP_WALLET_SECRET", "wallet-s3cr3t"),
            ("CDP_ACCOUNT_NAME", "agent"),
        ]);
        let c = cfg(&env).unwrap();
        let SignerConfig::Cdp {
            export: true,
            api_key_secret: Secret::Value(api),
            wallet_secret: Secret::Value(wallet),
            ..
        } = &c.signer
        else {
            panic!("{:?}", c.signer)
        };
        assert_eq!(api.expose_secret(), "api-s3cr3t");
        assert_eq!(wallet.expose_secret(), "wallet-s3cr3t");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr3t"), "Debug leaks a secret: {debug}");
    }

    #[test]
    fn aws_shape_uses_memory_s3_and_secret_arns() {
        let c = cfg(&[
            (
                "SELLER_WALLET",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            ),
            ("GATEWAY_URL", "https://gw.example.com/prod"),
            ("NETWORK", "eip155:8453"),
            ("SIGNER", "cdp"),
            ("CDP_API_KEY_ID", "key-id"),
            (
                "CDP_API_KEY_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:a",
            ),
            (
                "CDP_WALLET_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:b",
            ),
            ("CDP_ACCOUNT_NAME", "agent"),
            ("IMAGES_BUCKET", "bucket"),
            ("BEDROCK_AGENTCORE_MEMORY_ID", "mem-123"),
            ("MODEL_PROVIDER", "bedrock"),
        ])
        .unwrap();
        assert_eq!(c.chain.network, Network::Base);
        assert_eq!(c.chain.usdc_contract, Network::Base.default_usdc());
        assert_eq!(
            c.sessions,
            SessionsConfig::AgentCoreMemory {
                memory_id: "mem-123".into()
            }
        );
        assert!(matches!(
            c.images,
            ImagesConfig::S3 { ref prefix, presign_expiry_seconds: 3600, .. } if prefix == "images/"
        ));
        assert!(matches!(c.signer, SignerConfig::Cdp { export: false, .. }));
        assert_eq!(c.model.provider, ModelProvider::Bedrock);
    }

    #[test]
    fn agentcore_payments_need_the_manager_connector_and_instrument() {
        let mut env = minimal();
        env.retain(|(k, _)| *k != "BUYER_PRIVATE_KEY");
        env.push(("SIGNER", "agentcore"));
        let text = cfg(&env).unwrap_err().to_string();
        for needle in [
            "AGENTCORE_PAYMENT_MANAGER_ARN is required",
            "AGENTCORE_PAYMENT_CONNECTOR_ID is required",
            "AGENTCORE_PAYMENT_INSTRUMENT_ID is required",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        env.extend([
            (
                "AGENTCORE_PAYMENT_MANAGER_ARN",
                "arn:aws:bedrock-agentcore:us-east-1:1:payment-manager/pm",
            ),
            ("AGENTCORE_PAYMENT_CONNECTOR_ID", "pc"),
            ("AGENTCORE_PAYMENT_INSTRUMENT_ID", "pi"),
        ]);
        let c = cfg(&env).unwrap();
        assert!(matches!(
            c.signer,
            SignerConfig::AgentCore { session_minutes: 60, ref payment_instrument_id, .. } if payment_instrument_id == "pi"
        ));
        env.push(("AGENTCORE_PAYMENT_SESSION_MINUTES", "0"));
        assert!(cfg(&env).unwrap_err().to_string().contains("1-480"));
    }

    #[test]
    fn conflicting_and_out_of_range_settings_are_refused() {
        let mut env = minimal();
        env.extend([
            ("IMAGES_BUCKET", "b"),
            ("BUYER_PRIVATE_KEY_SECRET_ARN", "arn:aws:secretsmanager:x"),
            ("SESSION_BUDGET_USDC", "20"),
            (
                "SELLER_WALLET",
                "0x0000000000000000000000000000000000000000",
            ),
            ("MAX_TURNS", "0"),
            ("GATEWAY_URL", "ftp://gateway"),
        ]);
        // later duplicates win in the map
        let text = cfg(&env).unwrap_err().to_string();
        for needle in [
            "not both",
            "BUYER_PRIVATE_KEY or BUYER_PRIVATE_KEY_SECRET_ARN, not both",
            "above MAX_SESSION_BUDGET_USDC",
            "zero address",
            "MAX_TURNS must be greater than zero",
            "GATEWAY_URL=\"ftp://gateway\" must be an http(s) URL",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn hosts_origins_caps_and_state_table() {
        let mut env = minimal();
        env.extend([
            ("AGENT_HOST", "0.0.0.0"),
            (
                "AGENT_ALLOWED_ORIGINS",
                "http://localhost:5173/, https://chat.example.com",
            ),
            ("USER_DAILY_CAP_USDC", "2.50"),
            ("WALLET_DAILY_CAP_USDC", "20"),
            ("AGENT_STATE_TABLE", "agent-state"),
        ]);
        let c = cfg(&env).unwrap();
        assert_eq!(c.server.host.to_string(), "0.0.0.0");
        assert_eq!(
            c.server.allowed_origins,
            ["http://localhost:5173", "https://chat.example.com"]
        );
        assert_eq!(c.money.user_daily_cap, Usdc::from_atomic(2_500_000));
        assert_eq!(c.money.wallet_daily_cap, Usdc::from_atomic(20_000_000));
        assert_eq!(
            c.access,
            AccessConfig::DynamoDb {
                table: "agent-state".into()
            }
        );
        let mut env = minimal();
        env.push(("AGENT_ALLOWED_ORIGINS", "*, http://x.example/path"));
        let text = cfg(&env).unwrap_err().to_string();
        assert!(text.contains("\"*\" is not an origin"), "{text}");
        assert!(
            text.contains("\"http://x.example/path\" is not an origin"),
            "{text}"
        );
    }
}
