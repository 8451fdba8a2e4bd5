//! The agent side: start-up and memory, one paid image through the agent
//! (split by timing proxies), model calls and tokens, and many concurrent
//! sessions with the agent's memory sampled while they run.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

use super::{stats::percentile, timing_proxy::Timing};
use crate::{
    proc::free_port,
    stack::{App, RunningStack},
};

#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub model_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            model_calls: self.model_calls + o.model_calls,
            input_tokens: self.input_tokens + o.input_tokens,
            output_tokens: self.output_tokens + o.output_tokens,
        }
    }
}

pub fn usage(out: &Value) -> Usage {
    let u = &out["output"]["usage"];
    Usage {
        model_calls: u["model_calls"].as_u64().unwrap_or(0),
        input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
        output_tokens: u["output_tokens"].as_u64().unwrap_or(0),
    }
}

/// Whether the agent's answer records a payment with a transaction hash.
pub fn paid(out: &Value) -> bool {
    out["output"]["payments"].as_array().is_some_and(|p| {
        p.iter()
            .any(|r| r["transaction"].as_str().is_some_and(|t| t.len() == 66))
    })
}

pub async fn invoke(
    http: &reqwest::Client,
    agent: &str,
    session: &str,
    prompt: &str,
) -> Result<Value> {
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

/// The user's approval of a quoted request, sent as data.
pub async fn approve(
    http: &reqwest::Client,
    agent: &str,
    session: &str,
    request_id: &str,
) -> Result<Value> {
    let resp = http
        .post(format!("{agent}/invocations"))
        .header("x-amzn-bedrock-agentcore-runtime-session-id", session)
        .json(&json!({"approve": {"request_id": request_id, "approved": true}}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.context("agent answer is not JSON")?;
    ensure!(status.is_success(), "approval answered {status}: {body}");
    Ok(body)
}

pub fn session_id(kind: &str, i: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench-{kind}-{i:05}-{nanos:024}")
}

/// One paid image's time, split by what the proxies saw.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub total: Duration,
    pub quote: Duration,
    pub paid: Duration,
    pub verify: Duration,
    pub settle: Duration,
    /// As the gateway logged it for the paid request.
    pub generation: Duration,
}

impl Split {
    pub fn from(total: Duration, gw: &[Timing], fac: &[Timing]) -> Result<Split> {
        let sum = |ts: &[Timing], f: &dyn Fn(&Timing) -> bool| {
            ts.iter()
                .filter(|t| f(t))
                .map(|t| t.elapsed)
                .sum::<Duration>()
        };
        ensure!(
            gw.iter().any(|t| t.paid && t.status == 200),
            "no paid request succeeded at the gateway: {gw:?}"
        );
        Ok(Split {
            total,
            quote: sum(gw, &|t| !t.paid),
            paid: sum(gw, &|t| t.paid),
            verify: sum(fac, &|t| t.method == "POST" && t.path.ends_with("/verify")),
            settle: sum(fac, &|t| t.method == "POST" && t.path.ends_with("/settle")),
            generation: Duration::ZERO,
        })
    }

    pub fn agent_own(&self) -> Duration {
        self.total.saturating_sub(self.quote + self.paid)
    }

    /// The gateway's paid request minus the facilitator calls and
    /// generation: its own overhead (checks, replay guard, storage, chain
    /// look-ups, HTTP).
    pub fn gateway_own(&self) -> Duration {
        self.paid
            .saturating_sub(self.verify + self.settle + self.generation)
    }
}

pub struct StartupSample {
    pub median: Duration,
    pub rss_kib: u64,
}

pub async fn startup_noop(n: usize) -> Result<Duration> {
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
pub async fn startup(
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
                bail!("{} exited during start-up: {status}", app.name);
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

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `generate_ms` of the last settled request in the gateway's JSON log.
pub fn last_generation(log: &Path) -> Result<Duration> {
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

pub struct LoadFigures {
    pub sessions: usize,
    pub successes: usize,
    pub settlements: usize,
    pub spent_atomic: u128,
    pub p50: Duration,
    pub p99: Duration,
    pub wall: Duration,
    /// The agent's resident memory just before the sessions, and the most
    /// sampled (every 10 ms) while they ran.
    pub rss_idle_kib: u64,
    pub rss_peak_kib: u64,
}

/// What the load step measured on the client's side.
pub struct Crowd {
    pub latencies: Vec<Duration>,
    pub successes: usize,
    pub wall: Duration,
    pub rss_idle_kib: u64,
    pub rss_peak_kib: u64,
}

/// `n` concurrent sessions, one image each, with the agent (`agent_pid`)
/// sampled for resident memory while they run.
pub async fn crowd(http: &reqwest::Client, agent: &str, agent_pid: u32, n: usize) -> Result<Crowd> {
    let rss_idle_kib = rss_kib(agent_pid).unwrap_or(0);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(agent_pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, agent) = (http.clone(), agent.to_owned());
            tokio::spawn(async move {
                let t = Instant::now();
                let prompt = format!("Generate an image of a harbour at night, crowd member {i}");
                let out = invoke(&http, &agent, &session_id("load", i), &prompt).await;
                (t.elapsed(), out.map(|o| paid(&o)).unwrap_or(false))
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut successes = 0usize;
    for t in tasks {
        let (elapsed, success) = t.await?;
        latencies.push(elapsed);
        successes += usize::from(success);
    }
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let rss_peak_kib = sampler.await?;
    Ok(Crowd {
        latencies,
        successes,
        wall,
        rss_idle_kib,
        rss_peak_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_attributes_proxy_timings() {
        let t = |path: &str, paid: bool, ms: u64| Timing {
            method: "POST".into(),
            path: path.into(),
            paid,
            status: 200,
            at: std::time::SystemTime::now(),
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

    #[test]
    fn usage_and_payment_are_read_from_the_answer() {
        let out = json!({"output": {
            "usage": {"model_calls": 2, "input_tokens": 10, "output_tokens": 3},
            "payments": [{"transaction": format!("0x{}", "a".repeat(64))}],
        }});
        let u = usage(&out) + usage(&out);
        assert_eq!((u.model_calls, u.input_tokens, u.output_tokens), (4, 20, 6));
        assert!(paid(&out));
        assert!(!paid(
            &json!({"output": {"payments": [{"transaction": "0x12"}]}})
        ));
    }
}
