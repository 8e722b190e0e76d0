//! When to spin before sleeping, and for how long: the bounded, adaptive
//! spin that keeps two busy processes on two CPUs off the futex.
//!
//! - Never with a single CPU in this thread's affinity mask (re-read every
//!   4,096 waits: `taskset` or a cgroup can change it).
//! - Never when the peer last ran on this CPU: it needs this CPU to answer.
//! - Otherwise up to [`DEFAULT_SPIN`] (`PROCPOOL_SPIN_US` microseconds; 0
//!   turns spinning off).
//! - At most one thread fewer than there are CPUs spins at a time in one
//!   process (none with one CPU), and none while the machine is crowded
//!   (more than twice as many threads runnable as this thread may use CPUs,
//!   from `/proc/loadavg`, read at most every [`CROWD_CHECK`]): many waiters
//!   at once (a large pool's workers and slot threads, other programs) would
//!   otherwise take the CPUs their peers need to answer.
//! - A spin for a new frame that ends without one is a miss: after k misses
//!   in a row the next 2^k − 1 such waits (at most 255) skip the spin; a hit
//!   resets the count. A quiet side thus spins at most once per wait and
//!   then sleeps, and an idle pool costs nothing.
//! - A wait in the middle of a frame (for its next bytes, or for room to
//!   write them) is for a peer that is copying it: it spins whatever the
//!   count, and neither counts as a hit nor as a miss.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crate::sys;

/// The longest spin before sleeping.
const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Environment variable: the spin budget in microseconds (0: never spin).
pub(crate) const ENV_SPIN_US: &str = "PROCPOOL_SPIN_US";
/// How many waits between two looks at the affinity mask.
const RECHECK: u32 = 4096;
/// At most 2^MAX_MISSES − 1 waits are skipped after misses in a row.
const MAX_MISSES: u32 = 8;

/// How often a spinner looks at how crowded the machine is.
const CROWD_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// Threads of this process spinning right now.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// The spin budget of this process, read once.
fn budget() -> Duration {
    static BUDGET: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var(ENV_SPIN_US)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_SPIN, |us| Duration::from_micros(us.min(10_000)))
    })
}

/// How many threads of this process may spin at once (0: none).
fn spinners(max: Duration) -> usize {
    match sys::allowed_cpus() {
        _ if max.is_zero() => 0,
        cpus => cpus.saturating_sub(1),
    }
}

/// A turn to spin for `budget`, handed back when dropped.
pub(crate) struct Turn {
    pub(crate) budget: Duration,
    spinning: &'static AtomicUsize,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.spinning.fetch_sub(1, Relaxed);
    }
}

/// One side's spin state.
pub(crate) struct Spinner {
    max: Duration,
    /// How many threads of this process may spin at once, from the
    /// affinity mask as last read (0: none).
    spinners: usize,
    /// The count of spinning threads ([`SPINNING`], but in tests).
    spinning: &'static AtomicUsize,
    /// More threads runnable than CPUs, as last read, and when to look again.
    crowded: bool,
    next_look: Option<std::time::Instant>,
    skip: u32,
    misses: u32,
    since_check: u32,
}

impl Spinner {
    pub(crate) fn new() -> Spinner {
        let max = budget();
        Spinner {
            max,
            spinners: spinners(max),
            spinning: &SPINNING,
            crowded: false,
            next_look: None,
            skip: 0,
            misses: 0,
            since_check: 0,
        }
    }

    /// Whether to spin before this wait sleeps, and how long (`None`: not
    /// at all), given the CPU the peer last ran on and ours, and whether the
    /// wait is in the middle of a frame (`streaming`).
    pub(crate) fn budget(&mut self, peer_cpu: u32, my_cpu: u32, streaming: bool) -> Option<Turn> {
        self.since_check += 1;
        if self.since_check >= RECHECK {
            self.since_check = 0;
            self.spinners = spinners(self.max);
        }
        if self.spinners == 0 || peer_cpu == my_cpu {
            return None;
        }
        if !streaming && self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        if self.is_crowded() {
            return None;
        }
        if self.spinning.fetch_add(1, Relaxed) >= self.spinners {
            self.spinning.fetch_sub(1, Relaxed);
            return None;
        }
        Some(Turn {
            budget: self.max,
            spinning: self.spinning,
        })
    }

    /// Whether more than twice as many threads are runnable as there are
    /// CPUs to spin on (looked at every [`CROWD_CHECK`] at most).
    fn is_crowded(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self.next_look.is_none_or(|at| now >= at) {
            self.next_look = Some(now + CROWD_CHECK);
            self.crowded = sys::runnable_threads().is_some_and(|n| n > 2 * (self.spinners + 1));
        }
        self.crowded
    }

    /// The spin ended with the answer.
    pub(crate) fn hit(&mut self) {
        self.misses = 0;
    }

    /// The spin ended without it: back off.
    pub(crate) fn miss(&mut self) {
        self.misses = (self.misses + 1).min(MAX_MISSES);
        self.skip = (1 << self.misses) - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_only_for_a_peer_elsewhere_and_backs_off_after_misses() {
        static SPINNING: AtomicUsize = AtomicUsize::new(0);
        let mut spin = Spinner {
            max: Duration::from_micros(50),
            spinners: usize::MAX,
            spinning: &SPINNING,
            crowded: false,
            next_look: Some(std::time::Instant::now() + Duration::from_secs(3600)),
            skip: 0,
            misses: 0,
            since_check: 0,
        };
        let budget = |spin: &mut Spinner, peer, streaming| {
            spin.budget(peer, 1, streaming).map(|turn| turn.budget)
        };
        assert_eq!(budget(&mut spin, 1, false), None, "the peer shares our CPU");
        assert_eq!(budget(&mut spin, 1, true), None);
        assert_eq!(budget(&mut spin, 0, false), Some(Duration::from_micros(50)));
        spin.miss();
        assert_eq!(budget(&mut spin, 0, false), None, "1 miss: skip 1 wait");
        assert!(budget(&mut spin, 0, false).is_some());
        spin.miss();
        let skipped = (0..20)
            .take_while(|_| budget(&mut spin, 0, false).is_none())
            .count();
        assert_eq!(skipped, 3, "2 misses in a row: skip 3 waits");
        for _ in 0..20 {
            spin.miss();
        }
        let skipped = (0..1000)
            .take_while(|_| budget(&mut spin, 0, false).is_none())
            .count();
        assert_eq!(skipped, 255, "the backoff is capped");
        spin.miss();
        assert!(
            budget(&mut spin, 0, true).is_some(),
            "mid-frame: no backoff"
        );
        assert_eq!(budget(&mut spin, 0, false), None);
        spin.hit();
        spin.miss();
        assert_eq!(budget(&mut spin, 0, false), None);
        assert!(
            budget(&mut spin, 0, false).is_some(),
            "a hit reset the count"
        );
        // A turn at a time, per process: a second waiter sleeps at once.
        spin.spinners = 1;
        let first = spin.budget(0, 1, true).expect("a turn");
        assert!(spin.budget(0, 1, true).is_none(), "one spinner at a time");
        drop(first);
        assert!(spin.budget(0, 1, true).is_some());
        spin.spinners = 0;
        assert_eq!(budget(&mut spin, 0, false), None, "one CPU: never");
    }
}
