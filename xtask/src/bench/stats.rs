//! Small statistics and formatting for the report: pure, unit-tested.

use std::time::Duration;

/// Nearest-rank percentile (sorts `v`); zero for an empty slice.
pub fn percentile(v: &mut [Duration], p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let idx = ((v.len() * p).div_ceil(100)).clamp(1, v.len()) - 1;
    v[idx]
}

/// The median of several runs and their range: the spread a reader needs to
/// judge a figure measured on a shared machine.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// `12,345 (12,001-12,700)`; the range is left out for a single run.
    pub fn rate(&self) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            thousands(self.median)
        } else {
            format!(
                "{} ({}-{})",
                thousands(self.median),
                thousands(self.min),
                thousands(self.max)
            )
        }
    }
}

/// `a / b`, zero when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// `a / b` for rates, zero when `b` is zero.
pub fn fratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

pub fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.1} ms")
    }
}

/// A whole number with thousands separators (`65,012`); rates under 100
/// keep one decimal (`31.4`).
pub fn thousands(x: f64) -> String {
    if x < 100.0 {
        return format!("{x:.1}");
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 99), Duration::from_millis(99));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(percentile(&mut one, 99), Duration::from_millis(7));
        assert_eq!(percentile(&mut [], 50), Duration::ZERO);
    }

    #[test]
    fn a_spread_is_the_median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!(
            s,
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]), Spread::default());
        assert_eq!(
            Spread::of(&[65_012.4, 64_000.0, 66_100.0]).rate(),
            "65,012 (64,000-66,100)"
        );
        assert_eq!(Spread::of(&[31.42]).rate(), "31.4");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(100.0), "100");
        assert_eq!(ms(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(ms(Duration::from_millis(76)), "76.0 ms");
        assert!((fratio(1.0, 0.0)).abs() < f64::EPSILON);
        assert!((ratio(Duration::from_secs(1), Duration::from_secs(4)) - 0.25).abs() < 1e-9);
    }
}
