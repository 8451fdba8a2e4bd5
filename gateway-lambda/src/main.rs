//! The gateway binary: an AWS Lambda behind API Gateway when the Lambda
//! runtime starts it (`AWS_LAMBDA_RUNTIME_API` is set), a plain HTTP server
//! otherwise. Same router either way.

use std::{process::ExitCode, sync::Arc};

use gateway_lambda::{app, config::Config, wiring};

#[tokio::main]
async fn main() -> ExitCode {
    plumbing::init_json_logs(if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        plumbing::LogSink::CloudWatch
    } else {
        plumbing::LogSink::Local
    });
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cfg = Config::from_env()?;
    let state = Arc::new(wiring::state(&cfg).await?);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_http::run(app(state))
            .await
            .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))?;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind((cfg.host, cfg.port)).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        network = cfg.seller.network.caip2(),
        pay_to = %cfg.seller.pay_to.to_checksum(None),
        facilitator = %cfg.facilitator_url,
        "gateway listening"
    );
    // Ctrl-C or SIGTERM: stop accepting; paid flows in flight finish.
    gateway_lambda::run(listener, state, plumbing::shutdown_signal()).await?;
    Ok(())
}
