//! How busy each CPU core was over an interval, from `/proc/stat`.
//!
//! The load client's ceiling (a canned responder on the server's core) says
//! how fast the client can go; a core's busy share says whether the server
//! had any time left. Where the client cannot drive twice the server's rate
//! (a one-core server as cheap as the responder itself, as `/health` is) a
//! server core busy all the time still shows the figure is the server's
//! capacity on that core, not a client waiting on nothing.

/// Jiffies per core: `(busy, total)`, indexed by core number.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(Vec<(u64, u64)>);

impl Snapshot {
    /// Now, or `None` where `/proc/stat` cannot be read (not Linux).
    pub fn take() -> Option<Snapshot> {
        parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The share of `core`'s time spent busy between `self` and `later`.
    pub fn busy_until(&self, later: &Snapshot, core: usize) -> Option<f64> {
        let (b0, t0) = *self.0.get(core)?;
        let (b1, t1) = *later.0.get(core)?;
        let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
        Some(b1.saturating_sub(b0) as f64 / total as f64)
    }
}

/// `cpuN user nice system idle iowait irq softirq steal ...`: idle and
/// iowait are idle, the rest (up to steal) busy.
fn parse(text: &str) -> Option<Snapshot> {
    let mut cores = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Some(Ok(n)) = fields.next().map(str::parse::<usize>) else {
            continue; // the aggregate "cpu" line
        };
        let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        let idle = v[3] + v[4];
        let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        if cores.len() <= n {
            cores.resize(n + 1, (0, 0));
        }
        cores[n] = (busy, busy + idle);
    }
    (!cores.is_empty()).then_some(Snapshot(cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_per_core_from_proc_stat() {
        let a = parse(
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0 0 0\n\
             intr 1 2 3\n",
        )
        .unwrap();
        let b = parse(
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 50 0 40 50 5 2 3 0 0 0\ncpu1 6 0 6 138 0 0 0 0 0 0\n",
        )
        .unwrap();
        // core 0: busy 5+5 -> 50+40+2+3 (+85 of +100 jiffies)
        assert_eq!(a.busy_until(&b, 0), Some(0.85));
        // core 1: busy +2 of +100
        assert_eq!(a.busy_until(&b, 1), Some(0.02));
        assert_eq!(a.busy_until(&b, 2), None);
    }

    #[test]
    fn this_machine_has_readable_cores() {
        if cfg!(target_os = "linux") {
            let s = Snapshot::take().expect("/proc/stat");
            assert!(!s.0.is_empty());
        }
    }
}
