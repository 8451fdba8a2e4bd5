//! Configuration from the environment, validated at start-up: every problem
//! is reported at once, and the gateway refuses to start half-configured.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use alloy::primitives::Address;
use plumbing::secrets::Secret;
use x402::{Network, Usdc};

use crate::{payment::Seller, pricing::ImagePrices};

#[derive(Clone, Debug)]
pub enum Backend {
    /// Deterministic local images and text.
    Local,
    /// Amazon Bedrock: Nova Canvas and Nova 2 Lite.
    Bedrock {
        canvas_model: String,
        lite_model: String,
    },
}

#[derive(Clone, Debug)]
pub enum Storage {
    /// Files under a directory (one gateway process).
    Dir(PathBuf),
    /// DynamoDB for payment state, S3 for results (all instances).
    Aws { table: String, bucket: String },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub seller: Seller,
    pub prices: ImagePrices,
    pub rpc_url: String,
    pub facilitator_url: String,
    /// `CDP_API_KEY_ID` + `CDP_API_KEY_SECRET`: use the CDP facilitator with
    /// a fresh JWT per request. The secret is never logged.
    pub cdp: Option<CdpKey>,
    pub backend: Backend,
    pub storage: Storage,
    /// Base URL clients use (`https://api.example.com/prod`); otherwise taken
    /// from the request's `Host`.
    pub public_url: Option<String>,
    /// How long a request may hold a payment before another may take it over.
    pub lease: Duration,
    pub generation_timeout: Duration,
    pub facilitator_timeout: Duration,
    /// How long payment records (and so the right to redeem a settled
    /// payment) are kept: `PAYMENT_RETENTION_DAYS`, at least as long as the
    /// results bucket keeps the content.
    pub retention: Duration,
    /// `SETTLEMENT_CONFIRMATIONS`: blocks on top of a reverted settlement
    /// before its payment may be released.
    pub confirmations: u64,
    /// `AWS_ENDPOINT_URL`: every AWS service at one local endpoint (moto);
    /// the SDK reads it itself, and S3 there needs path-style addressing.
    pub aws_endpoint_url: Option<String>,
}

/// `Debug` shows the id and an ARN, never a secret's value.
#[derive(Clone, Debug)]
pub struct CdpKey {
    pub id: String,
    /// The secret itself (`CDP_API_KEY_SECRET`) or, in AWS, the Secrets
    /// Manager ARN holding it (`CDP_API_KEY_SECRET_ARN`), read at start-up.
    pub secret: Secret,
}

/// The public testnet facilitator (no key needed).
pub const DEFAULT_FACILITATOR: &str = "https://x402.org/facilitator";
/// Coinbase's CDP facilitator (mainnet and testnet; needs an API key).
pub const CDP_FACILITATOR: &str = "https://api.cdp.coinbase.com/platform/v2/x402";

#[derive(Debug, thiserror::Error)]
#[error("the gateway is not configured correctly:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map), with
    /// [`plumbing::env`]'s rule: values trimmed, blank is unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = plumbing::env::Env::new(get);
        let get = |key: &str| env.opt(key);
        let mut problems = Vec::new();
        let parse =
            |key: &str, default: &str| -> String { get(key).unwrap_or_else(|| default.to_owned()) };
        #[allow(clippy::needless_pass_by_value)] // call sites read better with owned values
        fn num<T: FromStr>(problems: &mut Vec<String>, key: &str, v: String) -> Option<T> {
            v.trim()
                .parse()
                .map_err(|_| problems.push(format!("{key}={v:?} is not valid")))
                .ok()
        }

        let network: Option<Network> =
            num(&mut problems, "NETWORK", parse("NETWORK", "base-sepolia"));
        let network = network.unwrap_or(Network::BaseSepolia);
        let asset: Option<Address> = num(
            &mut problems,
            "USDC_CONTRACT",
            parse("USDC_CONTRACT", &network.default_usdc().to_checksum(None)),
        );
        let pay_to: Option<Address> = match get("SELLER_WALLET") {
            Some(v) => num(&mut problems, "SELLER_WALLET", v),
            None => {
                problems
                    .push("SELLER_WALLET is required: the address this gateway is paid to".into());
                None
            }
        };
        if pay_to == Some(Address::ZERO) {
            problems.push("SELLER_WALLET must not be the zero address".into());
        }
        let default_token_name = match network {
            Network::BaseSepolia => "USDC",
            Network::Base => "USD Coin",
        };
        let max_timeout_seconds: Option<u64> = num(
            &mut problems,
            "MAX_TIMEOUT_SECONDS",
            parse("MAX_TIMEOUT_SECONDS", "300"),
        );

        let mut prices = ImagePrices::default();
        for (key, slot) in [
            ("PRICE_1024_STANDARD", &mut prices.standard_1024),
            ("PRICE_1024_PREMIUM", &mut prices.premium_1024),
            ("PRICE_2048_STANDARD", &mut prices.standard_2048),
            ("PRICE_2048_PREMIUM", &mut prices.premium_2048),
        ] {
            if let Some(v) = get(key) {
                match v.parse::<Usdc>() {
                    Ok(p) if p > Usdc::ZERO => *slot = p,
                    _ => problems.push(format!(
                        "{key}={v:?} must be a positive USDC amount (e.g. 0.04)"
                    )),
                }
            }
        }

        let rpc_default = match network {
            Network::BaseSepolia => "https://sepolia.base.org",
            Network::Base => "https://mainnet.base.org",
        };
        let secret = match (get("CDP_API_KEY_SECRET"), get("CDP_API_KEY_SECRET_ARN")) {
            (Some(v), None) => Some(Secret::Value(v.into())),
            (None, Some(arn)) => Some(Secret::Arn(arn)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                problems.push("set CDP_API_KEY_SECRET or CDP_API_KEY_SECRET_ARN, not both".into());
                None
            }
        };
        let cdp = match (get("CDP_API_KEY_ID"), secret) {
            (Some(id), Some(secret)) => Some(CdpKey { id, secret }),
            (None, None) => None,
            _ => {
                problems.push(
                    "set both CDP_API_KEY_ID and CDP_API_KEY_SECRET (or its _ARN), or neither"
                        .into(),
                );
                None
            }
        };
        let facilitator_default = if cdp.is_some() {
            CDP_FACILITATOR
        } else {
            DEFAULT_FACILITATOR
        };

        let backend = match parse("GENERATION_BACKEND", "bedrock").as_str() {
            "local" => Backend::Local,
            "bedrock" => Backend::Bedrock {
                canvas_model: parse("NOVA_CANVAS_MODEL_ID", "amazon.nova-canvas-v1:0"),
                lite_model: parse("NOVA_LITE_MODEL_ID", "us.amazon.nova-2-lite-v1:0"),
            },
            other => {
                problems.push(format!(
                    "GENERATION_BACKEND={other:?} must be local or bedrock"
                ));
                Backend::Local
            }
        };
        let storage = match (
            get("PAYMENTS_TABLE"),
            get("RESULTS_BUCKET"),
            get("RESULTS_DIR"),
        ) {
            (Some(table), Some(bucket), None) => Storage::Aws { table, bucket },
            (None, None, Some(dir)) => Storage::Dir(dir.into()),
            (None, None, None) => Storage::Dir(".local/gateway-results".into()),
            _ => {
                problems.push(
                    "set PAYMENTS_TABLE and RESULTS_BUCKET (AWS), or RESULTS_DIR (local), not a mix"
                        .into(),
                );
                Storage::Dir(PathBuf::new())
            }
        };
        let secs = |problems: &mut Vec<String>, key: &str, default: &str| {
            num::<u64>(
                problems,
                key,
                get(key).unwrap_or_else(|| default.to_owned()),
            )
            .map(Duration::from_secs)
            .unwrap_or_default()
        };
        let lease = secs(&mut problems, "PAYMENT_LEASE_SECONDS", "120");
        let generation_timeout = secs(&mut problems, "GENERATION_TIMEOUT_SECONDS", "60");
        let facilitator_timeout = secs(&mut problems, "FACILITATOR_TIMEOUT_SECONDS", "30");
        let retention_days: Option<u64> = num(
            &mut problems,
            "PAYMENT_RETENTION_DAYS",
            parse("PAYMENT_RETENTION_DAYS", "30"),
        );
        if retention_days == Some(0) {
            problems.push("PAYMENT_RETENTION_DAYS must be at least 1".into());
        }
        let confirmations: Option<u64> = num(
            &mut problems,
            "SETTLEMENT_CONFIRMATIONS",
            parse("SETTLEMENT_CONFIRMATIONS", "0"),
        );
        let host: Option<IpAddr> = num(
            &mut problems,
            "GATEWAY_HOST",
            parse("GATEWAY_HOST", "127.0.0.1"),
        );
        let port: Option<u16> = num(&mut problems, "GATEWAY_PORT", parse("GATEWAY_PORT", "3001"));

        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Config {
            host: host.expect("checked"),
            port: port.expect("checked"),
            seller: Seller {
                network,
                asset: asset.expect("checked"),
                pay_to: pay_to.expect("checked"),
                token_name: parse("TOKEN_NAME", default_token_name),
                token_version: parse("TOKEN_VERSION", "2"),
                max_timeout_seconds: max_timeout_seconds.expect("checked"),
            },
            prices,
            rpc_url: parse("RPC_URL", rpc_default),
            facilitator_url: parse("FACILITATOR_URL", facilitator_default),
            cdp,
            backend,
            storage,
            public_url: get("PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            lease,
            generation_timeout,
            facilitator_timeout,
            retention: Duration::from_secs(retention_days.expect("checked") * 24 * 3600),
            confirmations: confirmations.expect("checked"),
            aws_endpoint_url: get("AWS_ENDPOINT_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn a_seller_wallet_is_all_that_is_required() {
        let c = cfg(&[(
            "SELLER_WALLET",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        )])
        .unwrap();
        assert_eq!(c.seller.network, Network::BaseSepolia);
        assert_eq!(c.seller.asset, x402::network::BASE_SEPOLIA_USDC);
        assert_eq!(c.facilitator_url, DEFAULT_FACILITATOR);
        assert!(matches!(c.backend, Backend::Bedrock { .. }));
        assert_eq!(c.prices, ImagePrices::default());
        assert_eq!(c.retention, crate::state::DEFAULT_RETENTION);
        assert_eq!(c.confirmations, 0);
        assert_eq!(c.aws_endpoint_url, None);
    }

    #[test]
    fn values_are_trimmed_and_blank_is_unset() {
        let c = cfg(&[
            (
                "SELLER_WALLET",
                " 0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n",
            ),
            ("PUBLIC_URL", "  "),
            ("AWS_ENDPOINT_URL", " http://127.0.0.1:15000 "),
        ])
        .unwrap();
        assert_eq!(c.public_url, None);
        assert_eq!(
            c.aws_endpoint_url.as_deref(),
            Some("http://127.0.0.1:15000")
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = cfg(&[
            ("NETWORK", "ethereum"),
            ("PRICE_1024_STANDARD", "0.0000001"),
            ("GENERATION_BACKEND", "gpu"),
            ("PAYMENTS_TABLE", "t"),
            ("CDP_API_KEY_ID", "id"),
        ])
        .unwrap_err();
        let text = e.to_string();
        for needle in [
            "NETWORK",
            "SELLER_WALLET",
            "PRICE_1024_STANDARD",
            "GENERATION_BACKEND",
            "PAYMENTS_TABLE",
            "CDP_API_KEY_SECRET",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn cdp_keys_choose_the_cdp_facilitator_and_stay_out_of_debug_output() {
        let c = cfg(&[
            (
                "SELLER_WALLET",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            ),
            ("CDP_API_KEY_ID", "key-id"),
            ("CDP_API_KEY_SECRET", "super-secret-value"),
        ])
        .unwrap();
        assert_eq!(c.facilitator_url, CDP_FACILITATOR);
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }
}
