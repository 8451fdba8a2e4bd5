//! The chaos suite's fault schedule, as a pure function of the seed.
//!
//! Every random choice is `roll(seed, request, attempt, what)`: the request's
//! index, how many times this request has already reached this point
//! (`attempt`: the first `/verify` for request 7 is attempt 0, its retry
//! attempt 1, ...) and which point it is (`what`). Nothing is drawn from a
//! shared generator in scheduling order, so the same seed gives the same
//! faults to the same requests however the tasks interleave, and
//! [`Plan::digest`] (printed by the suite) names the schedule: two runs with
//! one `CHAOS_SEED` print the same digest.
//!
//! What stays nondeterministic is timing (when a SIGKILL lands relative to a
//! request, which worker takes which request); the pauses between kills are
//! part of the plan.

use std::{fmt, time::Duration};

/// A point in the paid flow where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum What {
    /// gateway -> facilitator `POST /verify`.
    Verify,
    /// gateway -> facilitator `POST /settle`.
    Settle,
    /// The gateway's model generating the image.
    Model,
    /// agent -> gateway `POST` (quote or paid request).
    Gateway,
    /// agent -> S3 `PutObject`.
    S3Put,
    /// agent -> AgentCore Memory `CreateEvent`.
    MemoryWrite,
    /// agent -> AgentCore Memory `ListEvents`.
    MemoryRead,
}

impl What {
    pub const ALL: [What; 7] = [
        What::Verify,
        What::Settle,
        What::Model,
        What::Gateway,
        What::S3Put,
        What::MemoryWrite,
        What::MemoryRead,
    ];

    /// Arrivals at this point that every delivered request has made: a
    /// quote and a paid request to the gateway, at least two Memory writes
    /// (a ledger entry and the turn), one of everything else. The planned
    /// faults of these arrivals must all have fired.
    pub fn guaranteed_arrivals(self) -> u32 {
        match self {
            What::Gateway | What::MemoryWrite => 2,
            _ => 1,
        }
    }

    fn tag(self) -> u64 {
        match self {
            What::Verify => 1,
            What::Settle => 2,
            What::Model => 3,
            What::Gateway => 4,
            What::S3Put => 5,
            What::MemoryWrite => 6,
            What::MemoryRead => 7,
        }
    }
}

/// A fault the suite injects. Each planned on an arrival that every
/// delivered request makes must have fired ([`What::guaranteed_arrivals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VerifyError,
    VerifyHang,
    SettleError,
    /// Forwarded and settled on chain, then the answer is cut.
    SettleLost,
    SettleHang,
    ModelFailure,
    /// The gateway answered; the agent never sees it.
    GatewayDropped,
    S3Error,
    MemoryWriteError,
    MemoryReadError,
}

/// `(kind, where, per mille of the attempts at that point)`. Within one
/// `What`, kinds take consecutive ranges of the roll, in this order.
pub const RATES: &[(Kind, What, u32)] = &[
    (Kind::VerifyError, What::Verify, 40),
    (Kind::VerifyHang, What::Verify, 40),
    (Kind::SettleError, What::Settle, 40),
    (Kind::SettleLost, What::Settle, 50),
    (Kind::SettleHang, What::Settle, 40),
    (Kind::ModelFailure, What::Model, 50),
    (Kind::GatewayDropped, What::Gateway, 40),
    (Kind::S3Error, What::S3Put, 50),
    (Kind::MemoryWriteError, What::MemoryWrite, 15),
    (Kind::MemoryReadError, What::MemoryRead, 40),
];

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::VerifyError,
        Kind::VerifyHang,
        Kind::SettleError,
        Kind::SettleLost,
        Kind::SettleHang,
        Kind::ModelFailure,
        Kind::GatewayDropped,
        Kind::S3Error,
        Kind::MemoryWriteError,
        Kind::MemoryReadError,
    ];

    pub fn rate(self) -> (What, u32) {
        RATES
            .iter()
            .find(|(k, _, _)| *k == self)
            .map(|(_, w, r)| (*w, *r))
            .expect("every kind has a rate")
    }

    /// Faults that the agent must see itself (the AWS SDK would otherwise
    /// retry them away): asserted to have hit the SDK's last attempt.
    pub fn must_reach_agent(self) -> bool {
        matches!(
            self,
            Kind::S3Error | Kind::MemoryWriteError | Kind::MemoryReadError
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::VerifyError => "facilitator /verify HTTP 500",
            Kind::VerifyHang => "facilitator /verify hang (timeout)",
            Kind::SettleError => "facilitator /settle HTTP 502",
            Kind::SettleLost => "facilitator /settle settled, answer lost",
            Kind::SettleHang => "facilitator /settle hang (timeout)",
            Kind::ModelFailure => "gateway model failure",
            Kind::GatewayDropped => "agent -> gateway response dropped",
            Kind::S3Error => "S3 PutObject HTTP 500",
            Kind::MemoryWriteError => "Memory CreateEvent HTTP 500",
            Kind::MemoryReadError => "Memory ListEvents HTTP 500",
        })
    }
}

/// The schedule for one seed and run size.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub seed: u64,
    pub requests: u64,
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Plan {
    pub fn new(seed: u64, requests: u64) -> Plan {
        Plan { seed, requests }
    }

    /// The request whose first arrival at its point gets `kind` whatever
    /// the roll, so that every kind is planned at least once even in a small
    /// run (and at the default size the suite cannot pass by luck with a
    /// kind that never fired).
    pub fn forced(&self, kind: Kind) -> u64 {
        let k = Kind::ALL.iter().position(|x| *x == kind).expect("listed") as u64;
        (mix(self.seed) + k) % self.requests.max(1)
    }

    /// A number in `0..1000` for this (request, attempt, what).
    pub fn roll(&self, request: u64, attempt: u32, what: What) -> u32 {
        let h = mix(mix(mix(mix(self.seed) ^ request) ^ u64::from(attempt)) ^ what.tag());
        u32::try_from(h % 1000).expect("below 1000")
    }

    /// The fault, if any, for this request's `attempt`-th arrival at `what`.
    pub fn fault(&self, request: u64, attempt: u32, what: What) -> Option<Kind> {
        if attempt == 0
            && let Some(kind) = Kind::ALL
                .into_iter()
                .find(|k| k.rate().0 == what && self.forced(*k) == request)
        {
            return Some(kind);
        }
        let r = self.roll(request, attempt, what);
        let mut floor = 0;
        for (kind, w, per_mille) in RATES {
            if *w != what {
                continue;
            }
            if r < floor + per_mille {
                return Some(*kind);
            }
            floor += per_mille;
        }
        None
    }

    /// How long the killer waits before its `kill`-th SIGKILL (0.5 to 3.5 s).
    pub fn kill_pause(&self, kill: u32) -> Duration {
        Duration::from_millis(500 + u64::from(self.roll(u64::MAX, kill, What::Gateway)) * 3)
    }

    /// A digest of the whole schedule (the first `attempts` arrivals of
    /// each request at each point, and 16 times as many kill pauses): equal
    /// digests, equal fault plans.
    pub fn digest(&self, attempts: u32) -> String {
        // FNV-1a over the decisions, in a fixed order.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for request in 0..self.requests {
            for attempt in 0..attempts {
                for what in What::ALL {
                    eat(self
                        .fault(request, attempt, what)
                        .map_or(0, |k| 1 + k as u64));
                }
            }
        }
        for kill in 0..attempts * 16 {
            eat(u64::try_from(self.kill_pause(kill).as_millis()).unwrap_or(u64::MAX));
        }
        format!("{h:016x}")
    }
}

/// The request index in a chaos prompt or session id: the digits after
/// `marker` (`"chaos-session-"`, `"subject number "`).
pub fn request_index(text: &str, marker: &str) -> Option<u64> {
    let at = text.find(marker)? + marker.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_gives_one_schedule() {
        assert_eq!(Plan::new(7, 200).digest(12), Plan::new(7, 200).digest(12));
        assert_ne!(Plan::new(7, 200).digest(12), Plan::new(8, 200).digest(12));
        // The decision for a (request, attempt, what) does not depend on
        // what else was asked before it.
        let p = Plan::new(42, 200);
        let first = p.fault(17, 2, What::Settle);
        for r in 0..1000 {
            let _ = p.fault(r, 0, What::Settle);
        }
        assert_eq!(p.fault(17, 2, What::Settle), first);
    }

    #[test]
    fn each_kind_is_drawn_at_about_its_rate() {
        let p = Plan::new(3, 20_000);
        let n = 20_000u64;
        for kind in Kind::ALL {
            let (what, per_mille) = kind.rate();
            let hits = (0..n)
                .filter(|r| p.fault(*r, 0, what) == Some(kind))
                .count() as f64;
            let expected = n as f64 * f64::from(per_mille) / 1000.0;
            assert!(
                (hits - expected).abs() < expected * 0.2,
                "{kind}: {hits} vs {expected}"
            );
        }
    }

    #[test]
    fn every_kind_is_planned_on_a_first_arrival_even_in_a_small_run() {
        for seed in 0..50 {
            let p = Plan::new(seed, 12);
            for kind in Kind::ALL {
                let what = kind.rate().0;
                assert!(
                    (0..12).any(|r| p.fault(r, 0, what) == Some(kind)),
                    "seed {seed}: {kind} never planned"
                );
            }
        }
    }

    #[test]
    fn request_indices_are_read_from_prompts_and_sessions() {
        assert_eq!(
            request_index("a picture of chaos subject number 0042", "subject number "),
            Some(42)
        );
        assert_eq!(
            request_index(
                "/b/default/chaos-session-000007-0000/img.png",
                "chaos-session-"
            ),
            Some(7)
        );
        assert_eq!(request_index("nothing here", "chaos-session-"), None);
    }
}
