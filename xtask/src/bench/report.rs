//! The report: Markdown tables from the figures. Pure (no I/O), so what a
//! table claims is unit-tested.

use std::{fmt::Write as _, time::Duration};

use super::{
    agent::{LoadFigures, Split, StartupSample, Usage},
    paid::PaidRun,
    peers::{Endpoint, HttpRow, PaidRow},
    stats::{Spread, fratio, ms, percentile, ratio, thousands},
};

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

/// A server core at least this busy had no time left: the figure is the
/// server's capacity on that core whatever the client could do.
pub const SATURATED: f64 = 0.95;

/// [`ceiling_note`] for a `wrk` figure, which also knows how busy the
/// server's core was.
fn http_ceiling_note(ceiling: f64, server: f64, server_busy: Option<f64>) -> String {
    let x = fratio(ceiling, server);
    match server_busy {
        Some(b) if x < CEILING_FACTOR && b >= SATURATED => format!(
            "**{x:.1}x: under {CEILING_FACTOR:.0}x, but the server's core was {:.0}% busy: \
             this is its one-core capacity, as far as one client core can show**",
            b * 100.0
        ),
        _ => ceiling_note(ceiling, server),
    }
}

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

impl HttpRow {
    pub fn rate(&self) -> Spread {
        Spread::of(&self.runs.iter().map(|r| r.per_sec).collect::<Vec<_>>())
    }

    pub fn ceiling_rate(&self) -> Spread {
        Spread::of(&self.ceiling.iter().map(|r| r.per_sec).collect::<Vec<_>>())
    }

    /// Responses that were not the expected status, and socket errors.
    fn anomalies(&self) -> (u64, u64) {
        let wrong = self
            .runs
            .iter()
            .map(|r| {
                if self.status == 200 {
                    r.non_2xx
                } else {
                    r.requests.saturating_sub(r.non_2xx)
                }
            })
            .sum();
        (wrong, self.runs.iter().map(|r| r.socket_errors).sum())
    }
}

/// One part of a paid request's mean latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub name: &'static str,
    pub time: Duration,
}

impl PaidRow {
    pub fn rate(&self) -> Spread {
        Spread::of(&self.runs.iter().map(PaidRun::per_sec).collect::<Vec<_>>())
    }

    pub fn ceiling_rate(&self) -> Spread {
        Spread::of(
            &self
                .ceiling
                .iter()
                .map(PaidRun::per_sec)
                .collect::<Vec<_>>(),
        )
    }

    fn pooled(runs: &[PaidRun]) -> PaidRun {
        PaidRun {
            started_at: runs.first().map_or(std::time::UNIX_EPOCH, |r| r.started_at),
            wall: runs.iter().map(|r| r.wall).sum(),
            latencies: runs.iter().flat_map(|r| r.latencies.clone()).collect(),
            statuses: Default::default(),
            settled: runs.iter().map(|r| r.settled).sum(),
            body_bytes: 0,
            errors: runs.iter().flat_map(|r| r.errors.clone()).collect(),
        }
    }

    /// Requests that did not settle, of all counted, and the first failure.
    pub fn failures(&self) -> (u64, usize, Option<String>) {
        let pooled = Self::pooled(&self.runs);
        let total = pooled.latencies.len();
        let failed = (total as u64).saturating_sub(pooled.settled);
        (failed, total, pooled.errors.first().cloned())
    }

    /// The mean latency split into what the measurements attribute: the
    /// chain (facilitator's JSON-RPC), the facilitator's own time, the
    /// seller's generation (ours), the client (its mean latency against the
    /// canned responder), and the seller's own time (the rest).
    pub fn parts(&self) -> Vec<Part> {
        let latency = Self::pooled(&self.runs).mean();
        let client = Self::pooled(&self.ceiling).mean();
        let generation = self.generation.unwrap_or_default();
        let seller = latency.saturating_sub(self.facilitator + generation + client);
        let mut parts = vec![
            Part {
                name: "the chain",
                time: self.chain,
            },
            Part {
                name: "the facilitator",
                time: self.facilitator.saturating_sub(self.chain),
            },
            Part {
                name: "the client",
                time: client,
            },
            Part {
                name: "the seller",
                time: seller,
            },
        ];
        if self.generation.is_some() {
            parts.push(Part {
                name: "generation",
                time: generation,
            });
        }
        parts
    }

    /// What bounds the figure, from the measurements: the client when its
    /// ceiling is under [`CEILING_FACTOR`] times the figure, otherwise the
    /// largest part of the latency.
    pub fn bound(&self) -> String {
        let (rate, ceiling) = (self.rate().median, self.ceiling_rate().median);
        if fratio(ceiling, rate) < CEILING_FACTOR {
            return format!("the client (ceiling {:.1}x)", fratio(ceiling, rate));
        }
        let latency = Self::pooled(&self.runs).mean();
        let top = self
            .parts()
            .into_iter()
            .max_by_key(|p| p.time)
            .unwrap_or(Part {
                name: "?",
                time: Duration::ZERO,
            });
        format!(
            "{} ({:.0}% of latency)",
            top.name,
            100.0 * ratio(top.time, latency)
        )
    }
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

    fn http_table(&self, s: &mut String) {
        if self.http.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "## HTTP path: our gateway beside the official x402 seller\n"
        );
        let _ = writeln!(
            s,
            "Measured: requests/s and latency of `GET /health` (each server's own ceiling: no \
             payment logic) and of the unpaid request, which each seller answers with a 402 and \
             its payment requirements. Ours: `POST /generate_image`; official: `@x402/express` \
             2.27 on Express 5 (`local/interop/express-seller.mjs`, `POST /paid`).\n"
        );
        let _ = writeln!(
            s,
            "| server | request | requests/s | p50 | p99 | x own /health | cores busy (server / client) | client ceiling (req/s) | ceiling / server | anomalies |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for row in &self.http {
            let health = self
                .http
                .iter()
                .find(|r| r.server == row.server && r.endpoint == Endpoint::Health)
                .map_or(0.0, |r| r.rate().median);
            let request = match row.endpoint {
                Endpoint::Health => "GET /health -> 200",
                Endpoint::Quote => "unpaid POST -> 402",
            };
            let (wrong, errors) = row.anomalies();
            let anomalies = if wrong == 0 && errors == 0 {
                format!("none (all {})", row.status)
            } else {
                format!("{wrong} not {}, {errors} socket errors", row.status)
            };
            let (rate, ceiling) = (row.rate(), row.ceiling_rate());
            let server_busy = median_f64(row.runs.iter().map(|r| r.server_busy));
            let client_busy = median_f64(row.runs.iter().map(|r| r.client_busy));
            let _ = writeln!(
                s,
                "| {} | {request} | {} | {} | {} | {:.2} | {} / {} | {} | {} | {anomalies} |",
                row.server,
                rate.rate(),
                ms(median_duration(row.runs.iter().map(|r| r.p50))),
                ms(median_duration(row.runs.iter().map(|r| r.p99))),
                fratio(rate.median, health),
                busy(server_busy),
                busy(client_busy),
                ceiling.rate(),
                http_ceiling_note(ceiling.median, rate.median, server_busy),
            );
        }
        let pair = |server_a: &str, server_b: &str, e: Endpoint| {
            let get = |n: &str| {
                self.http
                    .iter()
                    .find(|r| r.server == n && r.endpoint == e)
                    .map(|r| r.rate().median)
            };
            Some(fratio(get(server_a)?, get(server_b)?))
        };
        let names: Vec<&str> = {
            let mut v: Vec<&str> = self.http.iter().map(|r| r.server).collect();
            v.dedup();
            v
        };
        if let [ours, theirs] = names.as_slice() {
            if let (Some(h), Some(q)) = (
                pair(ours, theirs, Endpoint::Health),
                pair(ours, theirs, Endpoint::Quote),
            ) {
                let _ = writeln!(
                    s,
                    "\n{ours} / {theirs}: {h:.1}x on `/health`, {q:.1}x on the 402 path \
                     (medians of the same run).\n"
                );
            }
        } else {
            s.push('\n');
        }
    }

    fn paid_table(&self, s: &mut String) {
        if self.paid.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "## Paid requests end to end: our gateway beside the official x402 seller\n"
        );
        let _ = writeln!(
            s,
            "Measured: the official x402 v2 client pays each seller (402, sign an EIP-3009 \
             authorization, retry with `PAYMENT-SIGNATURE`, the seller verifies and settles \
             through the facilitator, which submits the transfer to Anvil). A request counts \
             when it answers 200 with a settlement header; every run must settle all of its \
             requests. Ours also generates a 1024x1024 PNG (its generation share is shown); the \
             official seller returns a small JSON body. Shares are of the mean latency: \
             facilitator = the seller's `/verify` + `/settle` calls as a timing proxy saw them \
             (the chain's part included), chain = the facilitator's JSON-RPC calls to Anvil as \
             a second proxy saw them, client = the client's mean latency against the canned \
             responder. Bound by = the largest part (or the client, when its ceiling is under \
             {CEILING_FACTOR:.0}x). Each figure: {} runs of max({}, 2 x concurrency) paid requests, \
             each run after {} warm-up payments that are not counted; rates are the median and \
             range of the runs, latencies pooled over them.\n",
            self.meta.runs,
            self.meta.paid_requests,
            super::paid::WARMUP,
        );
        let _ = writeln!(
            s,
            "| server | concurrency | paid requests/s | p50 | p99 | facilitator share | of which chain | generation share | client ceiling (paid/s) | ceiling / server | bound by | not settled |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
        );
        let mut notes = Vec::new();
        for row in &self.paid {
            let pooled = PaidRow::pooled(&row.runs);
            let mean = pooled.mean();
            let (rate, ceiling) = (row.rate(), row.ceiling_rate());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.0}% | {:.0}% | {} | {} | {} | {} | {} |",
                row.server,
                row.concurrency,
                rate.rate(),
                ms(pooled.p(50)),
                ms(pooled.p(99)),
                100.0 * ratio(row.facilitator, mean),
                100.0 * ratio(row.chain, mean),
                row.generation
                    .map_or_else(|| "-".into(), |g| format!("{:.0}%", 100.0 * ratio(g, mean))),
                ceiling.rate(),
                ceiling_note(ceiling.median, rate.median),
                row.bound(),
                {
                    let (failed, total, first) = row.failures();
                    if let Some(e) = first {
                        notes.push(format!(
                            "{} at concurrency {}: {e}",
                            row.server, row.concurrency
                        ));
                    }
                    format!("{failed} of {total}")
                },
            );
        }
        s.push('\n');
        for n in notes {
            let _ = writeln!(
                s,
                "- first failure, {}\n",
                n.replace('|', "/").replace('\n', " ")
            );
        }
    }

    fn proof_table(&self, s: &mut String) {
        let _ = writeln!(s, "## The gateway's proof-of-payment lookup\n");
        match &self.proof {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "| settled requests | proof lookup (`proof_ms`, median) | paid request at the gateway (`total_ms`, median) | share |\n\
                     |---:|---:|---:|---:|\n\
                     | {} | {} | {} | {:.0}% |\n",
                    p.requests,
                    ms(p.proof),
                    ms(p.total),
                    100.0 * ratio(p.proof, p.total)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "Not measured: the gateway's request log has no `proof_ms` field in this build.\n"
                );
            }
        }
    }

    fn startup_table(&self, s: &mut String) {
        let Some(st) = &self.startup else { return };
        let _ = writeln!(s, "## Start-up, memory, size\n");
        let _ = writeln!(
            s,
            "Measured: process start to the first healthy answer (agent `/ping`, gateway \
             `/health`), polled every millisecond, median of the samples; resident memory after \
             ten requests.\n"
        );
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
                "| {name} | {} | {:.1} | {} | {:.1} MiB |",
                ms(x.median),
                ratio(x.median, st.noop),
                mib(x.rss_kib),
                size as f64 / (1024.0 * 1024.0)
            );
        }
        s.push('\n');
    }

    fn agent_tables(&self, s: &mut String) {
        if let Some(splits) = &self.split {
            let med = |f: &dyn Fn(&Split) -> Duration| median_duration(splits.iter().map(f));
            let total = med(&|x| x.total);
            let _ = writeln!(
                s,
                "## One paid image through the agent, concurrency 1 ({} runs, medians)\n",
                splits.len()
            );
            let _ = writeln!(
                s,
                "Measured: a client asks the agent for an image; timing proxies between agent \
                 and gateway and between gateway and facilitator split the time; generation is \
                 the gateway's logged `generate_ms`.\n"
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
        if let Some(l) = &self.load {
            let _ = writeln!(
                s,
                "## Paid images through the agent, concurrency {} (one session each)\n",
                l.sessions
            );
            let _ = writeln!(
                s,
                "Measured: {} sessions start at once, each asks for one image; settlements are \
                 counted on chain; the agent's RSS is sampled every 10 ms while they run.\n",
                l.sessions
            );
            let _ = writeln!(
                s,
                "| successes | settlements on chain | USDC spent | p50 | p99 | throughput | agent RSS idle | agent RSS peak under load |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} / {} | {} | {}.{:06} | {} | {} | {} images/s | {} | {} |",
                l.successes,
                l.sessions,
                l.settlements,
                l.spent_atomic / 1_000_000,
                l.spent_atomic % 1_000_000,
                ms(l.p50),
                ms(l.p99),
                thousands(l.successes as f64 / l.wall.as_secs_f64()),
                mib(l.rss_idle_kib),
                mib(l.rss_peak_kib),
            );
            let verdict = if l.settlements == l.successes {
                "equal, as they must be"
            } else {
                "NOT EQUAL: a money bug"
            };
            let _ = writeln!(s, "\nSettlements vs successes: {verdict}.\n");
        }
        if let Some((within, consent)) = &self.usage {
            let _ = writeln!(s, "## Model calls per paid image\n");
            let _ = writeln!(s, "| path | model calls | input tokens | output tokens |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for (name, u) in [
                ("within budget (one tool call pays and generates)", within),
                ("consent path (ask, user says yes, pay)", consent),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} |",
                    u.model_calls, u.input_tokens, u.output_tokens
                );
            }
            let _ = writeln!(
                s,
                "\nTokens are the offline model's estimates (characters / 4); the calls are exact. \
                 The original sample's prompt drives five model calls per image.\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::wrk::WrkRun;

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
