//! `cargo xtask <command>`: see `cargo xtask --help`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::{
    Paths, setup,
    stack::{self, RunningStack, StackOptions},
};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project tasks: setup, the local stack, the demo, the test suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what this machine lacks (npm packages, the Python venv with moto).
    Setup,
    /// Run the local stack until Ctrl-C: Anvil + USDC, the x402 facilitator,
    /// moto, the gateway and the agent. Writes `.local/stack.env` when ready.
    Stack {
        /// Do not build or start the gateway and the agent.
        #[arg(long)]
        no_app: bool,
    },
    /// What CI runs: setup, fmt, clippy, build, stack, cargo test, cdk tests.
    Test,
    /// The main job: the whole stack up, the example conversation through the
    /// agent, one paid image (file written, transaction and balances printed).
    Demo {
        /// Afterwards, keep the stack up and open the terminal chat.
        #[arg(long)]
        chat: bool,
        /// Afterwards, keep the stack up and print the web chat page's URL
        /// (until Ctrl-C).
        #[arg(long, conflicts_with = "chat")]
        web: bool,
    },
    /// Benchmarks on the local stack (release build), ours beside the
    /// official x402 seller: prints the tables and writes BENCHMARKS.md.
    /// Installs `wrk` from Debian when it is missing.
    Bench {
        /// Sequential paid images through the agent for the latency split.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Concurrent sessions through the agent.
        #[arg(long, default_value_t = 100)]
        load: usize,
        /// Start-up samples per binary.
        #[arg(long, default_value_t = 10)]
        startups: usize,
        /// Runs per HTTP and paid figure (the median and range are reported).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 5)]
        http_secs: u64,
        /// Seconds of warm-up before each HTTP figure.
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
        /// Paid requests per run (at least 2 per concurrent client).
        #[arg(long, default_value_t = 16)]
        paid_requests: usize,
        /// Concurrencies of the paid comparison.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        /// Use the debug build (quicker to build, slower to run).
        #[arg(long)]
        debug: bool,
        /// Run the gateway and agent binaries already built (no `cargo build`).
        #[arg(long)]
        no_build: bool,
        /// Report file.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: std::path::PathBuf,
    },
    /// (Used by `bench`.) Replays a recorded response: the load client's
    /// ceiling is measured against it.
    #[command(hide = true)]
    BenchResponder {
        #[arg(long)]
        spec: std::path::PathBuf,
        #[arg(long)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let paths = Paths::discover();
    match cli.command {
        Cmd::Setup => setup::run(&paths).await,
        Cmd::Stack { no_app } => run_stack(&paths, no_app).await,
        Cmd::Demo { chat, web } => {
            let opts = xtask::demo::DemoOptions { chat, web };
            if web {
                // The demo waits for Ctrl-C itself and stops the stack gracefully.
                return xtask::demo::run(&paths, &opts).await;
            }
            tokio::select! {
                r = xtask::demo::run(&paths, &opts) => r,
                () = stack::shutdown_signal() => anyhow::bail!("interrupted"),
            }
        }
        Cmd::Bench {
            runs,
            load,
            startups,
            repeats,
            http_secs,
            warmup_secs,
            paid_requests,
            concurrency,
            debug,
            no_build,
            out,
        } => {
            let opts = xtask::bench::BenchOptions {
                runs,
                load,
                startups,
                repeats,
                http_secs,
                warmup_secs,
                paid_requests,
                concurrencies: concurrency,
                debug,
                no_build,
                out: paths.root.join(out),
            };
            tokio::select! {
                r = xtask::bench::run(&paths, &opts) => r,
                () = stack::shutdown_signal() => anyhow::bail!("interrupted"),
            }
        }
        Cmd::BenchResponder { spec, port } => xtask::bench::responder::serve(&spec, port).await,
        Cmd::Test => {
            tokio::select! {
                r = xtask::test::run(&paths) => r,
                () = stack::shutdown_signal() => {
                    // Dropping the test future kills its children and the stack.
                    anyhow::bail!("interrupted")
                }
            }
        }
    }
}

async fn run_stack(paths: &Paths, no_app: bool) -> Result<()> {
    setup::run(paths).await?;
    let opts = StackOptions {
        apps: !no_app,
        ..StackOptions::from_env()?
    };
    let stack = tokio::select! {
        s = RunningStack::up(paths, &opts) => s?,
        () = stack::shutdown_signal() => anyhow::bail!("interrupted while starting the stack"),
    };
    stack.print_summary();
    println!("Ctrl-C stops it.");
    let result = stack.supervise(stack::shutdown_signal()).await;
    eprintln!("xtask: local stack stopped");
    result
}
