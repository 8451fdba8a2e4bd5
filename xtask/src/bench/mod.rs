//! `cargo xtask bench`: figures for the whole product on the local stack,
//! beside the peers a user would pick instead, printed and written to
//! `BENCHMARKS.md`.
//!
//! Everything runs the release build (what ships) against the real local
//! peers, and every figure has a same-run baseline, so the numbers say
//! something on any machine:
//!
//! - **HTTP path** (`peers`): our gateway and the official `@x402/express`
//!   seller, each pinned to one core with `wrk` on the other: `/health`
//!   (the server's own ceiling) and the unpaid request -> 402.
//! - **paid requests** (`peers`, `paid`): both sellers paid by the official
//!   x402 client at concurrency 1, 8, 32, with the facilitator's and the
//!   chain's share and what bounds the figure.
//! - **the client's own ceiling** beside every server figure (`responder`).
//! - **the proof-of-payment lookup** (`proof_ms` on the gateway's log).
//! - **the agent** (`agent`): start-up to a healthy `/ping`, idle memory,
//!   one paid image split by timing proxies at concurrency 1, and N
//!   sessions at once with the agent's memory sampled; model calls and
//!   tokens per paid image.
//!
//! Files: `measure.rs` (one run, every figure in order), `services.rs` (the
//! facilitator, the official seller and the responder the bench starts
//! itself), `wrk.rs` (the HTTP client, its install and its output), `paid.rs`
//! (the paying client), `responder.rs` (the client-ceiling stand-in),
//! `timing_proxy.rs`, `stats.rs`, `report/` (the tables, pure).

mod agent;
mod cores;
mod measure;
mod paid;
mod peers;
mod report;
pub mod responder;
mod services;
mod stats;
mod timing_proxy;
mod wrk;

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

pub use self::services::responder_exe;
use self::{measure::measure, services::build_responder};
use crate::{
    Paths, setup,
    stack::{self, RunningStack, StackOptions},
};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sequential paid images through the agent for the latency split.
    pub runs: usize,
    /// Concurrent sessions through the agent.
    pub load: usize,
    /// Start-up samples.
    pub startups: usize,
    /// Runs per HTTP and paid figure (median and range reported).
    pub repeats: usize,
    /// Seconds per `wrk` run, and of warm-up before each figure.
    pub http_secs: u64,
    pub warmup_secs: u64,
    /// Paid requests per run (at least 2 per concurrent client).
    pub paid_requests: usize,
    /// Concurrencies of the paid comparison.
    pub concurrencies: Vec<usize>,
    /// Run the debug build instead of release (quicker to build; slower).
    pub debug: bool,
    /// Run the binaries already built, without `cargo build` first.
    pub no_build: bool,
    /// Where to write the report.
    pub out: PathBuf,
}

pub async fn run(paths: &Paths, opts: &BenchOptions) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    ensure!(
        cores >= 2,
        "the bench pins the server and its client to different cores; this machine has {cores}"
    );
    setup::run(paths).await?;
    let wrk = tokio::task::spawn_blocking(wrk::ensure_installed).await??;
    let release = !opts.debug;
    println!(
        "bench: {} the apps ({})",
        if opts.no_build {
            "not building"
        } else {
            "building"
        },
        if release { "release" } else { "debug" }
    );
    if !opts.no_build {
        stack::build_apps(paths, release, false).await?;
        if release {
            build_responder(paths).await?;
        }
    }
    let mut stack = RunningStack::up(
        paths,
        &StackOptions {
            build_apps: false,
            release,
            ..StackOptions::from_env()?
        },
    )
    .await?;
    let result = measure(paths, &mut stack, opts, wrk).await;
    stack.down().await;
    let report = result?;
    println!("\n{report}");
    std::fs::write(&opts.out, &report)
        .with_context(|| format!("writing {}", opts.out.display()))?;
    println!("bench: wrote {}", opts.out.display());
    Ok(())
}
