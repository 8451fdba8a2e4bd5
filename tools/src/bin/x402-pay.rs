//! `x402-pay`: curl with payments. Pays an x402-protected URL with the
//! configured signer, within a cap, and prints the body (stdout) and the
//! receipt (stderr, JSON).
//!
//! ```sh
//! x402-pay pay --max 0.05 -d '{"prompt":"a red bicycle"}' http://127.0.0.1:13001/generate_image
//! ```
//!
//! Configuration from the environment (or `.env`): `SIGNER`
//! (`local` | `cdp` | `cdp-export` | `kms`) with its credentials
//! (`BUYER_PRIVATE_KEY`; `CDP_API_KEY_ID`, `CDP_API_KEY_SECRET`,
//! `CDP_WALLET_SECRET`, `CDP_ACCOUNT_NAME`; `KMS_KEY_ID`), `NETWORK`,
//! `USDC_CONTRACT`, `MAX_PAYMENT_TIMEOUT_SECONDS` (the longest authorization
//! a seller may ask for, default 600), and the allowed payees: `SELLER_WALLET`
//! and/or `--pay-to`.

use std::{io::Write as _, process::ExitCode};

use alloy::primitives::Address;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tools::{
    client::{ClientError, PaidRequest, X402Client},
    policy::{self, Limits, PaymentPolicy},
    signer::{self, CdpConfig, SignerSpec},
};
use x402::{Network, Usdc};

#[derive(Parser)]
#[command(
    name = "x402-pay",
    about = "curl with payments: pay x402-protected URLs within a cap"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Request URL, paying what it asks if that is within --max.
    Pay {
        /// The most to pay for this request, in USDC.
        #[arg(long, default_value = "0.10")]
        max: Usdc,
        /// Request body (sent with POST unless -X says otherwise).
        #[arg(short = 'd', long = "data")]
        data: Option<String>,
        /// Extra header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// HTTP method (default GET, or POST with -d).
        #[arg(short = 'X', long = "request")]
        method: Option<String>,
        /// An address that may be paid (repeatable; default SELLER_WALLET).
        #[arg(long = "pay-to")]
        pay_to: Vec<Address>,
        url: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("x402-pay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A setting, with the workspace's one rule (trimmed; blank is unset).
fn env(key: &str) -> Option<String> {
    plumbing::env::Env::process().opt(key)
}

fn need(key: &str) -> Result<String> {
    env(key).with_context(|| {
        format!(
            "{key} is required for SIGNER={}",
            env("SIGNER").unwrap_or_else(|| "local".into())
        )
    })
}

async fn signer_config() -> Result<SignerSpec> {
    let cdp = || -> Result<CdpConfig> {
        Ok(CdpConfig {
            api_key_id: need("CDP_API_KEY_ID")?,
            api_key_secret: need("CDP_API_KEY_SECRET")?.into(),
            wallet_secret: need("CDP_WALLET_SECRET")?.into(),
            account_name: env("CDP_ACCOUNT_NAME").unwrap_or_else(|| "x402-agent".into()),
            base_url: env("CDP_BASE_URL").unwrap_or_else(|| cdp_sdk::CDP_BASE_URL.into()),
        })
    };
    Ok(match env("SIGNER").as_deref().unwrap_or("local") {
        "local" => SignerSpec::Local(need("BUYER_PRIVATE_KEY")?.into()),
        "cdp" => SignerSpec::Cdp(cdp()?),
        "cdp-export" => SignerSpec::CdpExport(cdp()?),
        "kms" => SignerSpec::Kms {
            key_id: need("KMS_KEY_ID")?,
            aws: Box::new(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
        },
        other => bail!("SIGNER={other:?} must be local, cdp, cdp-export or kms"),
    })
}

async fn run(cli: Cli) -> Result<()> {
    let Command::Pay {
        max,
        data,
        headers,
        method,
        mut pay_to,
        url,
    } = cli.command;
    let network: Network = env("NETWORK")
        .unwrap_or_else(|| "base-sepolia".into())
        .parse()?;
    let asset: Address = match env("USDC_CONTRACT") {
        Some(a) => a.parse().context("USDC_CONTRACT")?,
        None => network.default_usdc(),
    };
    if let Some(s) = env("SELLER_WALLET") {
        pay_to.push(s.parse().context("SELLER_WALLET")?);
    }
    if pay_to.is_empty() {
        bail!("no allowed payee: set SELLER_WALLET or pass --pay-to ADDRESS");
    }
    let max_timeout_seconds = match env("MAX_PAYMENT_TIMEOUT_SECONDS") {
        Some(v) => v.parse().context("MAX_PAYMENT_TIMEOUT_SECONDS")?,
        None => policy::DEFAULT_MAX_TIMEOUT_SECONDS,
    };
    let signer = signer::from_config(signer_config().await?).await?;
    let client = X402Client::new(
        signer,
        PaymentPolicy {
            max_timeout_seconds,
            ..PaymentPolicy::new(network, asset, pay_to)
        },
    );
    let method = method
        .unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.into())
        .parse()
        .context("-X")?;
    let mut req_headers = Vec::new();
    if data.is_some() {
        req_headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: expected `Name: value`"))?;
        req_headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let req = PaidRequest {
        method,
        url,
        headers: req_headers,
        body: data.map(Into::into),
    };
    let resp = match client.pay(&req, &Limits::single(max)).await {
        Ok(r) => r,
        Err(ClientError::Policy(p)) => bail!("refused, nothing was signed or paid: {p}"),
        Err(e) => return Err(e.into()),
    };
    std::io::stdout().write_all(&resp.body)?;
    if !resp.body.ends_with(b"\n") {
        println!();
    }
    let receipt = serde_json::json!({
        "status": resp.status.as_u16(),
        "receipt": resp.receipt,
    });
    eprintln!("{receipt}");
    if !resp.status.is_success() {
        bail!("the seller answered {}", resp.status);
    }
    Ok(())
}
