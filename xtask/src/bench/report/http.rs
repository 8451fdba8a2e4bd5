//! The HTTP path table: `wrk` figures, the client's ceiling and how busy
//! the cores were.

use std::fmt::Write as _;

use super::{CEILING_FACTOR, Report, SATURATED, busy, ceiling_note, median_duration, median_f64};
use crate::bench::{
    peers::{Endpoint, HttpRow},
    stats::{Spread, fratio, ms},
};

/// [`ceiling_note`] for a `wrk` figure, which also knows how busy the
/// server's core was.
pub(super) fn http_ceiling_note(ceiling: f64, server: f64, server_busy: Option<f64>) -> String {
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

impl HttpRow {
    pub fn rate(&self) -> Spread {
        Spread::of(&self.runs.iter().map(|r| r.per_sec).collect::<Vec<_>>())
    }

    pub fn ceiling_rate(&self) -> Spread {
        Spread::of(&self.ceiling.iter().map(|r| r.per_sec).collect::<Vec<_>>())
    }

    /// Responses that were not the expected status, and socket errors.
    pub(super) fn anomalies(&self) -> (u64, u64) {
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

impl Report {
    pub(super) fn http_table(&self, s: &mut String) {
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
}
