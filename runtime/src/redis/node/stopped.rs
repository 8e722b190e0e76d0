//! Single calls their callers cancelled before this node had them in hand:
//! a stop (`x caller seq` on the control stream) can come while the call is
//! between its claim and its start (read from Redis and not yet queued
//! here, or given back and claimed again). The node remembers such stops,
//! the most recent [`Stopped::MAX`], and answers the call `Cancelled` when
//! it gets to it, instead of running a call its caller was told was
//! stopped.

use std::collections::{HashSet, VecDeque};

/// Recent stops of calls not found on this node, by caller and seq.
#[derive(Default)]
pub(crate) struct Stopped {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Stopped {
    /// How many stops are remembered; the oldest go first.
    const MAX: usize = 100_000;

    pub(super) fn insert(&mut self, caller: &str, seq: u64) {
        let key = (caller.to_string(), seq);
        if !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Whether call `seq` of `caller` was stopped.
    pub(super) fn contains(&self, caller: &str, seq: u64) -> bool {
        // Most nodes see few stops: skip building the key.
        !self.set.is_empty() && self.set.contains(&(caller.to_string(), seq))
    }
}

#[cfg(test)]
mod tests {
    use super::Stopped;

    #[test]
    fn the_oldest_stops_are_forgotten_first() {
        let mut s = Stopped::default();
        for seq in 0..(Stopped::MAX as u64 + 2) {
            s.insert("c1@h:1", seq);
        }
        assert!(!s.contains("c1@h:1", 0));
        assert!(!s.contains("c1@h:1", 1));
        assert!(s.contains("c1@h:1", 2));
        assert!(s.contains("c1@h:1", Stopped::MAX as u64 + 1));
        assert!(!s.contains("c2@h:1", 2));
    }
}
