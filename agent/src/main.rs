//! The `agent` binary.
//!
//! - `agent` / `agent serve`: the AgentCore Runtime container. Reads the
//!   environment (and `.env`), refuses to start on any configuration problem
//!   (all listed), serves `/invocations`, `/ping`, `/ws` on
//!   `AGENT_HOST:AGENT_PORT` (default `0.0.0.0:8080`). On SIGTERM or Ctrl-C it
//!   stops accepting requests and waits for turns in flight to finish, so a
//!   payment is never cut in half by a shutdown.
//! - `agent chat [--url URL]`: a terminal chat client for a running agent.

use std::{process::ExitCode, time::Duration};

use agent::{
    chat::{self, ChatOptions},
    config::Config,
    observability, server, wiring,
};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// How long a shutdown waits for turns in flight (AgentCore allows a
/// stopping session some seconds before it is killed).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "x402 paying agent for Amazon Bedrock AgentCore Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the AgentCore Runtime contract (the default).
    Serve,
    /// Chat with a running agent in the terminal.
    Chat {
        /// Base URL of the agent.
        #[arg(long, env = "AGENT_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Continue this session instead of starting a new one.
        #[arg(long)]
        session: Option<String>,
        /// Session budget in USDC (e.g. 2.50), set by you, never by the model.
        #[arg(long)]
        budget: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `.env` is optional; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Chat {
            url,
            session,
            budget,
        } => chat::run(ChatOptions {
            url,
            session_id: session,
            session_budget_usdc: budget,
        })
        .await
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let telemetry = observability::init(&config.telemetry)?;
    let state = wiring::build(&config).await?;
    let addr = std::net::SocketAddr::new(config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        %addr,
        model_provider = ?config.model.provider,
        model_id = %config.model.model_id,
        network = %config.chain.network.v1_name(),
        seller = %config.chain.seller_wallet,
        session_budget = %config.money.session_budget,
        auto_approve_max = %config.money.auto_approve_max,
        gateway = config.gateway_url.as_deref().unwrap_or("none"),
        sessions = ?config.sessions,
        "agent listening"
    );
    if config.gateway_url.is_none() {
        tracing::warn!("GATEWAY_URL is unset: the agent will chat but cannot buy images");
    }
    server::run(listener, state, plumbing::shutdown_signal(), SHUTDOWN_GRACE)
        .await
        .context("server failed")?;
    // Flushing exports over a blocking HTTP client: off the async threads.
    let _ = tokio::task::spawn_blocking(move || {
        telemetry.flush();
        drop(telemetry);
    })
    .await;
    Ok(())
}
