//! Our gateway beside the official x402 seller (`@x402/express`, in
//! `local/interop/express-seller.mjs`), on the same facilitator, each
//! pinned to the server core with its load client on the other:
//!
//! - the HTTP path: `GET /health` (each server's own ceiling) and the
//!   unpaid request answered 402, driven by `wrk`;
//! - paid requests end to end at fixed concurrency, paid by the official
//!   x402 v2 client, with the facilitator's and the chain's share measured
//!   by timing proxies in front of each.
//!
//! Every server figure has the client's own ceiling beside it: the same
//! client, the same request, against a responder that replays the server's
//! recorded answer (see `responder.rs`), alternated run by run with the
//! real server so both see the same machine.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{
    paid::{self, PaidRun},
    responder::{Canned, write_spec},
    timing_proxy::{Timing, TimingProxy},
    wrk::{self, Target, WrkRun},
};
use crate::{
    Paths,
    proc::{Probe, Service, ServiceSpec, free_port},
};

/// The server under test and its canned stand-in run here...
pub const SERVER_CPUS: &str = "0";
/// ...and every load client here.
pub const CLIENT_CPUS: &str = "1";

/// The niceness of everything the figures depend on (servers, clients,
/// the facilitator, Anvil), so that other work on a shared machine disturbs
/// them less. Needs root; without it they run at the default and the
/// report says so.
pub const NICE: i32 = -10;

/// Pins every thread of `pid` to `cpus` and raises their priority.
pub fn pin(pid: i32, cpus: &str) -> Result<()> {
    let out = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("running taskset")?;
    ensure!(
        out.status.success(),
        "taskset -a -p -c {cpus} {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prioritize(pid);
    Ok(())
}

/// Sets every thread of `pid` to [`NICE`] (niceness is per thread on
/// Linux); false when that was not allowed.
pub fn prioritize(pid: i32) -> bool {
    let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    !tids.is_empty()
        && std::process::Command::new("renice")
            .args(["-n", &NICE.to_string(), "-p"])
            .args(&tids)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// `nice -n NICE taskset -c cpus <program>`: a load client on its core at
/// the servers' priority (`nice` runs it at the default when not allowed).
pub fn client_command(cpus: &str, program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("nice");
    cmd.args(["-n", &NICE.to_string(), "taskset", "-c", cpus, program]);
    cmd
}

/// What the measurements share.
pub struct Ctx<'a> {
    pub paths: &'a Paths,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    /// Seconds per wrk run, runs per figure, seconds of warm-up.
    pub secs: u64,
    pub runs: usize,
    pub warmup_secs: u64,
    pub buyer_key: String,
}

/// One seller under test.
pub struct Seller {
    pub name: &'static str,
    pub base: String,
    pub health_path: &'static str,
    pub paid_path: &'static str,
    pub paid_body: String,
    /// The seller's own JSON request log, when it writes one (ours).
    pub log: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Quote,
}

/// One HTTP figure: the server's runs and the client's ceiling runs.
pub struct HttpRow {
    pub server: &'static str,
    pub endpoint: Endpoint,
    pub status: u16,
    pub runs: Vec<WrkRun>,
    pub ceiling: Vec<WrkRun>,
}

/// A canned responder process pinned to the server core.
struct Responder {
    service: Service,
    url: String,
}

impl Responder {
    async fn start(
        ctx: &Ctx<'_>,
        name: &str,
        unpaid: &Canned,
        paid: Option<&Canned>,
    ) -> Result<Responder> {
        let port = free_port()?;
        let spec_file = ctx.dir.join(format!("{name}.json"));
        write_spec(&spec_file, unpaid, paid)?;
        let url = format!("http://127.0.0.1:{port}");
        let spec = ServiceSpec {
            name: name.into(),
            marker: "bench-responder".into(),
            program: super::responder_exe(ctx.paths)?,
            args: vec![
                "bench-responder".into(),
                "--spec".into(),
                spec_file.display().to_string(),
                "--port".into(),
                port.to_string(),
            ],
            cwd: ctx.paths.root.clone(),
            env: vec![],
            env_remove: vec![],
            port,
            port_env: "-".into(),
            probe: Probe::HttpAny { url: url.clone() },
            ready_timeout: Duration::from_secs(10),
        };
        let mut service = Service::spawn(&spec, &ctx.paths.logs())?;
        if let Some(status) = service.wait_ready(&spec.probe, spec.ready_timeout).await? {
            bail!("the responder exited at once ({status})");
        }
        pin(service.pid(), SERVER_CPUS)?;
        Ok(Responder { service, url })
    }

    async fn stop(mut self) {
        self.service.stop().await;
    }
}

fn target(base: &str, seller: &Seller, endpoint: Endpoint) -> Target {
    match endpoint {
        Endpoint::Health => Target {
            url: format!("{base}{}", seller.health_path),
            json_body: None,
        },
        Endpoint::Quote => Target {
            url: format!("{base}{}", seller.paid_path),
            json_body: Some(seller.paid_body.clone()),
        },
    }
}

/// Records the server's answer to one request of `endpoint`.
async fn record(ctx: &Ctx<'_>, seller: &Seller, endpoint: Endpoint) -> Result<Canned> {
    let t = target(&seller.base, seller, endpoint);
    let req = match &t.json_body {
        Some(b) => ctx
            .http
            .post(&t.url)
            .header("content-type", "application/json")
            .body(b.clone()),
        None => ctx.http.get(&t.url),
    };
    Canned::record(req.send().await?).await
}

/// `GET /health` or the unpaid request against `seller`, alternated run by
/// run with the same request against a responder replaying its answer.
pub async fn http_row(ctx: &Ctx<'_>, seller: &Seller, endpoint: Endpoint) -> Result<HttpRow> {
    let canned = record(ctx, seller, endpoint).await?;
    let want = match endpoint {
        Endpoint::Health => 200,
        Endpoint::Quote => 402,
    };
    ensure!(
        canned.status == want,
        "{} answered {} (expected {want}): {}",
        seller.name,
        canned.status,
        canned.body
    );
    let responder = Responder::start(ctx, "bench-responder-http", &canned, None).await?;
    let result = async {
        let real = target(&seller.base, seller, endpoint);
        let fake = target(&responder.url, seller, endpoint);
        let dir = &ctx.dir;
        wrk::run(&real, ctx.warmup_secs, CLIENT_CPUS, dir).await?;
        wrk::run(&fake, ctx.warmup_secs, CLIENT_CPUS, dir).await?;
        let (mut runs, mut ceiling) = (Vec::new(), Vec::new());
        for _ in 0..ctx.runs {
            runs.push(wrk::run(&real, ctx.secs, CLIENT_CPUS, dir).await?);
            ceiling.push(wrk::run(&fake, ctx.secs, CLIENT_CPUS, dir).await?);
        }
        Ok::<_, anyhow::Error>((runs, ceiling))
    }
    .await;
    responder.stop().await;
    let (runs, ceiling) = result?;
    Ok(HttpRow {
        server: seller.name,
        endpoint,
        status: want,
        runs,
        ceiling,
    })
}

/// Paid requests at one concurrency.
pub struct PaidRow {
    pub server: &'static str,
    pub concurrency: usize,
    pub runs: Vec<PaidRun>,
    pub ceiling: Vec<PaidRun>,
    /// Per settled request, means over the runs: time in facilitator calls
    /// (`/verify` + `/settle`, as the seller waited for them), and the part
    /// of it the facilitator spent waiting on the chain's JSON-RPC.
    pub facilitator: Duration,
    pub chain: Duration,
    /// From the seller's own log (ours): generation.
    pub generation: Option<Duration>,
}

/// The proxies in front of the facilitator and of the chain.
pub struct Proxies<'a> {
    pub facilitator: &'a TimingProxy,
    pub rpc: &'a TimingProxy,
}

/// Paid requests against `seller` at each concurrency, each run followed by
/// the same client against a responder that answers the recorded 402 and
/// then a 200 of the seller's body size.
pub async fn paid_rows(
    ctx: &Ctx<'_>,
    seller: &Seller,
    proxies: &Proxies<'_>,
    concurrencies: &[usize],
    min_requests: usize,
) -> Result<Vec<PaidRow>> {
    let quote = record(ctx, seller, Endpoint::Quote).await?;
    ensure!(
        quote.status == 402,
        "{} did not quote: {}",
        seller.name,
        quote.body
    );
    let url = format!("{}{}", seller.base, seller.paid_path);
    let mut rows = Vec::new();
    let mut responder: Option<Responder> = None;
    let result = async {
        for &c in concurrencies {
            let n = min_requests.max(2 * c);
            let (mut runs, mut ceiling) = (Vec::new(), Vec::new());
            let (mut fac, mut chain, mut settled) = (Duration::ZERO, Duration::ZERO, 0u64);
            let mut gen_ms = Vec::new();
            for _ in 0..ctx.runs {
                proxies.facilitator.take();
                proxies.rpc.take();
                let cursor = seller.log.as_ref().map(|l| LogCursor::at_end(l.clone()));
                let run = paid::run(
                    ctx.paths,
                    &url,
                    &seller.paid_body,
                    c,
                    n,
                    &ctx.buyer_key,
                    CLIENT_CPUS,
                )
                .await?;
                if run.settled != n as u64 {
                    eprintln!(
                        "bench: {} at concurrency {c}: {} of {n} settled, statuses {:?}, {:?}",
                        seller.name, run.settled, run.statuses, run.errors
                    );
                }
                // Only what the counted requests caused, not the client's warm-up.
                let counted = |t: &Timing| t.at >= run.started_at;
                fac += sum(&proxies.facilitator.take(), |t| {
                    counted(t) && (t.path.ends_with("/verify") || t.path.ends_with("/settle"))
                });
                chain += sum(&proxies.rpc.take(), counted);
                settled += run.settled;
                if let Some(cursor) = cursor {
                    // The warm-up requests ran one at a time before the
                    // counted ones: their lines come first.
                    let settled_lines = cursor
                        .new_lines()?
                        .into_iter()
                        .filter(|l| l["outcome"] == "settled")
                        .skip(paid::WARMUP);
                    gen_ms.extend(settled_lines.filter_map(|l| l["generate_ms"].as_u64()));
                }
                if responder.is_none() {
                    let paid = Canned::paid_of_size(run.body_bytes);
                    responder = Some(
                        Responder::start(ctx, "bench-responder-paid", &quote, Some(&paid)).await?,
                    );
                }
                let fake = format!(
                    "{}{}",
                    responder
                        .as_ref()
                        .map(|r| r.url.as_str())
                        .unwrap_or_default(),
                    seller.paid_path
                );
                runs.push(run);
                ceiling.push(
                    paid::run(
                        ctx.paths,
                        &fake,
                        &seller.paid_body,
                        c,
                        n,
                        &ctx.buyer_key,
                        CLIENT_CPUS,
                    )
                    .await?,
                );
            }
            let per = |d: Duration| d / u32::try_from(settled.max(1)).unwrap_or(u32::MAX);
            rows.push(PaidRow {
                server: seller.name,
                concurrency: c,
                runs,
                ceiling,
                facilitator: per(fac),
                chain: per(chain),
                generation: mean_ms(&gen_ms),
            });
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Some(r) = responder {
        r.stop().await;
    }
    result?;
    Ok(rows)
}

fn sum(ts: &[Timing], f: impl Fn(&Timing) -> bool) -> Duration {
    ts.iter().filter(|t| f(t)).map(|t| t.elapsed).sum()
}

fn mean_ms(v: &[u64]) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(
        v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0,
    ))
}

/// Reads the JSON lines a log gained since the cursor was placed.
pub struct LogCursor {
    path: PathBuf,
    offset: u64,
}

impl LogCursor {
    pub fn at_end(path: PathBuf) -> LogCursor {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        LogCursor { path, offset }
    }

    pub fn new_lines(&self) -> Result<Vec<Value>> {
        let bytes = std::fs::read(&self.path)?;
        let start = usize::try_from(self.offset)?.min(bytes.len());
        Ok(json_lines(&String::from_utf8_lossy(&bytes[start..])))
    }
}

/// The lines of `text` that are JSON objects.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_count_as_log_lines() {
        let v = json_lines("# header\n{\"outcome\":\"settled\",\"proof_ms\":3}\n42\nnot json\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["proof_ms"], 3);
        assert_eq!(mean_ms(&[2, 4]), Some(Duration::from_millis(3)));
        assert_eq!(mean_ms(&[]), None);
    }
}
