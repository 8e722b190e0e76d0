//! Which calls a slot's worker holds, and the cancels asked of them: the
//! bookkeeping that lets a cancel stop exactly the call it names. Kept by
//! [`super::queue::Queue`] under its lock, one per slot.
//!
//! A slot takes a batch of calls (one, or several pipelined) and its worker
//! runs them one by one, in order. A cancel of a call of the batch:
//!
//! - whose outcome the slot already read: nothing to do, it finished;
//! - that is the first without an outcome (the one running): its worker is
//!   killed at once, and its loss is reported as `Cancelled`; the calls
//!   behind it had not started and go back to the queue;
//! - that is pipelined behind the one running: it is marked, its worker is
//!   held before the first cancelled call it has not begun (it does not
//!   start it: see `crate::shm::Halter::hold_first_unbegun`), and the slot
//!   kills that worker as soon as the call in front has its outcome (or
//!   the call goes back to the queue with the calls given back around it,
//!   and is settled as cancelled there).
//!
//! While the slot starts the worker its batch waits for (none of the batch
//! was sent), a cancelled call, in front or behind, never starts: the
//! slot takes it out of the batch once that worker is up, settles it as
//! cancelled, and sends the others; nothing is held or killed.
//!
//! "The first without an outcome" is the parent's view: the worker may have
//! finished it and started the next. So a kill first halts the worker and
//! looks at which call it started (`crate::shm::Halter`): if it started one
//! of the calls behind, the cancelled call finished, and nothing is killed
//! (its outcome is kept, and the call the worker runs is not stopped).
//!
//! The worker a cancel killed is "doomed": even if the call finished just
//! before the kill landed (its result is kept), the slot must not hand that
//! worker another call.

/// Where a call stands in its slot's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Its outcome has been read.
    Settled,
    /// The first call without an outcome: the worker runs it.
    Running,
    /// Behind the one running, in the same batch.
    Behind,
}

/// One slot's batch in flight and the cancels asked of it.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// The calls of the batch the slot runs, in order.
    ids: Vec<u64>,
    /// How many of them, from the front, have their outcome.
    settled: usize,
    /// Calls of `ids` whose cancel was asked (few: a `Vec` is enough).
    cancels: Vec<u64>,
    /// The worker was killed by a cancel.
    doomed: bool,
}

impl InFlight {
    /// The slot starts a batch of these calls.
    pub(crate) fn start(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.ids.clear();
        self.ids.extend(ids);
        self.settled = 0;
        self.cancels.clear();
    }

    /// The slot is done with its batch: every call was settled or requeued.
    /// Returns whether its worker was killed by a cancel (and is not to be
    /// used again).
    pub(crate) fn finish(&mut self) -> bool {
        self.ids.clear();
        self.settled = 0;
        self.cancels.clear();
        std::mem::take(&mut self.doomed)
    }

    /// Whether its worker was killed by a cancel.
    pub(crate) fn is_doomed(&self) -> bool {
        self.doomed
    }

    /// Where call `id` stands, if it is in this batch.
    pub(crate) fn place(&self, id: u64) -> Option<Place> {
        let at = self.ids.iter().position(|&i| i == id)?;
        Some(match at.cmp(&self.settled) {
            std::cmp::Ordering::Less => Place::Settled,
            std::cmp::Ordering::Equal => Place::Running,
            std::cmp::Ordering::Greater => Place::Behind,
        })
    }

    /// Marks call `id` (of this batch, not settled) as cancelled; `kill`:
    /// its worker was killed for it.
    pub(crate) fn cancel(&mut self, id: u64, kill: bool) {
        if !self.cancels.contains(&id) {
            self.cancels.push(id);
        }
        self.doomed |= kill;
    }

    /// Whether a cancel of call `id` was asked.
    pub(crate) fn is_cancelled(&self, id: u64) -> bool {
        self.cancels.contains(&id)
    }

    /// The calls behind the one running whose cancel was asked, in order:
    /// its worker is to be held before the first it has not begun.
    pub(crate) fn cancelled_behind(&self) -> Vec<u64> {
        self.behind()
            .iter()
            .copied()
            .filter(|id| self.cancels.contains(id))
            .collect()
    }

    /// The first call without an outcome (the one the worker runs, or
    /// will run once it is up), if any.
    pub(crate) fn running(&self) -> Option<u64> {
        self.ids.get(self.settled).copied()
    }

    /// The calls behind the one running (sent after it).
    pub(crate) fn behind(&self) -> &[u64] {
        self.ids.get(self.settled + 1..).unwrap_or_default()
    }

    /// The call in front has its outcome. If the next one was cancelled,
    /// `kill(it, the calls behind it)` stops the worker unless it went past
    /// that call (see `crate::link::KillSwitch::kill_unless_past`); a worker
    /// it stopped is doomed.
    pub(crate) fn settle_one(&mut self, kill: impl FnOnce(u64, &[u64]) -> bool) {
        self.settled += 1;
        if let Some(&next) = self.ids.get(self.settled) {
            if self.cancels.contains(&next) && kill(next, self.behind()) {
                self.doomed = true;
            }
        }
    }

    /// Call `id` goes back to the queue (it never started). Returns whether
    /// it was cancelled: it is then settled as cancelled instead.
    pub(crate) fn requeue(&mut self, id: u64) -> bool {
        self.ids.retain(|&i| i != id);
        let cancelled = self.cancels.contains(&id);
        self.cancels.retain(|&i| i != id);
        cancelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_finds_each_call_in_its_place_and_is_acted_on_in_order() {
        let mut f = InFlight::default();
        f.start([10, 11, 12]);
        assert_eq!(f.place(10), Some(Place::Running));
        assert_eq!(f.place(12), Some(Place::Behind));
        assert_eq!(f.place(99), None);
        f.cancel(12, false);
        assert!(!f.is_doomed());
        assert_eq!(f.behind(), [11, 12]);
        f.settle_one(|_, _| panic!("11 runs next: not cancelled"));
        assert_eq!(f.place(10), Some(Place::Settled));
        let mut asked = None;
        f.settle_one(|call, behind| {
            asked = Some((call, behind.to_vec()));
            true
        });
        assert_eq!(
            asked,
            Some((12, vec![])),
            "12 runs next: cancelled, kill the worker"
        );
        assert!(f.is_doomed());
        assert!(f.is_cancelled(12));
        assert!(f.finish(), "the worker was doomed");
        assert!(!f.finish());
        assert_eq!(f.place(12), None);
    }

    #[test]
    fn a_worker_that_went_past_the_cancelled_call_is_not_doomed() {
        let mut f = InFlight::default();
        f.start([1, 2, 3]);
        f.cancel(2, false);
        f.settle_one(|call, behind| {
            assert_eq!((call, behind), (2, &[3][..]));
            false
        });
        assert!(!f.is_doomed());
        assert!(!f.finish());
    }

    #[test]
    fn a_requeued_call_leaves_the_batch_and_keeps_its_cancel_verdict() {
        let mut f = InFlight::default();
        f.start([1, 2, 3]);
        f.cancel(3, false);
        assert!(!f.requeue(2));
        assert!(f.requeue(3));
        assert_eq!(f.place(2), None);
        assert!(!f.is_cancelled(3));
    }
}
