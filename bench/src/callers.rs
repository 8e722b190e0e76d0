//! Many callers: 1, 4 and 16 threads calling `apply` at once on one pool of
//! `processes` workers (unpinned). Each thread makes its share of the same
//! total of calls; the figures are the calls per second of all threads
//! together and the tails of every call's round trip.

use procpool::{Error, Pool};

use crate::figures::Figures;
use crate::latency::{self, Tails, PERCENTILES};
use crate::measure::timed;
use crate::plan::Plan;
use crate::tasks::apply_inc;

/// Numbers of calling threads measured.
pub const THREADS: [usize; 3] = [1, 4, 16];

/// The key of `what` (`cps`, or a percentile such as `p99`) with `threads` callers.
pub fn key(threads: usize, what: &str) -> String {
    match what {
        "cps" => format!("callers_{threads}t_cps"),
        pct => format!("callers_{threads}t_{pct}_us"),
    }
}

/// Measures every thread count on one fresh pool, in [`THREADS`] order.
pub fn measure(plan: &Plan, f: &mut Figures) -> Result<(), Error> {
    let pool = Pool::new(plan.processes)?;
    for i in 0..plan.apply_warmup as u64 {
        apply_inc(&pool, i)?;
    }
    for threads in THREADS {
        let per_thread = (plan.callers_calls / threads).max(1);
        let (took, samples) = timed(|| all_calling(&pool, threads, per_thread));
        let calls = per_thread * threads;
        f.insert(key(threads, "cps"), calls as f64 / took.as_secs_f64());
        let tails = Tails::of(&samples);
        for pct in PERCENTILES {
            f.insert(key(threads, pct), tails.get(pct));
        }
    }
    Ok(())
}

/// `threads` threads each making `calls` calls; every call's time in µs.
fn all_calling(pool: &Pool, threads: usize, calls: usize) -> Vec<f64> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    latency::call_times_us(calls, |i| {
                        assert_eq!(apply_inc(pool, i).expect("apply"), i + 1);
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("caller thread"))
            .collect()
    })
}
