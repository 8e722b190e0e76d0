//! The count of map items a worker has started, in its control page. A map
//! sends its items in chunks, one call each, but its time limit is for each
//! item: the worker bumps the count as each item starts (one relaxed store
//! to a line only it writes), and the parent, waiting for the chunk's
//! reply, restarts the clock whenever it sees the count move.
//!
//! The count is the worker's word, so the parent only compares it with what
//! it read before: a worker that writes nonsense can only keep its own
//! chunk running, as its task code could anyway.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::layout::Control;
use crate::sys::SharedMap;

/// A handle on the count, for either side; it keeps the mapping alive.
pub(crate) struct Progress {
    map: Arc<SharedMap>,
}

impl Progress {
    pub(crate) fn new(map: Arc<SharedMap>) -> Progress {
        Progress { map }
    }

    /// The count's word (the worker stores into it as items start).
    pub(crate) fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is live (held by `self.map`), page-aligned and
        // at least a control page long (checked when the channel was made
        // or adopted).
        &unsafe { Control::at(self.map.base()) }.items.0
    }

    /// The count as the worker last wrote it.
    pub(crate) fn read(&self) -> u64 {
        self.word().load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_parent_sees_the_count_the_worker_writes() {
        let (parent, worker) = crate::shm::pair_for_tests();
        let (seen, bumped) = (parent.progress(), worker.progress());
        assert_eq!(seen.read(), 0);
        bumped.word().store(3, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(seen.read(), 3);
    }
}
