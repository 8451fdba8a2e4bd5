//! One bench run on a running stack: every figure in the order the report
//! prints them, each beside its same-run baseline.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::json;

use super::{
    BenchOptions, agent,
    agent::{LoadFigures, Split, Usage},
    peers::{self, Ctx, Endpoint, Proxies, SERVER_CPUS, Seller},
    report::{Meta, ProofFigure, Report, StartupFigures},
    services::{start_facilitator, start_official_seller},
    stats::percentile,
    timing_proxy::TimingProxy,
};
use crate::{
    Paths,
    chain::Rpc,
    proc::free_port,
    stack::{AGENT, GATEWAY, RunningStack},
};

#[allow(clippy::too_many_lines)]
pub(super) async fn measure(
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
