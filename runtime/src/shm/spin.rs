//! When to spin before sleeping, and for how long: the bounded, adaptive
//! spin that keeps two busy processes on two CPUs off the futex.
//!
//! - Never with a single CPU in this thread's affinity mask (re-read every
//!   4,096 waits: `taskset` or a cgroup can change it).
//! - Never when the peer last ran on this CPU: it needs this CPU to answer.
//! - Otherwise up to [`DEFAULT_SPIN`] (`PROCPOOL_SPIN_US` microseconds; 0
//!   turns spinning off).
//! - A spin for a new frame that ends without one is a miss: after k misses
//!   in a row the next 2^k − 1 such waits (at most 255) skip the spin; a hit
//!   resets the count. A quiet side thus spins at most once per wait and
//!   then sleeps, and an idle pool costs nothing.
//! - A wait in the middle of a frame (for its next bytes, or for room to
//!   write them) is for a peer that is copying it: it spins whatever the
//!   count, and neither counts as a hit nor as a miss.

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

/// One side's spin state.
pub(crate) struct Spinner {
    max: Duration,
    /// More than one CPU in the affinity mask (as last read).
    allowed: bool,
    skip: u32,
    misses: u32,
    since_check: u32,
}

impl Spinner {
    pub(crate) fn new() -> Spinner {
        let max = budget();
        Spinner {
            max,
            allowed: max > Duration::ZERO && sys::allowed_cpus() > 1,
            skip: 0,
            misses: 0,
            since_check: 0,
        }
    }

    /// How long to spin before this wait sleeps (`None`: not at all), given
    /// the CPU the peer last ran on and ours, and whether the wait is in the
    /// middle of a frame (`streaming`).
    pub(crate) fn budget(
        &mut self,
        peer_cpu: u32,
        my_cpu: u32,
        streaming: bool,
    ) -> Option<Duration> {
        self.since_check += 1;
        if self.since_check >= RECHECK {
            self.since_check = 0;
            self.allowed = self.max > Duration::ZERO && sys::allowed_cpus() > 1;
        }
        if !self.allowed || peer_cpu == my_cpu {
            return None;
        }
        if !streaming && self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        Some(self.max)
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
        let mut spin = Spinner {
            max: Duration::from_micros(50),
            allowed: true,
            skip: 0,
            misses: 0,
            since_check: 0,
        };
        assert_eq!(spin.budget(1, 1, false), None, "the peer shares our CPU");
        assert_eq!(spin.budget(1, 1, true), None);
        assert_eq!(spin.budget(0, 1, false), Some(Duration::from_micros(50)));
        spin.miss();
        assert_eq!(spin.budget(0, 1, false), None, "1 miss: skip 1 wait");
        assert!(spin.budget(0, 1, false).is_some());
        spin.miss();
        let skipped = (0..20)
            .take_while(|_| spin.budget(0, 1, false).is_none())
            .count();
        assert_eq!(skipped, 3, "2 misses in a row: skip 3 waits");
        for _ in 0..20 {
            spin.miss();
        }
        let skipped = (0..1000)
            .take_while(|_| spin.budget(0, 1, false).is_none())
            .count();
        assert_eq!(skipped, 255, "the backoff is capped");
        spin.miss();
        assert!(spin.budget(0, 1, true).is_some(), "mid-frame: no backoff");
        assert_eq!(spin.budget(0, 1, false), None);
        spin.hit();
        spin.miss();
        assert_eq!(spin.budget(0, 1, false), None);
        assert!(spin.budget(0, 1, false).is_some(), "a hit reset the count");
        spin.allowed = false;
        assert_eq!(spin.budget(0, 1, false), None, "one CPU: never");
    }
}
