//! Outcomes a node settled in the last few seconds. If Redis loses a
//! DELIVER in a crash (an acknowledged write not yet persisted), the entry
//! reappears in the node's pending list: the node delivers the remembered
//! outcome again instead of running the call a second time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::shared::Done;

/// Set for tests ([`keep_outcomes_for`]): how long the nodes of this
/// process keep an outcome, in milliseconds (0: [`Recent::MAX_AGE`]).
static KEEP_FOR_MS: AtomicU64 = AtomicU64::new(0);

/// For tests of the byte bound: from now on the nodes of this process keep
/// each outcome for `age` (at most: the count and byte bounds still evict
/// the oldest first) instead of [`Recent::MAX_AGE`], so that how much they
/// keep depends on what they served, not on how fast the machine served
/// it.
pub(crate) fn keep_outcomes_for(age: Duration) {
    let ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX).max(1);
    KEEP_FOR_MS.store(ms, Ordering::Relaxed);
}

/// Recently settled outcomes, bounded by age, count, each body's size and
/// their bytes together; the oldest go first.
#[derive(Default)]
pub(crate) struct Recent {
    by_entry: HashMap<String, Done>,
    /// Each entry once, oldest first, with when it was first remembered.
    order: VecDeque<(Instant, String)>,
    /// The bytes of the bodies in `by_entry`.
    bytes: usize,
}

impl Recent {
    const MAX_AGE: Duration = Duration::from_secs(10);
    const MAX_COUNT: usize = 100_000;
    const MAX_BODY: usize = 64 << 10;
    /// At most this many bytes of bodies are kept: a node serving large
    /// results quickly keeps the last few seconds' worth only up to here
    /// (a lost DELIVER of an outcome evicted meanwhile makes that call run
    /// again, as without this cache).
    const MAX_BYTES: usize = 32 << 20;

    pub(super) fn remember(&mut self, d: &Done) {
        if d.body.len() <= Self::MAX_BODY {
            match self.by_entry.get_mut(&d.entry) {
                // Settled again (its DELIVER had been lost): the same
                // outcome, kept where it was in `order`.
                Some(old) => {
                    self.bytes = self.bytes - old.body.len() + d.body.len();
                    *old = d.clone();
                }
                None => {
                    self.bytes += d.body.len();
                    self.by_entry.insert(d.entry.clone(), d.clone());
                    self.order.push_back((Instant::now(), d.entry.clone()));
                }
            }
        }
        let max_age = match KEEP_FOR_MS.load(Ordering::Relaxed) {
            0 => Self::MAX_AGE,
            ms => Duration::from_millis(ms),
        };
        while let Some((t, e)) = self.order.front() {
            if t.elapsed() > max_age
                || self.order.len() > Self::MAX_COUNT
                || self.bytes > Self::MAX_BYTES
            {
                if let Some(old) = self.by_entry.remove(e) {
                    self.bytes -= old.body.len();
                }
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    pub(super) fn get(&self, entry: &str) -> Option<&Done> {
        self.by_entry.get(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::Done;
    use super::Recent;

    fn done(entry: &str, len: usize) -> Done {
        Done {
            entry: entry.to_string(),
            consumer: "n1".into(),
            caller: "c1".into(),
            seq: 1,
            status: "v",
            body: vec![7; len],
        }
    }

    fn held_bytes(r: &Recent) -> usize {
        r.by_entry.values().map(|d| d.body.len()).sum()
    }

    #[test]
    fn many_large_outcomes_are_kept_within_the_byte_bound_newest_first() {
        let mut r = Recent::default();
        let n = 2000;
        for i in 0..n {
            r.remember(&done(&format!("{i}-0"), 64 << 10));
        }
        // 125 MiB went through: only the newest fit.
        let held = held_bytes(&r);
        assert_eq!(held, r.bytes);
        assert!(held <= 32 << 20, "{held} bytes held");
        assert!(held >= 16 << 20, "{held} bytes held: too few kept");
        assert!(
            r.get(&format!("{}-0", n - 1)).is_some(),
            "the newest is kept"
        );
        assert!(r.get("0-0").is_none(), "the oldest is evicted first");
    }

    #[test]
    fn remembering_an_entry_again_keeps_it_and_counts_it_once() {
        let mut r = Recent::default();
        r.remember(&done("1-0", 100));
        r.remember(&done("2-0", 100));
        r.remember(&done("1-0", 100));
        assert_eq!(held_bytes(&r), 200);
        assert_eq!(r.bytes, 200);
        assert!(r.get("1-0").is_some() && r.get("2-0").is_some());
    }
}
