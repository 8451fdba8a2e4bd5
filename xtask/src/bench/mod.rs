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
//! Files: `wrk.rs` (the HTTP client, its install and its output), `paid.rs`
//! (the paying client), `responder.rs` (the client-ceiling stand-in),
//! `timing_proxy.rs`, `stats.rs`, `report.rs` (the tables, pure).

mod agent;
mod cores;
mod paid;
mod peers;
mod report;
pub mod responder;
mod stats;
mod timing_proxy;
mod wrk;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::json;
use timing_proxy::TimingProxy;

use self::{
    agent::{LoadFigures, Split, Usage},
    peers::{Ctx, Endpoint, Proxies, SERVER_CPUS, Seller},
    report::{Meta, ProofFigure, Report, StartupFigures},
    stats::percentile,
};
use crate::{
    Paths, accounts,
    chain::Rpc,
    proc::{Probe, Service, ServiceSpec, free_port},
    setup,
    stack::{self, AGENT, GATEWAY, RunningStack, StackOptions},
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

/// Our own facilitator for the bench, with its JSON-RPC behind `rpc` so the
/// chain's share of a payment is measured. (The stack's facilitator, with
/// the same key, stays idle meanwhile: one settler at a time.)
async fn start_facilitator(paths: &Paths, rpc: &str) -> Result<(Service, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let spec = ServiceSpec {
        name: "bench-facilitator".into(),
        marker: "facilitator.mjs".into(),
        program: "node".into(),
        args: vec![paths.facilitator_script().display().to_string()],
        cwd: paths.node_project(),
        env: vec![
            ("RPC_URL".into(), rpc.into()),
            ("PORT".into(), port.to_string()),
            ("HOST".into(), "127.0.0.1".into()),
            ("CHAIN_ID".into(), accounts::CHAIN_ID.to_string()),
            (
                "FACILITATOR_PRIVATE_KEY".into(),
                accounts::FACILITATOR.private_key.into(),
            ),
        ],
        env_remove: vec![],
        port,
        port_env: "-".into(),
        probe: Probe::HttpOk {
            url: format!("{url}/supported"),
        },
        ready_timeout: Duration::from_secs(60),
    };
    Ok((start_service(paths, &spec).await?, url))
}

/// The official x402 seller (`@x402/express`, x402 v2) on `facilitator`.
async fn start_official_seller(paths: &Paths, facilitator: &str) -> Result<(Service, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let spec = ServiceSpec {
        name: "bench-official-seller".into(),
        marker: "express-seller.mjs".into(),
        program: "node".into(),
        args: vec!["interop/express-seller.mjs".into()],
        cwd: paths.node_project(),
        env: vec![
            ("VERSION".into(), "v2".into()),
            ("FACILITATOR_URL".into(), facilitator.into()),
            ("PAY_TO".into(), accounts::SELLER.address.into()),
            ("PORT".into(), port.to_string()),
        ],
        env_remove: vec![],
        port,
        port_env: "-".into(),
        probe: Probe::HttpOk {
            url: format!("{url}/health"),
        },
        ready_timeout: Duration::from_secs(60),
    };
    Ok((start_service(paths, &spec).await?, url))
}

async fn start_service(paths: &Paths, spec: &ServiceSpec) -> Result<Service> {
    let mut service = Service::spawn(spec, &paths.logs())?;
    if let Some(status) = service.wait_ready(&spec.probe, spec.ready_timeout).await? {
        bail!("{} exited at once ({status})", spec.name);
    }
    Ok(service)
}

#[allow(clippy::too_many_lines)]
async fn measure(
    paths: &Paths,
    stack: &mut RunningStack,
    opts: &BenchOptions,
    wrk_version: String,
) -> Result<String> {
    let get = |k: &str| {
        stack
            .get(k)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{k} missing from the stack (did the gateway and agent start?)"))
    };
    get("GATEWAY_URL")?;
    get("AGENT_URL")?;
    let rpc_url = get("RPC_URL")?;
    let rpc = Rpc::new(rpc_url.clone());
    let usdc = get("USDC_CONTRACT")?;
    let buyer = get("BUYER_ADDRESS")?;
    let seller = get("SELLER_WALLET")?;
    let buyer_key = get("BUYER_PRIVATE_KEY")?;
    let bench_dir = paths.local().join("bench");
    let _ = std::fs::remove_dir_all(&bench_dir);
    std::fs::create_dir_all(&bench_dir)?;
    let dir = |name: &str| bench_dir.join(name).display().to_string();
    let mut r = Report {
        meta: Meta {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"], &paths.root),
            command: std::iter::once("cargo xtask".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
            commit: command_line("git", &["rev-parse", "--short", "HEAD"], &paths.root),
            build: if opts.debug { "debug" } else { "release" },
            machine: machine(),
            wrk: wrk_version,
            node: command_line("node", &["--version"], &paths.root),
            load_before: loadavg(),
            load_after: String::new(),
            http_secs: opts.http_secs,
            runs: opts.repeats,
            warmup_secs: opts.warmup_secs,
            paid_requests: opts.paid_requests,
            nice: None,
        },
        ..Report::default()
    };

    // Our own facilitator behind two timing proxies (its RPC, and itself).
    let rpc_proxy = TimingProxy::start(&rpc_url).await?;
    let (mut facilitator_service, facilitator) = start_facilitator(paths, &rpc_proxy.url()).await?;
    let fac_proxy = TimingProxy::start(&facilitator).await?;
    // The paid figures wait on these two: same priority as the servers.
    let mut prioritized = peers::prioritize(facilitator_service.pid());
    if let Some(pid) = stack.service_pid("anvil") {
        prioritized &= peers::prioritize(pid);
    }
    r.meta.nice = prioritized.then_some(peers::NICE);

    // A gateway of our own on the server core, and the official seller.
    let gw_port = free_port()?;
    let gateway = stack
        .start_instance(
            &GATEWAY,
            "bench-gateway",
            gw_port,
            &[
                ("GATEWAY_PORT", &gw_port.to_string()),
                ("FACILITATOR_URL", &fac_proxy.url()),
                ("RESULTS_DIR", &dir("results")),
                // Its one JSON line per request carries the `*_ms` timings.
                ("RUST_LOG", "warn,gateway::request=info"),
            ],
        )
        .await?;
    let gateway_log = paths.logs().join("bench-gateway.log");
    peers::pin(
        stack
            .service_pid("bench-gateway")
            .ok_or_else(|| anyhow!("bench-gateway has no pid"))?,
        SERVER_CPUS,
    )?;
    let (mut official_service, official) = start_official_seller(paths, &fac_proxy.url()).await?;
    peers::pin(official_service.pid(), SERVER_CPUS)?;

    // Two agents of our own: one through a timing proxy, one that asks consent.
    let gw_proxy = TimingProxy::start(&gateway).await?;
    let agent_port = free_port()?;
    let agent = stack
        .start_instance(
            &AGENT,
            "bench-agent",
            agent_port,
            &[
                ("AGENT_PORT", &agent_port.to_string()),
                ("GATEWAY_URL", &gw_proxy.url()),
                ("SESSIONS_DIR", &dir("sessions")),
                ("IMAGES_DIR", &dir("images")),
                ("RUST_LOG", "warn"),
            ],
        )
        .await?;
    let agent_pid = stack
        .service_pid("bench-agent")
        .ok_or_else(|| anyhow!("bench-agent has no pid"))?;
    let consent_port = free_port()?;
    let consent_agent = stack
        .start_instance(
            &AGENT,
            "bench-agent-consent",
            consent_port,
            &[
                ("AGENT_PORT", &consent_port.to_string()),
                ("GATEWAY_URL", &gateway),
                ("AUTO_APPROVE_MAX_USDC", "0"),
                ("SESSIONS_DIR", &dir("sessions-consent")),
                ("IMAGES_DIR", &dir("images-consent")),
                ("RUST_LOG", "warn"),
            ],
        )
        .await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(512)
        .build()?;

    // --- ours beside the official seller: the HTTP path ------------------
    let ctx = Ctx {
        paths,
        dir: bench_dir.clone(),
        http: http.clone(),
        secs: opts.http_secs,
        runs: opts.repeats,
        warmup_secs: opts.warmup_secs,
        buyer_key,
    };
    let sellers = [
        Seller {
            name: "ours (gateway)",
            base: gateway.clone(),
            health_path: "/health",
            paid_path: "/generate_image",
            paid_body: json!({"prompt": "a lighthouse at dawn, for the benchmark"}).to_string(),
            log: Some(gateway_log.clone()),
        },
        Seller {
            name: "official (@x402/express)",
            base: official.clone(),
            health_path: "/health",
            paid_path: "/paid",
            paid_body: json!({"prompt": "a lighthouse at dawn, for the benchmark"}).to_string(),
            log: None,
        },
    ];
    for s in &sellers {
        for e in [Endpoint::Health, Endpoint::Quote] {
            println!(
                "bench: {} {e:?} ({} x {} s, wrk)",
                s.name, opts.repeats, opts.http_secs
            );
            r.http.push(peers::http_row(&ctx, s, e).await?);
        }
    }

    // --- paid requests end to end ---------------------------------------
    let proxies = Proxies {
        facilitator: &fac_proxy,
        rpc: &rpc_proxy,
    };
    for s in &sellers {
        println!(
            "bench: {} paid, concurrency {:?}",
            s.name, opts.concurrencies
        );
        r.paid.extend(
            peers::paid_rows(&ctx, s, &proxies, &opts.concurrencies, opts.paid_requests).await?,
        );
    }

    // --- start-up, memory, size ------------------------------------------
    println!("bench: start-up ({} samples each)", opts.startups);
    let noop = agent::startup_noop(opts.startups).await?;
    let agent_env = with(
        stack.app_env(&AGENT),
        &[
            ("GATEWAY_URL", &gateway),
            ("SESSIONS_DIR", &dir("sessions-startup")),
            ("RUST_LOG", "warn"),
        ],
    );
    let gateway_env = with(
        stack.app_env(&GATEWAY),
        &[
            ("RESULTS_DIR", &dir("results-startup")),
            ("RUST_LOG", "warn"),
        ],
    );
    let agent_start =
        agent::startup(stack, &AGENT, "AGENT_PORT", &agent_env, opts.startups).await?;
    let gateway_start =
        agent::startup(stack, &GATEWAY, "GATEWAY_PORT", &gateway_env, opts.startups).await?;
    r.startup = Some(StartupFigures {
        noop,
        agent: agent_start,
        gateway: gateway_start,
        agent_size: std::fs::metadata(stack.app_program(&AGENT))?.len(),
        gateway_size: std::fs::metadata(stack.app_program(&GATEWAY))?.len(),
    });

    // --- one paid image through the agent, split ------------------------
    println!(
        "bench: {} paid images through the agent, one at a time",
        opts.runs
    );
    fac_proxy.take();
    gw_proxy.take();
    let mut splits = Vec::new();
    for i in 0..opts.runs {
        let session = agent::session_id("split", i);
        let prompt = format!("Generate an image of a lighthouse on a cliff at dawn, study {i}");
        let started = Instant::now();
        let out = agent::invoke(&http, &agent, &session, &prompt).await?;
        let total = started.elapsed();
        ensure!(agent::paid(&out), "run {i}: no payment in {out}");
        let mut split = Split::from(total, &gw_proxy.take(), &fac_proxy.take())?;
        split.generation = agent::last_generation(&gateway_log)?;
        splits.push(split);
    }
    r.split = Some(splits);

    // --- model calls and tokens ------------------------------------------
    println!("bench: model calls per paid image");
    let s = agent::session_id("usage", 0);
    let out = agent::invoke(
        &http,
        &agent,
        &s,
        "Generate an image of a red bicycle in the rain",
    )
    .await?;
    ensure!(agent::paid(&out), "within-budget path did not pay: {out}");
    let within = agent::usage(&out);
    let s = agent::session_id("usage-consent", 0);
    let first = agent::invoke(
        &http,
        &consent_agent,
        &s,
        "Generate an image of a blue boat at noon",
    )
    .await?;
    ensure!(
        !agent::paid(&first),
        "consent path paid without consent: {first}"
    );
    // The user's approval arrives as data (never as chat text).
    let request_id = first["output"]["quotes"]
        .as_array()
        .and_then(|q| q.iter().rev().find(|q| q["needs_approval"] == true))
        .and_then(|q| q["request_id"].as_str())
        .with_context(|| format!("consent path: no quote to approve in {first}"))?
        .to_owned();
    let second = agent::approve(&http, &consent_agent, &s, &request_id).await?;
    ensure!(
        agent::paid(&second),
        "consent path did not pay after consent: {second}"
    );
    let consent: Usage = agent::usage(&first) + agent::usage(&second);
    r.usage = Some((within, consent));

    // --- many sessions at once through the agent -------------------------
    println!("bench: {} concurrent sessions, one image each", opts.load);
    let block_before = rpc.block_number().await?;
    let buyer_before = rpc.usdc_balance(&usdc, &buyer).await?;
    let crowd = agent::crowd(&http, &agent, u32::try_from(agent_pid)?, opts.load).await?;
    // From the block after: `block_before` may hold the previous step's payment.
    let transfers = rpc
        .transfers(&usdc, &buyer, &seller, block_before + 1)
        .await?;
    let buyer_after = rpc.usdc_balance(&usdc, &buyer).await?;
    let mut latencies = crowd.latencies;
    r.load = Some(LoadFigures {
        sessions: opts.load,
        successes: crowd.successes,
        settlements: transfers,
        spent_atomic: buyer_before.saturating_sub(buyer_after),
        p50: percentile(&mut latencies, 50),
        p99: percentile(&mut latencies, 99),
        wall: crowd.wall,
        rss_idle_kib: crowd.rss_idle_kib,
        rss_peak_kib: crowd.rss_peak_kib,
    });

    r.proof = proof_figure(&gateway_log)?;
    r.meta.load_after = loadavg();
    official_service.stop().await;
    facilitator_service.stop().await;
    Ok(r.render())
}

/// Median `proof_ms` and `total_ms` over the settled requests of the
/// gateway's log; `None` when the gateway logs no `proof_ms`.
fn proof_figure(log: &Path) -> Result<Option<ProofFigure>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let (mut proof, mut total) = (Vec::new(), Vec::new());
    for line in peers::json_lines(&text) {
        if line["outcome"] != "settled" {
            continue;
        }
        if let (Some(p), Some(t)) = (line["proof_ms"].as_u64(), line["total_ms"].as_u64()) {
            proof.push(Duration::from_millis(p));
            total.push(Duration::from_millis(t));
        }
    }
    if proof.is_empty() {
        return Ok(None);
    }
    Ok(Some(ProofFigure {
        requests: proof.len(),
        proof: percentile(&mut proof, 50),
        total: percentile(&mut total, 50),
    }))
}

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// The first line a command prints, or empty.
fn command_line(program: &str, args: &[&str], dir: &Path) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or_default().trim().to_owned())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        })
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(String::new, |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cores} cores ({cpu}){mem}, {}", std::env::consts::ARCH)
}

/// `cargo build --release -p xtask`: the canned responder that measures the
/// load client's ceiling must be far faster than the servers it stands in
/// for; a debug build of it was slower than our release gateway.
async fn build_responder(paths: &Paths) -> Result<()> {
    let mut cmd = tokio::process::Command::new(crate::paths::cargo());
    for k in crate::paths::cargo_run_env() {
        cmd.env_remove(k);
    }
    let status = cmd
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "xtask"])
        .kill_on_drop(true)
        .status()
        .await
        .context("running cargo build for the responder")?;
    ensure!(
        status.success(),
        "building the release xtask failed ({status})"
    );
    Ok(())
}

/// The program that runs `bench-responder`: the release xtask when it was
/// built, else this one (a debug responder may be slower than the server).
pub fn responder_exe(paths: &Paths) -> Result<std::path::PathBuf> {
    let release = paths.target_dir().join("release/xtask");
    if release.exists() {
        Ok(release)
    } else {
        Ok(std::env::current_exe()?)
    }
}
