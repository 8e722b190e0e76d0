//! Cancelling what a result cell stands for, once: the first cancel's
//! answer is every later one's, and threads cancelling at once wait for it.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::ResultCell;
use crate::cancel::CancelOutcome;
use crate::result::{CancelTarget, Outcome};

/// What cancelling a result whose outcome is there answers, if no cancel
/// of this result was made before: `NotStarted` for a call the pool
/// cancelled before it ran, `Finished` for anything else.
fn answer_for(outcome: &Outcome) -> CancelOutcome {
    match outcome {
        Err(crate::Error::Cancelled { .. }) => CancelOutcome::NotStarted,
        _ => CancelOutcome::Finished,
    }
}

/// The cancel under way on a cell: ends by recording its answer, or, if
/// the thread unwinds first, by letting the waiting cancels try again.
struct CancelTurn<'a> {
    cell: &'a ResultCell,
}

impl CancelTurn<'_> {
    fn end(&mut self, outcome: CancelOutcome) {
        self.finish(Some(outcome));
    }

    fn finish(&mut self, outcome: Option<CancelOutcome>) {
        let waiters = {
            let mut state = self.cell.lock();
            let extra = state.extra();
            if extra.cancelled.is_none() {
                extra.cancelled = outcome;
            }
            extra.cancelling = false;
            std::mem::take(&mut extra.cancel_waiters)
        };
        for thread in waiters {
            thread.unpark();
        }
    }
}

impl Drop for CancelTurn<'_> {
    fn drop(&mut self) {
        if self
            .cell
            .lock()
            .extra
            .as_ref()
            .is_some_and(|e| e.cancelling)
        {
            self.finish(None);
        }
    }
}

impl ResultCell {
    /// What cancelling this result cancels.
    pub(in crate::result) fn cancel_target(&self) -> CancelTarget {
        let parts = self.lock().extra.as_ref().and_then(|e| e.parts.clone());
        match parts {
            Some(parts) => CancelTarget::Parts(parts),
            None if self.id != 0 => CancelTarget::Call(self.hub.clone(), self.id),
            None => CancelTarget::None,
        }
    }

    /// Cancels what this result stands for, once: a later cancel answers
    /// what the first did (`NotStarted` or `Stopped`), or `Finished` if the
    /// result was there before any cancel. A result that arrived as
    /// `Cancelled` without one (`close_and_cancel` dropped its call from the
    /// queue) answers `NotStarted`: it never ran. Threads cancelling at once
    /// wait for the first one's answer, and all give it.
    ///
    /// A cancel that answers `NotStarted` or `Stopped` settles the result as
    /// `Cancelled` before it returns, so `get` does not wait for the task;
    /// it does not wait for the result's callbacks, which run on the
    /// callback thread in their turn (a cancel never waits behind other
    /// results' callbacks): `ready()` is true at once for a result without
    /// callbacks, and once they returned for one with them. (The local
    /// dispatcher's cancel waits for a worker it killed to end.)
    pub(in crate::result) fn cancel(self: &Arc<Self>) -> CancelOutcome {
        loop {
            let mut state = self.lock();
            if let Some(first) = state.extra.as_ref().and_then(|e| e.cancelled) {
                return first;
            }
            if state.extra.as_ref().is_some_and(|e| e.taken) {
                // `get` returned the value: nothing left to cancel.
                return CancelOutcome::Finished;
            }
            if self.hub.in_copy() {
                // In a copy made by `fork`: the call is the parent's, whose
                // queue and workers this copy must not touch, and a cancel
                // the parent had under way never ends here.
                return state
                    .outcome
                    .as_deref()
                    .map_or(CancelOutcome::Finished, answer_for);
            }
            if let Some(extra) = state.extra.as_mut() {
                if extra.cancelling {
                    extra.cancel_waiters.push(thread::current());
                    drop(state);
                    thread::park();
                    continue;
                }
            }
            if let Some(outcome) = &state.outcome {
                let answer = answer_for(outcome);
                // A map's result is there once its first error is (or a
                // chunk was cancelled), while the chunks behind it may
                // still be queued or running: they are cancelled all the
                // same (their results were to be dropped); the result is
                // kept, and later cancels answer the same.
                let Some(parts) = state.extra.as_mut().and_then(|e| {
                    e.cancelled = Some(answer);
                    e.parts.clone()
                }) else {
                    return answer;
                };
                drop(state);
                CancelTarget::Parts(parts).cancel();
                return answer;
            }
            state.extra().cancelling = true;
            break;
        }
        let mut turn = CancelTurn { cell: self };
        let mut outcome = self.cancel_target().cancel();
        if outcome == CancelOutcome::Finished {
            // The pool no longer held the call: whoever took it (its slot
            // with the reply, or `close_and_cancel`) is filling the result.
            // Its outcome says which (waited for a moment at most).
            let soon = Instant::now() + std::time::Duration::from_secs(2);
            if let Some(arrived) = self.arrival(soon) {
                outcome = answer_for(&arrived);
            }
        }
        if outcome != CancelOutcome::Finished {
            // It never started and never will, or its worker is being
            // stopped: settled now, as Python's `Future.cancel()` leaves a
            // future done, so that `get()` right after the cancel sees
            // `Cancelled` (and `ready()` does once the result's callbacks,
            // if any, returned). (Whoever holds the call settles it
            // too, a moment later: the slot that kills the worker, or, for
            // a slot still starting the worker the call waited for, once
            // that worker is up; the first outcome stays, even a reply that
            // arrives in the instant of the kill.)
            self.fill(Err(crate::Error::Cancelled {
                task: self.task.to_string(),
            }));
        }
        turn.end(outcome);
        outcome
    }

    /// Makes this result stand for `parts` (a map's chunks) when cancelled.
    pub(in crate::result) fn set_parts(&self, parts: Vec<CancelTarget>) {
        self.lock().extra().parts = Some(parts.into());
    }

    /// The outcome once it arrived (its callbacks may not have returned),
    /// waiting until `deadline` at most.
    fn arrival(&self, deadline: Instant) -> Option<Arc<Outcome>> {
        let me = thread::current();
        let mut state = self.lock();
        let arrived = loop {
            if let Some(outcome) = &state.outcome {
                break Some(outcome.clone());
            }
            if state.extra.as_ref().is_some_and(|e| e.taken) {
                // It arrived, and `get` took it meanwhile.
                break None;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break None;
            };
            if let Some(error) = self.hub.foreign(&self.task) {
                break Some(Arc::new(Err(error)));
            }
            // `fill` takes the list and unparks it as the outcome arrives.
            let waiters = &mut state.extra().waiters;
            if !waiters.iter().any(|t| t.id() == me.id()) {
                waiters.push(me.clone());
            }
            drop(state);
            thread::park_timeout(left);
            state = self.lock();
        };
        if let Some(e) = state.extra.as_mut() {
            e.waiters.retain(|t| t.id() != me.id());
        }
        arrived
    }
}
