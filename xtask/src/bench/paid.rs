//! Paid requests end to end at a fixed concurrency, paid by the official
//! x402 v2 client (`local/interop/paid-load.mjs`), so ours and the official
//! seller are paid by the same client.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::stats::percentile;
use crate::Paths;

/// Paid requests the client makes one at a time before the counted ones.
pub const WARMUP: usize = 2;

/// One batch of paid requests as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PaidRun {
    /// When the counted requests began (after the client's warm-up).
    pub started_at: SystemTime,
    pub wall: Duration,
    pub latencies: Vec<Duration>,
    pub statuses: BTreeMap<u16, u64>,
    /// Responses that carried a settlement (`PAYMENT-RESPONSE`).
    pub settled: u64,
    pub body_bytes: usize,
    /// The first few failures the client saw (`status: body`).
    pub errors: Vec<String>,
}

impl PaidRun {
    /// Requests answered 200 per second. (Against a real seller every run
    /// must also have settled each of them; the canned responder settles
    /// nothing.)
    pub fn per_sec(&self) -> f64 {
        let ok = self.statuses.get(&200).copied().unwrap_or(0);
        ok as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }

    pub fn p(&self, p: usize) -> Duration {
        percentile(&mut self.latencies.clone(), p)
    }

    pub fn mean(&self) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.iter().sum::<Duration>() / u32::try_from(self.latencies.len()).unwrap_or(1)
    }
}

/// Runs `requests` paid requests at `concurrency` against `url`, the client
/// pinned to `cpus`.
pub async fn run(
    paths: &Paths,
    url: &str,
    body: &str,
    concurrency: usize,
    requests: usize,
    buyer_key: &str,
    cpus: &str,
) -> Result<PaidRun> {
    let out = super::peers::client_command(cpus, "node")
        .args(["interop/paid-load.mjs", url, body])
        .arg(concurrency.to_string())
        .arg(requests.to_string())
        .arg(WARMUP.to_string())
        .current_dir(paths.node_project())
        .env("BUYER_PRIVATE_KEY", buyer_key)
        .kill_on_drop(true)
        .output()
        .await
        .context("running interop/paid-load.mjs")?;
    ensure!(
        out.status.success(),
        "paid-load.mjs failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the script's one JSON line.
pub fn parse(text: &str) -> Result<PaidRun> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("paid-load.mjs printed no JSON")?;
    let v: Value = serde_json::from_str(line)?;
    let ms = |x: &Value| Duration::from_secs_f64(x.as_f64().unwrap_or(0.0) / 1000.0);
    let statuses = v["statuses"]
        .as_object()
        .context("statuses")?
        .iter()
        .map(|(k, n)| Ok((k.parse()?, n.as_u64().unwrap_or(0))))
        .collect::<Result<_>>()?;
    Ok(PaidRun {
        started_at: SystemTime::UNIX_EPOCH + ms(&v["startedAtMs"]),
        wall: ms(&v["wallMs"]),
        latencies: v["latenciesMs"]
            .as_array()
            .context("latenciesMs")?
            .iter()
            .map(ms)
            .collect(),
        statuses,
        settled: v["settled"].as_u64().unwrap_or(0),
        body_bytes: usize::try_from(v["bodyBytes"].as_u64().unwrap_or(0))?,
        errors: v["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_client_report() {
        let r = parse(
            "warming up\n{\"startedAtMs\":1500,\"wallMs\":2000,\"latenciesMs\":[10,30,20],\"statuses\":{\"200\":3},\
             \"settled\":3,\"bodyBytes\":1234,\"errors\":[\"502: x\"]}\n",
        )
        .unwrap();
        assert_eq!(r.wall, Duration::from_secs(2));
        assert_eq!(
            r.started_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1500)
        );
        assert_eq!(r.statuses, BTreeMap::from([(200, 3)]));
        assert_eq!(r.body_bytes, 1234);
        assert_eq!(r.errors, ["502: x"]);
        assert!((r.per_sec() - 1.5).abs() < 1e-9);
        assert_eq!(r.p(50), Duration::from_millis(20));
        assert_eq!(r.mean(), Duration::from_millis(20));
        assert!(parse("no json here").is_err());
        assert!(parse("{\"wallMs\":1}").is_err());
    }
}
