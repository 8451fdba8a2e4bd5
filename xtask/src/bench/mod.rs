//! `cargo xtask bench`: figures for the whole product on the local stack,
//! printed as a table and written to `BENCHMARKS.md`.
//!
//! Everything runs the release build (what ships) against the real local
//! peers. Each figure comes with a baseline measured in the same run, so the
//! numbers say something on any machine:
//!
//! - **start-up**: process start to the first healthy `/ping` (agent) and
//!   `/health` (gateway), against spawning a no-op process; idle resident
//!   memory; binary sizes.
//! - **one paid image**: the client's end-to-end time, split with timing
//!   proxies (agent -> gateway, gateway -> facilitator) into the agent's own
//!   time, the quote, facilitator verify, settle (facilitator + chain), and
//!   the gateway's own time including generation.
//! - **model calls and tokens per paid image**, from the agent's
//!   `output.usage`, for the within-budget path and the consent path.
//! - **load**: N concurrent sessions buying one image each: successes,
//!   settlements on chain (must equal successes), p50/p99, throughput.
//! - **gateway**: requests/s of the 402 quote path against `GET /health` on
//!   the same server (the HTTP floor).

mod timing_proxy;

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::{Value, json};
use timing_proxy::{Timing, TimingProxy};

use crate::{
    Paths,
    chain::Rpc,
    proc::free_port,
    setup,
    stack::{self, AGENT, App, GATEWAY, RunningStack, StackOptions},
};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Sequential paid images for the latency split.
    pub runs: usize,
    /// Concurrent sessions in the load test.
    pub load: usize,
    /// Start-up samples.
    pub startups: usize,
    /// Seconds of load on each gateway endpoint.
    pub gateway_secs: u64,
    /// Run the debug build instead of release (quicker to build; slower).
    pub debug: bool,
    /// Where to write the report.
    pub out: PathBuf,
}

pub async fn run(paths: &Paths, opts: &BenchOptions) -> Result<()> {
    setup::run(paths).await?;
    let release = !opts.debug;
    println!(
        "bench: building the apps ({})",
        if release { "release" } else { "debug" }
    );
    stack::build_apps(paths, release).await?;
    let mut stack = RunningStack::up(
        paths,
        &StackOptions {
            build_apps: false,
            release,
            ..StackOptions::from_env()?
        },
    )
    .await?;
    let result = measure(paths, &mut stack, opts).await;
    stack.down().await;
    let report = result?;
    println!("\n{report}");
    std::fs::write(&opts.out, &report)
        .with_context(|| format!("writing {}", opts.out.display()))?;
    println!("bench: wrote {}", opts.out.display());
    Ok(())
}

async fn measure(paths: &Paths, stack: &mut RunningStack, opts: &BenchOptions) -> Result<String> {
    let get = |k: &str| {
        stack
            .get(k)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{k} missing from the stack (did the gateway and agent start?)"))
    };
    let facilitator = get("FACILITATOR_URL")?;
    get("GATEWAY_URL")?;
    get("AGENT_URL")?;
    let rpc = Rpc::new(get("RPC_URL")?);
    let usdc = get("USDC_CONTRACT")?;
    let buyer = get("BUYER_ADDRESS")?;
    let seller = get("SELLER_WALLET")?;
    let bench_dir = paths.local().join("bench");
    let _ = std::fs::remove_dir_all(&bench_dir);
    std::fs::create_dir_all(&bench_dir)?;
    let dir = |name: &str| bench_dir.join(name).display().to_string();

    // A gateway and two agents of our own, each behind a timing proxy.
    let fac_proxy = TimingProxy::start(&facilitator).await?;
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
                // Its one JSON line per request carries `generate_ms`.
                ("RUST_LOG", "warn,gateway::request=info"),
            ],
        )
        .await?;
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

    let mut r = Report::default();

    // --- start-up, memory, size --------------------------------------------
    println!("bench: start-up ({} samples each)", opts.startups);
    let noop = startup_noop(opts.startups).await?;
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
    let agent_start = startup(stack, &AGENT, "AGENT_PORT", &agent_env, opts.startups).await?;
    let gateway_start =
        startup(stack, &GATEWAY, "GATEWAY_PORT", &gateway_env, opts.startups).await?;
    r.startup = Some(StartupFigures {
        noop,
        agent: agent_start,
        gateway: gateway_start,
        agent_size: std::fs::metadata(stack.app_program(&AGENT))?.len(),
        gateway_size: std::fs::metadata(stack.app_program(&GATEWAY))?.len(),
    });

    // --- one paid image, split -------------------------------------------
    println!("bench: {} paid images, one at a time", opts.runs);
    fac_proxy.take();
    gw_proxy.take();
    let mut splits = Vec::new();
    for i in 0..opts.runs {
        let session = session_id("split", i);
        let prompt = format!("Generate an image of a lighthouse on a cliff at dawn, study {i}");
        let started = Instant::now();
        let out = invoke(&http, &agent, &session, &prompt).await?;
        let total = started.elapsed();
        ensure!(paid(&out), "run {i}: no payment in {out}");
        let gw = gw_proxy.take();
        let fac = fac_proxy.take();
        let mut split = Split::from(total, &gw, &fac)?;
        split.generation = last_generation(&paths.logs().join("bench-gateway.log"))?;
        splits.push(split);
    }
    r.split = Some(splits);

    // --- model calls and tokens ------------------------------------------
    println!("bench: model calls per paid image");
    let s = session_id("usage", 0);
    let out = invoke(
        &http,
        &agent,
        &s,
        "Generate an image of a red bicycle in the rain",
    )
    .await?;
    ensure!(paid(&out), "within-budget path did not pay: {out}");
    let within = usage(&out);
    let s = session_id("usage-consent", 0);
    let first = invoke(
        &http,
        &consent_agent,
        &s,
        "Generate an image of a blue boat at noon",
    )
    .await?;
    ensure!(!paid(&first), "consent path paid without consent: {first}");
    // The user's approval arrives as data (never as chat text).
    let request_id = first["output"]["quotes"]
        .as_array()
        .and_then(|q| q.iter().rev().find(|q| q["needs_approval"] == true))
        .and_then(|q| q["request_id"].as_str())
        .with_context(|| format!("consent path: no quote to approve in {first}"))?
        .to_owned();
    let resp = http
        .post(format!("{consent_agent}/invocations"))
        .header("x-amzn-bedrock-agentcore-runtime-session-id", &s)
        .json(&json!({"approve": {"request_id": request_id, "approved": true}}))
        .send()
        .await?;
    ensure!(resp.status().is_success(), "approval answered {}", resp.status());
    let second: Value = resp.json().await.context("agent answer is not JSON")?;
    ensure!(
        paid(&second),
        "consent path did not pay after consent: {second}"
    );
    let (a, b) = (usage(&first), usage(&second));
    r.usage = Some((
        within,
        Usage {
            model_calls: a.model_calls + b.model_calls,
            input_tokens: a.input_tokens + b.input_tokens,
            output_tokens: a.output_tokens + b.output_tokens,
        },
    ));

    // --- load -----------------------------------------------------------
    println!("bench: {} concurrent sessions, one image each", opts.load);
    let block_before = rpc.block_number().await?;
    let buyer_before = rpc.usdc_balance(&usdc, &buyer).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..opts.load)
        .map(|i| {
            let (http, agent) = (http.clone(), agent.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let prompt = format!("Generate an image of a harbour at night, crowd member {i}");
                let out = invoke(&http, &agent, &session_id("load", i), &prompt).await;
                (t.elapsed(), out.map(|o| paid(&o)).unwrap_or(false))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut ok = 0usize;
    for t in tasks {
        let (elapsed, success) = t.await?;
        latencies.push(elapsed);
        ok += usize::from(success);
    }
    let wall = started.elapsed();
    // From the block after: `block_before` may hold the previous step's payment.
    let transfers = rpc
        .transfers(&usdc, &buyer, &seller, block_before + 1)
        .await?;
    let buyer_after = rpc.usdc_balance(&usdc, &buyer).await?;
    r.load = Some(LoadFigures {
        sessions: opts.load,
        successes: ok,
        settlements: transfers,
        spent_atomic: buyer_before.saturating_sub(buyer_after),
        p50: percentile(&mut latencies, 50),
        p99: percentile(&mut latencies, 99),
        wall,
    });

    // --- gateway --------------------------------------------------------
    println!(
        "bench: gateway quote path vs /health ({} s each)",
        opts.gateway_secs
    );
    let secs = Duration::from_secs(opts.gateway_secs);
    let health = hammer(&http, &gateway, "/health", None, secs).await?;
    let quote = hammer(
        &http,
        &gateway,
        "/generate_image",
        Some(json!({"prompt": "a quote, not a purchase"})),
        secs,
    )
    .await?;
    r.gateway = Some((health, quote));

    Ok(r.render(paths, opts))
}

// ---------------------------------------------------------------------------
// Measurements

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    model_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
}

fn usage(out: &Value) -> Usage {
    let u = &out["output"]["usage"];
    Usage {
        model_calls: u["model_calls"].as_u64().unwrap_or(0),
        input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
    }
}

fn paid(out: &Value) -> bool {
    out["output"]["payments"].as_array().is_some_and(|p| {
        p.iter()
            .any(|r| r["transaction"].as_str().is_some_and(|t| t.len() == 66))
    })
}

async fn invoke(http: &reqwest::Client, agent: &str, session: &str, prompt: &str) -> Result<Value> {
    let resp = http
        .post(format!("{agent}/invocations"))
        .header("x-amzn-bedrock-agentcore-runtime-session-id", session)
        .json(&json!({"input": {"prompt": prompt}}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.context("agent answer is not JSON")?;
    ensure!(status.is_success(), "agent answered {status}: {body}");
    Ok(body)
}

/// One paid image's time, split by what the proxies saw.
#[derive(Debug, Clone, Copy)]
struct Split {
    total: Duration,
    quote: Duration,
    paid: Duration,
    verify: Duration,
    settle: Duration,
    /// As the gateway logged it for the paid request.
    generation: Duration,
}

impl Split {
    fn from(total: Duration, gw: &[Timing], fac: &[Timing]) -> Result<Split> {
        let sum = |ts: &[Timing], f: &dyn Fn(&Timing) -> bool| {
            ts.iter()
                .filter(|t| f(t))
                .map(|t| t.elapsed)
                .sum::<Duration>()
        };
        let quote = sum(gw, &|t| !t.paid);
        let paid = sum(gw, &|t| t.paid);
        ensure!(
            gw.iter().any(|t| t.paid && t.status == 200),
            "no paid request succeeded at the gateway: {gw:?}"
        );
        Ok(Split {
            total,
            quote,
            paid,
            verify: sum(fac, &|t| t.method == "POST" && t.path.ends_with("/verify")),
            settle: sum(fac, &|t| t.method == "POST" && t.path.ends_with("/settle")),
            generation: Duration::ZERO,
        })
    }

    fn agent_own(&self) -> Duration {
        self.total.saturating_sub(self.quote + self.paid)
    }

    /// The gateway's paid request minus the facilitator calls and
    /// generation: its own overhead (checks, replay guard, storage, chain
    /// look-ups, HTTP).
    fn gateway_own(&self) -> Duration {
        self.paid
            .saturating_sub(self.verify + self.settle + self.generation)
    }
}

/// `generate_ms` of the last settled request in the gateway's JSON log.
fn last_generation(log: &std::path::Path) -> Result<Duration> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let ms = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["outcome"] == "settled")
        .and_then(|v| v["generate_ms"].as_u64())
        .ok_or_else(|| anyhow!("no settled request with generate_ms in {}", log.display()))?;
    Ok(Duration::from_millis(ms))
}

struct StartupFigures {
    noop: Duration,
    agent: StartupSample,
    gateway: StartupSample,
    agent_size: u64,
    gateway_size: u64,
}

struct StartupSample {
    median: Duration,
    rss_kib: u64,
}

async fn startup_noop(n: usize) -> Result<Duration> {
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        tokio::process::Command::new("true").status().await?;
        v.push(t.elapsed());
    }
    Ok(percentile(&mut v, 50))
}

/// Spawns `app` `n` times; each: time until its health URL answers 200
/// (polled every millisecond), then its resident memory, then kill.
async fn startup(
    stack: &RunningStack,
    app: &App,
    port_var: &str,
    env: &[(String, String)],
    n: usize,
) -> Result<StartupSample> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..n {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}{}", app.health_path);
        let t = Instant::now();
        let mut child = tokio::process::Command::new(stack.app_program(app))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(port_var, port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = t + Duration::from_secs(30);
        loop {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} did not become healthy",
                app.name
            );
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{} exited during start-up: {status}", app.name);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(t.elapsed());
        // Idle memory once it has answered a few requests.
        for _ in 0..10 {
            http.get(&url).send().await?;
        }
        if let Some(pid) = child.id() {
            rss.push(rss_kib(pid).unwrap_or(0));
        }
        child.kill().await?;
    }
    Ok(StartupSample {
        median: percentile(&mut times, 50),
        rss_kib: rss.iter().copied().max().unwrap_or(0),
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Rate {
    requests: u64,
    per_sec: f64,
    p50: Duration,
    statuses: Vec<u16>,
}

/// Requests as fast as 32 concurrent clients can for `secs`.
async fn hammer(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Option<Value>,
    secs: Duration,
) -> Result<Rate> {
    const CLIENTS: usize = 32;
    let deadline = Instant::now() + secs;
    let body = Arc::new(body);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url, body) = (http.clone(), format!("{base}{path}"), body.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut statuses = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let req = match body.as_ref() {
                        Some(b) => http.post(&url).json(b),
                        None => http.get(&url),
                    };
                    let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                    lat.push(t.elapsed());
                    statuses.push(status);
                }
                (lat, statuses)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut statuses = Vec::new();
    for t in tasks {
        let (l, s) = t.await?;
        lat.extend(l);
        statuses.extend(s);
    }
    let elapsed = started.elapsed();
    statuses.sort_unstable();
    statuses.dedup();
    Ok(Rate {
        requests: lat.len() as u64,
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&mut lat, 50),
        statuses,
    })
}

struct LoadFigures {
    sessions: usize,
    successes: usize,
    settlements: usize,
    spent_atomic: u128,
    p50: Duration,
    p99: Duration,
    wall: Duration,
}

// ---------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    startup: Option<StartupFigures>,
    split: Option<Vec<Split>>,
    usage: Option<(Usage, Usage)>,
    load: Option<LoadFigures>,
    gateway: Option<(Rate, Rate)>,
}

impl Report {
    fn render(&self, paths: &Paths, opts: &BenchOptions) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Produced by `cargo xtask bench` on {} (commit `{}`), {} build. Machine: {}.\n\
             Every figure runs against the real local stack (Anvil, the official x402 \
             facilitator, moto) with the offline model and the gateway's local generator; \
             each has a baseline measured in the same run. Reproduce: `cargo xtask bench` \
             (options: `--runs`, `--load`, `--debug`).\n",
            today(),
            git_head(paths),
            if opts.debug { "debug" } else { "release" },
            machine()
        );
        if let Some(st) = &self.startup {
            let _ = writeln!(s, "## Start-up, memory, size\n");
            let _ = writeln!(
                s,
                "| | median start -> healthy | x no-op process | idle RSS | binary |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| no-op process (`true`), baseline | {} | 1.0 | | |",
                ms(st.noop)
            );
            for (name, x, size) in [
                ("agent", &st.agent, st.agent_size),
                ("gateway", &st.gateway, st.gateway_size),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {:.1} | {:.1} MiB | {:.1} MiB |",
                    ms(x.median),
                    ratio(x.median, st.noop),
                    x.rss_kib as f64 / 1024.0,
                    size as f64 / (1024.0 * 1024.0)
                );
            }
            s.push('\n');
        }
        if let Some(splits) = &self.split {
            let med = |f: &dyn Fn(&Split) -> Duration| {
                let mut v: Vec<Duration> = splits.iter().map(f).collect();
                percentile(&mut v, 50)
            };
            let total = med(&|x| x.total);
            let _ = writeln!(
                s,
                "## One paid image, end to end ({} runs, medians)\n",
                splits.len()
            );
            let _ = writeln!(s, "| part | time | share of total |");
            let _ = writeln!(s, "|---|---:|---:|");
            for (name, d) in [
                ("total (client -> agent -> answer)", total),
                (
                    "agent's own time (tool loop, offline model, ledger, storage)",
                    med(&|x| x.agent_own()),
                ),
                ("quote (unpaid request -> 402)", med(&|x| x.quote)),
                ("facilitator /verify", med(&|x| x.verify)),
                ("facilitator /settle (incl. the chain)", med(&|x| x.settle)),
                (
                    "generation (the gateway's local PNG renderer, 1024x1024)",
                    med(&|x| x.generation),
                ),
                (
                    "gateway's own overhead on the paid request (minus facilitator and generation)",
                    med(&|x| x.gateway_own()),
                ),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {:.0}% |",
                    ms(d),
                    100.0 * ratio(d, total)
                );
            }
            let ours = med(&|x| x.agent_own() + x.gateway_own());
            let _ = writeln!(
                s,
                "\nOverhead we control (agent + gateway, without generation): {} of {} ({:.0}%); \
                 the rest is generation, the facilitator and the chain.\n",
                ms(ours),
                ms(total),
                100.0 * ratio(ours, total)
            );
        }
        if let Some((within, consent)) = &self.usage {
            let _ = writeln!(s, "## Model calls per paid image\n");
            let _ = writeln!(s, "| path | model calls | input tokens | output tokens |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| within budget (one tool call pays and generates) | {} | {} | {} |",
                within.model_calls, within.input_tokens, within.output_tokens
            );
            let _ = writeln!(
                s,
                "| consent path (ask, user says yes, pay) | {} | {} | {} |",
                consent.model_calls, consent.input_tokens, consent.output_tokens
            );
            let _ = writeln!(
                s,
                "\nTokens are the offline model's estimates (characters / 4); the calls are exact. \
                 The original sample's prompt drives five model calls per image.\n"
            );
        }
        if let Some(l) = &self.load {
            let _ = writeln!(
                s,
                "## Load: {} concurrent sessions, one image each\n",
                l.sessions
            );
            let _ = writeln!(
                s,
                "| successes | settlements on chain | USDC spent | p50 | p99 | throughput |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} / {} | {} | {}.{:06} | {} | {} | {:.1} images/s |",
                l.successes,
                l.sessions,
                l.settlements,
                l.spent_atomic / 1_000_000,
                l.spent_atomic % 1_000_000,
                ms(l.p50),
                ms(l.p99),
                l.successes as f64 / l.wall.as_secs_f64()
            );
            let verdict = if l.settlements == l.successes {
                "equal, as they must be"
            } else {
                "NOT EQUAL: a money bug"
            };
            let _ = writeln!(s, "\nSettlements vs successes: {verdict}.\n");
        }
        if let Some((health, quote)) = &self.gateway {
            let _ = writeln!(s, "## Gateway\n");
            let _ = writeln!(
                s,
                "| endpoint (32 clients) | requests/s | p50 | x baseline | statuses |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---|");
            for (name, r) in [
                ("GET /health (baseline)", health),
                ("POST /generate_image, no payment -> 402 quote", quote),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {:.0} | {} | {:.2} | {:?} ({} requests) |",
                    r.per_sec,
                    ms(r.p50),
                    r.per_sec / health.per_sec,
                    r.statuses,
                    r.requests
                );
            }
            s.push('\n');
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

fn session_id(kind: &str, i: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench-{kind}-{i:05}-{nanos:024}")
}

fn percentile(v: &mut [Duration], p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let idx = ((v.len() * p).div_ceil(100)).clamp(1, v.len()) - 1;
    v[idx]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn git_head(paths: &Paths) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&paths.root)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
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
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 99), Duration::from_millis(99));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(percentile(&mut one, 99), Duration::from_millis(7));
        assert_eq!(percentile(&mut [], 50), Duration::ZERO);
    }

    #[test]
    fn a_split_attributes_proxy_timings() {
        let t = |path: &str, paid: bool, ms: u64| Timing {
            method: "POST".into(),
            path: path.into(),
            paid,
            status: 200,
            elapsed: Duration::from_millis(ms),
        };
        let gw = [
            t("/generate_image", false, 5),
            t("/generate_image", true, 300),
        ];
        let fac = [t("/verify", false, 20), t("/settle", false, 200)];
        let mut s = Split::from(Duration::from_millis(400), &gw, &fac).unwrap();
        s.generation = Duration::from_millis(30);
        assert_eq!(s.agent_own(), Duration::from_millis(95));
        assert_eq!(s.gateway_own(), Duration::from_millis(50));
        assert!(Split::from(Duration::from_millis(1), &gw[..1], &fac).is_err());
    }
}
