//! Round-trip latency: the time of each call, and its median with the tails
//! beside it (p50, p99, p999).

use std::time::Instant;

use crate::figures::Figures;

/// Percentiles of one set of round trips, in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tails {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// The percentiles reported beside every median.
pub const PERCENTILES: [&str; 3] = ["p50", "p99", "p999"];

impl Tails {
    /// The percentiles of `samples` (nearest rank).
    pub fn of(samples: &[f64]) -> Tails {
        assert!(!samples.is_empty(), "percentiles of no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Tails {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    /// The percentile named `name` (one of [`PERCENTILES`]).
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "p50" => self.p50,
            "p99" => self.p99,
            _ => self.p999,
        }
    }

    /// Each percentile's median over `sets` (e.g. fresh pools).
    pub fn median_of(sets: &[Tails]) -> Tails {
        let med =
            |f: fn(&Tails) -> f64| crate::measure::median(&sets.iter().map(f).collect::<Vec<_>>());
        Tails {
            p50: med(|t| t.p50),
            p99: med(|t| t.p99),
            p999: med(|t| t.p999),
        }
    }
}

/// The time of each of `calls` calls of `f(i)`, in µs.
pub fn call_times_us(calls: usize, mut f: impl FnMut(u64)) -> Vec<f64> {
    (0..calls)
        .map(|i| {
            let start = Instant::now();
            f(i as u64);
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// `warmup` untimed calls of `f`, then the tails of `calls` timed ones.
pub fn measure(warmup: usize, calls: usize, mut f: impl FnMut(u64)) -> Tails {
    for i in 0..warmup {
        f(i as u64);
    }
    Tails::of(&call_times_us(calls, f))
}

/// Keys of pinned `apply` latency, one per percentile.
pub fn pinned_key(pct: &str) -> String {
    format!("apply_pinned_{pct}_us")
}

/// Keys of unpinned `apply` latency over fresh pools: `stat` is `min`,
/// `median` or `max` over the pools of each pool's percentile `pct`.
pub fn unpinned_key(pct: &str, stat: &str) -> String {
    format!("apply_unpinned_{pct}_{stat}_us")
}

/// Records pinned tails under [`pinned_key`].
pub fn insert_pinned(f: &mut Figures, tails: Tails) {
    for pct in PERCENTILES {
        f.insert(pinned_key(pct), tails.get(pct));
    }
}

/// Records min / median / max over fresh pools of each percentile under
/// [`unpinned_key`].
pub fn insert_unpinned(f: &mut Figures, pools: &[Tails]) {
    for pct in PERCENTILES {
        let values: Vec<f64> = pools.iter().map(|t| t.get(pct)).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        f.insert(unpinned_key(pct, "min"), min);
        f.insert(unpinned_key(pct, "median"), crate::measure::median(&values));
        f.insert(unpinned_key(pct, "max"), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=1000).map(f64::from).collect();
        let t = Tails::of(&samples);
        assert_eq!((t.p50, t.p99, t.p999), (501.0, 990.0, 999.0));
    }
}
