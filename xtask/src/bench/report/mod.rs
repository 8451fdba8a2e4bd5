//! The report: Markdown tables from the figures. Pure (no I/O), so what a
//! table claims is unit-tested.
//!
//! One file per group of tables: `http.rs` (the HTTP path), `paid.rs` (paid
//! requests and the proof lookup), `agent.rs` (start-up and the agent).

use std::{fmt::Write as _, time::Duration};

use super::{
    agent::{LoadFigures, Split, StartupSample, Usage},
    peers::{HttpRow, PaidRow},
    stats::{Spread, fratio, percentile},
};

mod agent;
mod http;
mod paid;

/// How the run was made: printed at the top so a reader can judge it.
#[derive(Default)]
pub struct Meta {
    pub date: String,
    /// The exact command line of this run.
    pub command: String,
    pub commit: String,
    pub build: &'static str,
    pub machine: String,
    pub wrk: String,
    pub node: String,
    /// `/proc/loadavg` before and after.
    pub load_before: String,
    pub load_after: String,
    pub http_secs: u64,
    pub runs: usize,
    pub warmup_secs: u64,
    /// Paid requests per run (at least two per concurrent client).
    pub paid_requests: usize,
    /// The niceness servers, clients, the facilitator and Anvil ran at
    /// (`None`: the default; raising priority was not allowed).
    pub nice: Option<i32>,
}

pub struct StartupFigures {
    pub noop: Duration,
    pub agent: StartupSample,
    pub gateway: StartupSample,
    pub agent_size: u64,
    pub gateway_size: u64,
}

/// The gateway's proof-of-payment lookup (`proof_ms` on its request log),
/// over every settled request of the run.
pub struct ProofFigure {
    pub requests: usize,
    pub proof: Duration,
    pub total: Duration,
}

#[derive(Default)]
pub struct Report {
    pub meta: Meta,
    pub http: Vec<HttpRow>,
    pub paid: Vec<PaidRow>,
    /// `None`: the gateway logs no `proof_ms` (not measured).
    pub proof: Option<ProofFigure>,
    pub startup: Option<StartupFigures>,
    pub split: Option<Vec<Split>>,
    pub load: Option<LoadFigures>,
    pub usage: Option<(Usage, Usage)>,
}

/// The client must be able to drive at least this many times the server's
/// rate for a figure to describe the server.
pub const CEILING_FACTOR: f64 = 2.0;

fn ceiling_note(ceiling: f64, server: f64) -> String {
    let x = fratio(ceiling, server);
    if x >= CEILING_FACTOR {
        format!("{x:.1}x")
    } else {
        format!("**{x:.1}x: under {CEILING_FACTOR:.0}x, the server figure is a floor**")
    }
}

/// server's capacity on that core whatever the client could do.
pub const SATURATED: f64 = 0.95;

fn busy(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |b| format!("{:.0}%", b * 100.0))
}

/// The median of values that all exist ([`Spread::of`]), else `None`.
fn median_f64(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.collect::<Option<_>>()?;
    (!v.is_empty()).then(|| Spread::of(&v).median)
}

fn median_duration(v: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = v.collect();
    percentile(&mut v, 50)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Report {
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.header(&mut s);
        self.http_table(&mut s);
        self.paid_table(&mut s);
        self.proof_table(&mut s);
        self.startup_table(&mut s);
        self.agent_tables(&mut s);
        s
    }

    fn header(&self, s: &mut String) {
        let m = &self.meta;
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Produced by `cargo xtask bench` on {} (commit `{}`), {} build. Machine: {}.\n\n\
             **How it is measured.** Every figure runs against the real local stack (Anvil, the \
             official x402 facilitator, moto) with the offline model and the gateway's local \
             image generator. The server under test is pinned to CPU {} and its load client to \
             CPU {} (`taskset`); both sellers use the same facilitator. HTTP figures: `wrk` {} \
             (Debian's package, {} threads, {} connections), {} s of warm-up then {} runs of {} s \
             each: the median and the range (min-max) of the runs. Paid figures: the official x402 \
             v2 client (`@x402/fetch`, Node {}) pays both sellers. Beside every server figure is the \
             client's own ceiling: the same client and request against a canned responder on the \
             server's core that replays the server's recorded answer, alternated run by run with \
             the server; it must be at least {CEILING_FACTOR:.0}x the server figure for that figure \
             to describe the server, and the table says so when it is not. HTTP rows also show \
             how busy the server's and the client's cores were (`/proc/stat`, medians of the \
             runs): a server core busy {:.0}% or more had no time left, so its figure is its \
             one-core capacity even where the client's ceiling is under {CEILING_FACTOR:.0}x (on \
             loopback, a client core does about as much kernel work per request as the server \
             core, so no one-core client can drive twice a one-core server as cheap as the \
             responder).\n\n\
             **Run conditions.** Load average (1, 5, 15 min) {} before, {} after; {}. The \
             machine was shared with other work during the run, so absolute figures are noisy; the \
             ratios to a same-run baseline (the server's own `/health`, the client's ceiling, a \
             no-op process) are what carries over.\n\n\
             This run: `{}`. Reproduce: `cargo xtask bench` (options: `--repeats`, \
             `--http-secs`, `--concurrency`, `--load`, `--debug`; `cargo xtask bench --help`).\n",
            m.date,
            m.commit,
            m.build,
            m.machine,
            super::peers::SERVER_CPUS,
            super::peers::CLIENT_CPUS,
            m.wrk,
            super::wrk::THREADS,
            super::wrk::CONNECTIONS,
            m.warmup_secs,
            m.runs,
            m.http_secs,
            m.node,
            SATURATED * 100.0,
            m.load_before,
            m.load_after,
            m.nice.map_or_else(
                || "servers and clients at the default priority".to_owned(),
                |n| format!(
                    "servers, load clients, the facilitator and Anvil at `nice {n}` so that \
                     the other work disturbs them less"
                ),
            ),
            m.command,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{http::http_ceiling_note, *};
    use crate::bench::{paid::PaidRun, peers::Endpoint, wrk::WrkRun};

    fn wrk(per_sec: f64, non_2xx: u64) -> WrkRun {
        WrkRun {
            requests: 1000,
            per_sec,
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(3),
            non_2xx,
            socket_errors: 0,
            server_busy: Some(0.5),
            client_busy: Some(0.25),
        }
    }

    fn paid(settled_per_sec: u64, latency_ms: u64) -> PaidRun {
        PaidRun {
            started_at: std::time::UNIX_EPOCH,
            wall: Duration::from_secs(1),
            latencies: vec![Duration::from_millis(latency_ms); 4],
            statuses: BTreeMap::from([(200, settled_per_sec)]),
            settled: settled_per_sec,
            body_bytes: 10,
            errors: vec![],
        }
    }

    fn http_row(server: &'static str, endpoint: Endpoint, rates: &[f64], ceiling: f64) -> HttpRow {
        let status = if endpoint == Endpoint::Health {
            200
        } else {
            402
        };
        let non_2xx = if status == 200 { 0 } else { 1000 };
        HttpRow {
            server,
            endpoint,
            status,
            runs: rates.iter().map(|&r| wrk(r, non_2xx)).collect(),
            ceiling: vec![wrk(ceiling, non_2xx); rates.len()],
        }
    }

    #[test]
    fn the_http_table_puts_the_ceiling_beside_each_figure_and_flags_a_low_one() {
        let r = Report {
            http: vec![
                http_row(
                    "ours",
                    Endpoint::Health,
                    &[60_000.0, 65_000.0, 64_000.0],
                    100_000.0,
                ),
                http_row("ours", Endpoint::Quote, &[29_000.0], 100_000.0),
                http_row("official", Endpoint::Health, &[10_000.0], 100_000.0),
                http_row("official", Endpoint::Quote, &[5_000.0], 90_000.0),
            ],
            ..Report::default()
        };
        let out = r.render();
        assert!(
            out.contains("| ours | GET /health -> 200 | 64,000 (60,000-65,000) |"),
            "{out}"
        );
        assert!(
            out.contains(
                "| 1.00 | 50% / 25% | 100,000 | **1.6x: under 2x, the server figure is a floor** |"
            ),
            "{out}"
        );
        assert!(
            out.contains("| 0.45 | 50% / 25% | 100,000 | 3.4x | none (all 402) |"),
            "{out}"
        );
        assert!(
            out.contains("ours / official: 6.4x on `/health`, 5.8x on the 402 path"),
            "{out}"
        );
        assert!(out.contains("Not measured: the gateway's request log has no `proof_ms`"));
    }

    #[test]
    fn under_2x_with_the_server_core_saturated_says_so() {
        assert_eq!(
            http_ceiling_note(130.0, 100.0, Some(0.97)),
            "**1.3x: under 2x, but the server's core was 97% busy: this is its one-core \
             capacity, as far as one client core can show**"
        );
        assert_eq!(
            http_ceiling_note(130.0, 100.0, Some(0.80)),
            "**1.3x: under 2x, the server figure is a floor**"
        );
        assert_eq!(http_ceiling_note(300.0, 100.0, Some(0.99)), "3.0x");
    }

    #[test]
    fn a_wrong_status_is_reported() {
        let mut row = http_row("ours", Endpoint::Quote, &[100.0], 1000.0);
        row.runs[0].non_2xx = 990;
        assert_eq!(row.anomalies(), (10, 0));
    }

    #[test]
    fn the_bound_is_the_largest_measured_part_or_the_client() {
        let row = PaidRow {
            server: "ours",
            concurrency: 8,
            runs: vec![paid(100, 100)],
            ceiling: vec![paid(1000, 10)],
            facilitator: Duration::from_millis(60),
            chain: Duration::from_millis(18),
            generation: Some(Duration::from_millis(5)),
        };
        let parts = row.parts();
        let seller = parts.iter().find(|p| p.name == "the seller").unwrap();
        assert_eq!(seller.time, Duration::from_millis(25));
        assert_eq!(row.bound(), "the facilitator (42% of latency)");
        let starved = PaidRow {
            ceiling: vec![paid(150, 10)],
            ..row
        };
        assert_eq!(starved.bound(), "the client (ceiling 1.5x)");
        let out = Report {
            paid: vec![starved],
            ..Report::default()
        }
        .render();
        assert!(
            out.contains("| ours | 8 | 100 | 100.0 ms | 100.0 ms | 60% | 18% | 5% | 150 |"),
            "{out}"
        );
    }

    #[test]
    fn the_proof_lookup_is_a_share_of_the_paid_request() {
        let r = Report {
            proof: Some(ProofFigure {
                requests: 40,
                proof: Duration::from_millis(3),
                total: Duration::from_millis(60),
            }),
            ..Report::default()
        };
        assert!(r.render().contains("| 40 | 3.00 ms | 60.0 ms | 5% |"));
    }
}
