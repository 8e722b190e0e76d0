//! Single calls their callers cancelled before this node had them in hand:
//! a stop (`x caller seq` on the control stream) can come while the call is
//! between its claim and its start (read from Redis and not yet queued
//! here, or given back and claimed again). The node remembers such stops,
//! the most recent [`Stopped::MAX`], and answers the call `Cancelled` when
//! it gets to it, instead of running a call its caller was told was
//! stopped.

use std::collections::{HashMap, HashSet, VecDeque};

/// Recent stops of calls not found on this node, by caller and seq.
#[derive(Default)]
pub(crate) struct Stopped {
    /// The seqs stopped, by caller: looked up by `&str`, no key to build.
    by_caller: HashMap<String, HashSet<u64>>,
    /// The same stops, oldest first.
    order: VecDeque<(String, u64)>,
}

impl Stopped {
    /// How many stops are remembered; the oldest go first.
    const MAX: usize = 100_000;

    pub(super) fn insert(&mut self, caller: &str, seq: u64) {
        let seqs = match self.by_caller.get_mut(caller) {
            Some(seqs) => seqs,
            None => self.by_caller.entry(caller.to_string()).or_default(),
        };
        if !seqs.insert(seq) {
            return;
        }
        self.order.push_back((caller.to_string(), seq));
        while self.order.len() > Self::MAX {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if let Some(seqs) = self.by_caller.get_mut(&old) {
                seqs.remove(&old_seq);
                if seqs.is_empty() {
                    self.by_caller.remove(&old);
                }
            }
        }
    }

    /// Whether call `seq` of `caller` was stopped.
    pub(super) fn contains(&self, caller: &str, seq: u64) -> bool {
        self.by_caller
            .get(caller)
            .is_some_and(|seqs| seqs.contains(&seq))
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
        // A caller whose stops are all forgotten leaves nothing behind.
        s.insert("c2@h:1", 7);
        for seq in 0..(Stopped::MAX as u64) {
            s.insert("c3@h:1", seq);
        }
        assert!(!s.contains("c2@h:1", 7));
        assert!(!s.by_caller.contains_key("c2@h:1"));
        assert!(s.by_caller.len() == 1 && s.order.len() == Stopped::MAX);
    }
}
