//! The paid-request tables: settled requests per second, what bounds each
//! figure, and the proof-of-payment lookup.

use std::{fmt::Write as _, time::Duration};

use super::{CEILING_FACTOR, Report, ceiling_note};
use crate::bench::{
    paid::PaidRun,
    peers::PaidRow,
    stats::{Spread, fratio, ms, ratio},
};

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
    pub(super) fn paid_table(&self, s: &mut String) {
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
            crate::bench::paid::WARMUP,
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

    pub(super) fn proof_table(&self, s: &mut String) {
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
}
