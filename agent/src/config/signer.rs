//! Who signs the EIP-3009 authorizations (`SIGNER`) and with which
//! credentials. Secrets may be given by value or, in AWS, as a Secrets
//! Manager ARN in `<NAME>_SECRET_ARN`; `wiring` resolves them at start-up
//! and hands the values to [`tools::signer`], whose `SignerSpec` holds what
//! one signer needs once the secrets are read (this holds the setting as
//! configured, and AgentCore Payments, which is not a typed-data signer).

use plumbing::{
    env::Env,
    secrets::{ExposeSecret as _, Secret},
};

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

pub(super) fn signer(env: &mut Env) -> SignerConfig {
    match env.opt("SIGNER").as_deref() {
        None | Some("local") => {
            let private_key = secret(env, "BUYER_PRIVATE_KEY");
            if let Secret::Value(k) = &private_key {
                let k = k.expose_secret();
                let hex = k.strip_prefix("0x").unwrap_or(k);
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    // Never echo the value: it is a key, even when malformed.
                    env.problem("BUYER_PRIVATE_KEY must be 32 bytes of hex (0x + 64 hex digits)");
                }
            }
            SignerConfig::Local { private_key }
        }
        Some(kind @ ("cdp" | "cdp-export")) => SignerConfig::Cdp {
            export: kind == "cdp-export",
            api_key_id: env.required("CDP_API_KEY_ID", "CDP API key id"),
            api_key_secret: secret(env, "CDP_API_KEY_SECRET"),
            wallet_secret: secret(env, "CDP_WALLET_SECRET"),
            account_name: env.required("CDP_ACCOUNT_NAME", "CDP EVM account name"),
        },
        Some("kms") => SignerConfig::Kms {
            key_id: env.required("KMS_KEY_ID", "KMS secp256k1 key id or ARN"),
        },
        Some("agentcore") => {
            let payment_manager_arn = env.required(
                "AGENTCORE_PAYMENT_MANAGER_ARN",
                "the AgentCore payment manager to pay through",
            );
            if !payment_manager_arn.is_empty() && !payment_manager_arn.starts_with("arn:") {
                env.problem("AGENTCORE_PAYMENT_MANAGER_ARN must be an ARN (arn:...)");
            }
            let session_minutes: i32 = env.parse_or("AGENTCORE_PAYMENT_SESSION_MINUTES", 60);
            if !(1..=480).contains(&session_minutes) {
                env.problem("AGENTCORE_PAYMENT_SESSION_MINUTES must be 1-480");
            }
            SignerConfig::AgentCore {
                payment_manager_arn,
                payment_connector_id: env.required(
                    "AGENTCORE_PAYMENT_CONNECTOR_ID",
                    "the payment connector of the instrument",
                ),
                payment_instrument_id: env.required(
                    "AGENTCORE_PAYMENT_INSTRUMENT_ID",
                    "the payment instrument (wallet) that pays",
                ),
                session_minutes,
            }
        }
        Some(other) => {
            env.problem(format!(
                "SIGNER={other:?} must be local, cdp, cdp-export, kms or agentcore"
            ));
            SignerConfig::Kms {
                key_id: String::new(),
            }
        }
    }
}

/// A secret by value (`KEY`) or by Secrets Manager ARN (`KEY_SECRET_ARN`,
/// or `KEY_ARN` when the name already ends in `_SECRET`: the CDK's
/// `CDP_WALLET_SECRET_ARN`); exactly one.
fn secret(env: &mut Env, key: &str) -> Secret {
    let arn_key = if key.ends_with("_SECRET") {
        format!("{key}_ARN")
    } else {
        format!("{key}_SECRET_ARN")
    };
    match (env.opt(key), env.opt(&arn_key)) {
        (Some(v), None) => Secret::Value(v.into()),
        (None, Some(arn)) if arn.starts_with("arn:") => Secret::Arn(arn),
        (None, Some(_)) => {
            env.problem(format!("{arn_key} must be a Secrets Manager ARN (arn:...)"));
            Secret::Arn(String::new())
        }
        (Some(_), Some(_)) => {
            env.problem(format!("set {key} or {arn_key}, not both"));
            Secret::Arn(String::new())
        }
        (None, None) => {
            env.problem(format!("{key} (or {arn_key}) is required for SIGNER"));
            Secret::Arn(String::new())
        }
    }
}
