//! Timing, medians and peak memory.

use std::time::{Duration, Instant};

use procpool_bench::spin;
use serde_bytes::ByteBuf;

use crate::figures::{key, Figures};
use crate::plan::Plan;

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "median of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Runs `f` `reps` times and returns the median of what it measured.
pub fn median_of(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    let samples: Vec<f64> = (0..reps.max(1)).map(|_| f()).collect();
    median(&samples)
}

/// How long `f` took, and what it returned.
pub fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// Bytes per second of a round trip that moved `bytes` each way, in MB/s.
pub fn round_trip_mbs(bytes: usize, took: Duration) -> f64 {
    2.0 * bytes as f64 / took.as_secs_f64() / 1e6
}

/// The number of `spin` iterations that takes about `target` on this machine
/// (from the fastest of a few samples: other load only ever slows it down).
pub fn calibrate_spin(target: Duration) -> u64 {
    let mut iters = 100_000u64;
    while timed(|| std::hint::black_box(spin(iters))).0 < Duration::from_millis(20) {
        iters *= 2;
    }
    let fastest = (0..5)
        .map(|_| timed(|| std::hint::black_box(spin(iters))).0.as_secs_f64())
        .fold(f64::INFINITY, f64::min);
    (target.as_secs_f64() / fastest * iters as f64) as u64
}

/// Workload 6 on one system: MB/s of an identity task per payload size, once
/// with a `Vec<u8>` and once with a `ByteBuf`; each echo returns the length
/// it got back.
pub fn payloads(
    plan: &Plan,
    f: &mut Figures,
    mut echo_vec: impl FnMut(Vec<u8>) -> usize,
    mut echo_buf: impl FnMut(ByteBuf) -> usize,
) {
    for &(mib, reps) in &plan.payloads {
        let data = vec![7u8; mib << 20];
        let vec = median_of(reps, || {
            let input = data.clone();
            let (took, len) = timed(|| echo_vec(input));
            assert_eq!(len, data.len());
            round_trip_mbs(data.len(), took)
        });
        f.insert(key::payload(mib, false), vec);
        let buf = ByteBuf::from(data);
        let bytes = median_of(reps, || {
            let input = buf.clone();
            let (took, len) = timed(|| echo_buf(input));
            assert_eq!(len, buf.len());
            round_trip_mbs(buf.len(), took)
        });
        f.insert(key::payload(mib, true), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
