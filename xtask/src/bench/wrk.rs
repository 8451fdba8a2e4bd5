//! The HTTP load client: `wrk` (Debian's package), pinned to its own core.
//!
//! Why not a client of our own: a Tokio/reqwest loop on the same two cores
//! as the server measured itself (about 5,300 req/s against a `/health`
//! that answers 65,000 with `wrk` on the other core). `wrk` is a small C
//! event loop; its own ceiling is still measured in every run (against a
//! canned responder, see `responder.rs`) and printed beside each figure.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, anyhow, bail, ensure};

/// The Debian version `ensure_installed` asks for (bookworm's).
pub const DEBIAN_VERSION: &str = "4.1.0-3+b2";
/// wrk's threads and connections: two threads for the client's one core
/// (one to keep the socket loop busy while the other parses), and enough
/// connections to keep a one-core server saturated.
pub const THREADS: u32 = 2;
pub const CONNECTIONS: u32 = 64;

/// Installs `wrk` from Debian when it is missing (idempotent; pinned to
/// [`DEBIAN_VERSION`] when the archive still has it) and returns the version
/// that is installed.
pub fn ensure_installed() -> Result<String> {
    if let Some(v) = installed_version() {
        return Ok(v);
    }
    ensure!(
        Path::new("/usr/bin/apt-get").exists(),
        "wrk is missing and this is not a Debian-like system: install wrk 4.1 and rerun"
    );
    println!("bench: installing wrk {DEBIAN_VERSION} from Debian");
    let pinned = format!("wrk={DEBIAN_VERSION}");
    let install = |pkg: &str| {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", pkg])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install(&pinned) {
        let _ = Command::new("apt-get").arg("update").status();
        if !install(&pinned) {
            eprintln!("bench: {pinned} is no longer in the archive; installing its current wrk");
            ensure!(install("wrk"), "apt-get install wrk failed (are you root?)");
        }
    }
    installed_version().ok_or_else(|| anyhow!("wrk still missing after apt-get install"))
}

fn installed_version() -> Option<String> {
    Command::new("wrk").arg("-v").output().ok()?;
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "wrk"])
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    Some(if v.trim().is_empty() {
        "unknown (not from dpkg)".into()
    } else {
        v.trim().to_owned()
    })
}

/// What one wrk run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses outside 2xx/3xx (the 402 path expects all of them).
    pub non_2xx: u64,
    pub socket_errors: u64,
    /// Busy share of the server's core and of the client's core over the
    /// run ([`super::cores`]); `None` where they cannot be read.
    pub server_busy: Option<f64>,
    pub client_busy: Option<f64>,
}

/// One request shape to load.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// `None`: `GET`; `Some(json)`: `POST` with that JSON body.
    pub json_body: Option<String>,
}

/// Runs wrk pinned to `cpus` (a `taskset -c` list) for `secs` seconds.
/// `dir` holds the Lua script for a POST body.
pub async fn run(target: &Target, secs: u64, cpus: &str, dir: &Path) -> Result<WrkRun> {
    let mut cmd = super::peers::client_command(cpus, "wrk");
    cmd.arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .kill_on_drop(true);
    if let Some(body) = &target.json_body {
        let script = dir.join("post.lua");
        std::fs::write(&script, post_script(body))?;
        cmd.arg("-s").arg(script);
    }
    cmd.arg(&target.url);
    let before = super::cores::Snapshot::take();
    let out = cmd.output().await.context("running wrk")?;
    let after = super::cores::Snapshot::take();
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed ({}): {}{}",
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = parse(&text)?;
    if let (Some(a), Some(b)) = (before, after) {
        let core = |list: &str| list.parse::<usize>().ok();
        run.server_busy = core(super::peers::SERVER_CPUS).and_then(|c| a.busy_until(&b, c));
        run.client_busy = core(cpus).and_then(|c| a.busy_until(&b, c));
    }
    Ok(run)
}

/// A wrk script that POSTs `body` as JSON.
pub fn post_script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{body}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    )
}

/// Parses wrk's `--latency` report.
pub fn parse(text: &str) -> Result<WrkRun> {
    let mut requests = None;
    let mut per_sec = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            per_sec = Some(v.trim().parse::<f64>().context("Requests/sec")?);
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = Some(duration(v.trim())?);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = Some(duration(v.trim())?);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().context("Non-2xx count")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    match (requests, per_sec, p50, p99) {
        (Some(requests), Some(per_sec), Some(p50), Some(p99)) => Ok(WrkRun {
            requests,
            per_sec,
            p50,
            p99,
            non_2xx,
            socket_errors,
            server_busy: None,
            client_busy: None,
        }),
        _ => bail!("unexpected wrk output (run with --latency?):\n{text}"),
    }
}

/// `812.00us`, `1.02ms`, `2.10s`, `1.00m`.
fn duration(s: &str) -> Result<Duration> {
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| anyhow!("no unit in {s:?}"))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("number in {s:?}"))?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => bail!("unknown unit in {s:?}"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 5s test @ http://127.0.0.1:40001/health
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  301.00us   9.10ms   80.00%
    Req/Sec    32.71k     1.02k   35.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.30ms
     99%    2.05ms
  325123 requests in 5.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 325123
Requests/sec:  65024.60
Transfer/sec:      8.00MB
";

    #[test]
    fn parses_a_latency_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.requests, 325_123);
        assert!((r.per_sec - 65_024.6).abs() < 1e-6);
        assert_eq!(r.p50, Duration::from_micros(812));
        assert_eq!(r.p99, Duration::from_micros(2050));
        assert_eq!(r.non_2xx, 325_123);
        assert_eq!(r.socket_errors, 3);
    }

    #[test]
    fn a_report_without_latencies_is_refused() {
        let cut = REPORT.replace("     99%    2.05ms\n", "");
        assert!(parse(&cut).is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(duration("1.50s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("1.00m").unwrap(), Duration::from_secs(60));
        assert!(duration("3").is_err());
        assert!(duration("3h").is_err());
    }

    #[test]
    fn the_post_script_carries_the_body() {
        let s = post_script(r#"{"prompt":"a"}"#);
        assert!(s.contains(r#"wrk.body = [==[{"prompt":"a"}]==]"#));
        assert!(s.contains("wrk.method = \"POST\""));
    }
}
