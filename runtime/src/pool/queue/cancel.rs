//! Cancels as the queue holds them: a queued call taken out and settled,
//! a running or pipelined one marked for its slot (its worker killed or
//! held), and what the slots read of those marks as their batches go.

use super::Queue;
use crate::call::Job;
use crate::link::CancelKill;
use crate::pool::in_flight::Place;
use crate::result::CancelOutcome;

impl Queue {
    /// Slot `index` read the outcome of the call in front of its batch. If
    /// the next call was cancelled, `kill` stops the worker unless it went
    /// past that call (see [`InFlight::settle_one`](crate::pool::in_flight::InFlight::settle_one)).
    pub(crate) fn settle_one(&self, index: usize, kill: impl FnOnce(u64, &[u64]) -> bool) {
        self.lock_slots().slots[index].in_flight.settle_one(kill);
    }

    /// Slot `index` is done with its batch (each call of it settled or back
    /// in the queue) and lost its worker: a cancel's doom was about that
    /// one. The batch is forgotten now, not when the slot takes the next
    /// one: the slot starts a worker first, and a call of the batch still
    /// held as its running one would pass for one waiting for that start
    /// (`close_and_cancel` marked and counted a call that had finished).
    pub(crate) fn end_batch_worker_gone(&self, index: usize) {
        self.lock_slots().slots[index].in_flight.finish();
    }

    /// Whether slot `index`'s worker was killed by a cancel during its
    /// current batch.
    pub(crate) fn is_doomed(&self, index: usize) -> bool {
        self.lock_slots().slots[index].in_flight.is_doomed()
    }

    /// Whether a cancel of call `id`, held by a slot, was asked: the loss of
    /// its worker is then reported as [`Error::Cancelled`](crate::Error::Cancelled).
    pub(crate) fn is_cancelled(&self, id: u64) -> bool {
        let state = self.lock_slots();
        state.slots.iter().any(|s| s.in_flight.is_cancelled(id))
    }

    /// Cancels call `id` (see [`crate::pool::in_flight`]): a queued one is taken
    /// out and settled as cancelled; the one a slot's worker runs has that
    /// worker killed by `kill(slot, calls behind it)`, under this lock, so
    /// that the slot cannot have moved on to another batch, unless the
    /// worker went past it ([`CancelKill::WentPast`]: it finished) or the
    /// slot is still starting the worker it waits for
    /// ([`CancelKill::Unsent`]: it never started, and the slot settles it
    /// once that worker is up); one
    /// pipelined behind it is marked for its slot to act on, and the worker
    /// is held (`hold(slot, calls behind the running one, those of them
    /// cancelled)`) before the first cancelled call it has not begun,
    /// unless the slot is starting the worker its batch waits for
    /// (`starting(slot)`, as for [`cancel_queued`](Self::cancel_queued)):
    /// no call of the batch was sent, and the slot takes the cancelled ones
    /// out once that worker is up ([`drop_cancelled`](Self::drop_cancelled)),
    /// so the call never started.
    pub(crate) fn cancel(
        &self,
        id: u64,
        kill: impl FnOnce(usize, &[u64]) -> CancelKill,
        starting: impl FnOnce(usize) -> bool,
        hold: impl FnOnce(usize, &[u64], &[u64]),
    ) -> CancelOutcome {
        let (job, _settling) = {
            let mut state = self.lock();
            match state.jobs.iter().position(|job| job.id() == id) {
                Some(at) => {
                    let job = state.jobs.remove(at);
                    (job, self.settling(&mut state))
                }
                None => {
                    let found =
                        state.slots.iter().enumerate().find_map(|(index, s)| {
                            s.in_flight.place(id).map(|place| (index, place))
                        });
                    return match found {
                        None | Some((_, Place::Settled)) => CancelOutcome::Finished,
                        Some((index, Place::Running)) => {
                            let in_flight = &mut state.slots[index].in_flight;
                            match kill(index, in_flight.behind()) {
                                CancelKill::WentPast => CancelOutcome::Finished,
                                CancelKill::Killed => {
                                    in_flight.cancel(id, true);
                                    CancelOutcome::Stopped
                                }
                                CancelKill::Unsent => {
                                    in_flight.cancel(id, false);
                                    CancelOutcome::NotStarted
                                }
                            }
                        }
                        // Marked already: `close_and_cancel` took it (a
                        // result remembers its own first cancel, so this is
                        // none of its), and it is held unstarted. It answers
                        // as a call that command took from the queue does.
                        Some((index, Place::Behind))
                            if state.slots[index].in_flight.is_cancelled(id) =>
                        {
                            CancelOutcome::NotStarted
                        }
                        Some((index, _)) => {
                            let in_flight = &mut state.slots[index].in_flight;
                            in_flight.cancel(id, false);
                            if starting(index) {
                                return CancelOutcome::NotStarted;
                            }
                            hold(index, in_flight.behind(), &in_flight.cancelled_behind());
                            CancelOutcome::Stopped
                        }
                    };
                }
            }
        };
        match job {
            Some(job) => {
                job.cancelled();
                CancelOutcome::NotStarted
            }
            None => CancelOutcome::Finished,
        }
    }

    /// Takes every queued job out and settles it as cancelled, and marks
    /// as cancelled every call pipelined behind a running one (it has not
    /// started either: its worker is stopped once the call in front has its
    /// outcome, and it is settled as cancelled then); returns how many there
    /// were, all kinds. The calls running are not touched: nor are those
    /// pipelined that the worker has begun already, its view ahead of the
    /// slot's, which has not read the reply in front yet. `hold(slot, calls
    /// behind the running one)` holds the slot's worker before the first
    /// of them it has not begun, and says how many it has begun: those it
    /// will not begin while held are the ones cancelled. A slot's call that
    /// waits for the worker it is starting (`starting(slot)`: the call was
    /// never sent) is marked as cancelled too, as are the calls behind it,
    /// with no hold (none was sent), and the slot settles them once that
    /// worker is up (see [`drop_cancelled`](Self::drop_cancelled)).
    pub(crate) fn cancel_queued(
        &self,
        starting: impl Fn(usize) -> bool,
        hold: impl Fn(usize, &[u64]) -> usize,
    ) -> usize {
        let (jobs, behind, _settling) = {
            let mut state = self.lock();
            let jobs = std::mem::take(&mut state.jobs);
            let mut behind = 0;
            for (index, slot) in state.slots.iter_mut().enumerate() {
                let Some(running) = slot.in_flight.running() else {
                    continue;
                };
                // Starting the worker its batch waits for: none of the
                // batch was sent, the running call included.
                let starting = starting(index);
                if starting && !slot.in_flight.is_cancelled(running) {
                    slot.in_flight.cancel(running, false);
                    behind += 1;
                }
                let all_behind = slot.in_flight.behind();
                if all_behind.is_empty() {
                    continue;
                }
                let from = if starting {
                    0
                } else {
                    hold(index, all_behind).min(all_behind.len())
                };
                let waiting: Vec<u64> = all_behind[from..]
                    .iter()
                    .copied()
                    .filter(|&id| !slot.in_flight.is_cancelled(id))
                    .collect();
                for id in waiting {
                    slot.in_flight.cancel(id, false);
                    behind += 1;
                }
            }
            (jobs, behind, self.settling(&mut state))
        };
        let n = jobs.len();
        for job in jobs {
            job.cancelled();
        }
        n + behind
    }

    /// Slot `index` has the worker its batch waited for (it started one
    /// for it): the calls of `batch` cancelled meanwhile, which were never
    /// sent, leave the batch and are settled as cancelled, so that the
    /// worker is sent only the others (it is not held before them, then
    /// killed).
    pub(crate) fn drop_cancelled(&self, index: usize, batch: &mut Vec<Job>) {
        let dropped: Vec<Job> = {
            let mut state = self.lock_slots();
            let in_flight = &mut state.slots[index].in_flight;
            if !batch.iter().any(|job| in_flight.is_cancelled(job.id())) {
                return;
            }
            let (dropped, kept) = std::mem::take(batch)
                .into_iter()
                .partition(|job| in_flight.is_cancelled(job.id()));
            *batch = kept;
            for job in &dropped {
                in_flight.requeue(job.id());
            }
            dropped
        };
        for job in dropped {
            job.cancelled();
        }
    }
}
