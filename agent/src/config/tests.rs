//! The configuration's rules, read through a map.

use std::collections::HashMap;

use plumbing::secrets::ExposeSecret as _;
use x402::{Network, Usdc};

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

#[test]
fn local_endpoints_are_read_with_the_rest() {
    let c = cfg(&minimal()).unwrap();
    assert_eq!(c.endpoints.aws, None);
    assert!(!c.endpoints.s3_path_style());
    assert_eq!(c.endpoints.cdp_base_url, cdp_sdk::CDP_BASE_URL);
    let mut env = minimal();
    env.extend([
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:15000"),
        ("CDP_BASE_URL", "http://127.0.0.1:9999/platform"),
    ]);
    let c = cfg(&env).unwrap();
    assert!(c.endpoints.s3_path_style(), "moto serves buckets by path");
    assert_eq!(c.endpoints.cdp_base_url, "http://127.0.0.1:9999/platform");
}
