//! The scheduler's state: the queue of jobs, first in first out, and where
//! each slot's worker is (running a job, parked idle, or lent to a caller of
//! `apply`). Slot threads take jobs here; callers queue jobs and borrow
//! idle workers here. One mutex guards it all; each slot thread waits on a
//! condition variable of its own. Callers leave jobs in an inbox instead of
//! taking that mutex (see [`super::inbox`]): whoever takes it next moves
//! them to the queue.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::dispatcher::Status;
use super::in_flight::InFlight;
use super::inbox::Inbox;
use crate::call::Job;
use crate::link::Link;

mod cancel;
mod take;

pub(crate) use take::Next;

/// What a caller of `apply` found when it asked for an idle worker.
pub(crate) enum Borrow {
    /// The pool is closed.
    Closed,
    /// No idle worker, or jobs are queued: the call queues too.
    Queue,
    /// Slot `.0`'s idle worker, lent to the caller.
    Worker(usize, Box<dyn Link>),
}

/// Where a slot's worker is while its thread is not running a job.
enum Parked {
    /// The slot thread holds its worker and runs a job.
    Busy,
    /// The slot thread waits for a job; its worker (if it has one) is here,
    /// where a caller of `apply` may borrow it.
    Idle(Option<Box<dyn Link>>),
    /// A caller borrowed the worker for one direct call.
    Lent,
}

struct SlotState {
    parked: Parked,
    /// Woken for a queued job and not yet looked at the queue.
    signalled: bool,
    /// Tasks its current worker has run (for `max_tasks_per_child`).
    served: usize,
    /// A caller lost the worker it borrowed (the slot thread, when idle,
    /// starts a replacement).
    lost: bool,
    /// The batch its worker runs, and the cancels asked of it.
    in_flight: InFlight,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    closed: bool,
    terminated: bool,
    slots: Vec<SlotState>,
    /// The slot [`Queue::wake_one`] woke last.
    woke_last: usize,
    /// Hand-overs under way of jobs taken out of the queue to be settled
    /// with no lock held (see [`Settling`]).
    settling: usize,
}

/// Whether queued jobs may be started now (see [`Queue::set_start_gate`]).
pub(crate) type StartGate = Box<dyn Fn() -> bool + Send + Sync>;

/// The queue and the slots' states (see the module's documentation).
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Jobs pushed and not yet moved to `state.jobs`.
    inbox: Inbox,
    /// One per slot: its thread waits on it for a job or its lent worker.
    wake: Vec<Condvar>,
    max_tasks_per_child: Option<usize>,
    /// If set, slots start no queued job while it says no (unless the pool
    /// is closed: then they drain the queue).
    gate: OnceLock<StartGate>,
    /// Signalled when the last hand-over of [`Settling`] ends.
    settled: Condvar,
}

/// Jobs taken out of the queue (cancelled, or failed by a terminate) whose
/// promises are being settled with no lock held: the slot threads may stop
/// meanwhile, so `join` also waits for this to end (see
/// [`Queue::wait_settled`]), and a result is ready when it returns.
struct Settling<'a>(&'a Queue);

impl Drop for Settling<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock_slots();
        state.settling -= 1;
        if state.settling == 0 {
            self.0.settled.notify_all();
        }
    }
}

impl Queue {
    /// A queue for `slots` slots, whose workers are replaced after
    /// `max_tasks_per_child` tasks (if set).
    pub(crate) fn new(slots: usize, max_tasks_per_child: Option<usize>) -> Queue {
        let states = (0..slots)
            .map(|_| SlotState {
                parked: Parked::Busy,
                signalled: false,
                served: 0,
                lost: false,
                in_flight: InFlight::default(),
            })
            .collect();
        Queue {
            state: Mutex::new(State {
                slots: states,
                ..State::default()
            }),
            inbox: Inbox::default(),
            wake: (0..slots).map(|_| Condvar::new()).collect(),
            max_tasks_per_child,
            gate: OnceLock::new(),
            settled: Condvar::new(),
        }
    }

    /// Starts a hand-over of jobs taken out of the queue under this lock.
    fn settling<'a>(&'a self, state: &mut State) -> Settling<'a> {
        state.settling += 1;
        Settling(self)
    }

    /// Waits until no job taken out of the queue is still being settled.
    pub(crate) fn wait_settled(&self) {
        let mut state = self.lock_slots();
        while state.settling > 0 {
            state = self.settled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Makes the slots hold queued jobs while `gate` says no: a node does,
    /// while it cannot confirm that its cluster still counts it as a member
    /// (the calls it claimed may have been answered `NodeLost`). Set once.
    #[cfg(feature = "redis")]
    pub(crate) fn set_start_gate(&self, gate: StartGate) {
        let _ = self.gate.set(gate);
    }

    /// Whether a start gate holds queued jobs now.
    fn gate_closed(&self) -> bool {
        self.gate.get().is_some_and(|open| !open())
    }

    /// The state, with every job pushed so far in its queue.
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock_slots();
        self.inbox.take_into(&mut state.jobs);
        state
    }

    /// The state, for a look at the slots only: the jobs in the inbox are
    /// left there (the slots' bookkeeping of each reply does not touch the
    /// lines the callers write).
    fn lock_slots(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits on slot `index`'s condition variable for at most `timeout`,
    /// with the jobs pushed meanwhile in the queue when it returns; whether
    /// it timed out. Returns at once if jobs were pushed. Every wait of a
    /// slot counts as waiting for work, even one for its lent worker: that
    /// worker may come back idle (no wake-up) before the next push, which
    /// must then wake the slot (see [`Self::push`]).
    fn wait<'a>(
        &self,
        index: usize,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> (MutexGuard<'a, State>, bool) {
        if !self.inbox.begin_wait() {
            let mut state = state;
            self.inbox.take_into(&mut state.jobs);
            return (state, false);
        }
        let (mut state, waited) = self.wake[index]
            .wait_timeout(state, timeout)
            .unwrap_or_else(|e| e.into_inner());
        self.inbox.end_wait();
        self.inbox.take_into(&mut state.jobs);
        (state, waited.timed_out())
    }

    /// Queues `job`, or gives it back if the pool is closed. While every
    /// slot is busy, through the inbox; while one waits for work, under the
    /// lock, with the wake-up, so that each job of a burst is seen with a
    /// slot woken for it (see `next_jobs`) and the burst spreads.
    pub(crate) fn push(&self, job: Job) -> Result<(), Job> {
        if self.inbox.has_waiting() {
            let mut state = self.lock();
            if state.closed {
                return Err(job);
            }
            state.jobs.push_back(job);
            self.wake_one(&mut state);
        } else if self.inbox.push(job)? {
            // A slot began to wait meanwhile.
            let mut state = self.lock();
            self.wake_one(&mut state);
        }
        Ok(())
    }

    /// Puts jobs that never started back at the front of the queue, in
    /// order; those whose cancel was asked are settled as cancelled instead
    /// (also after a terminate: the cancel answered first, and counted
    /// them), and after a terminate the others fail as terminated.
    pub(crate) fn requeue(&self, jobs: impl DoubleEndedIterator<Item = Job>) {
        let mut cancelled = Vec::new();
        let mut terminated = Vec::new();
        {
            let mut state = self.lock();
            for job in jobs.rev() {
                let id = job.id();
                let mut was_cancelled = false;
                for slot in &mut state.slots {
                    was_cancelled |= slot.in_flight.requeue(id);
                }
                if was_cancelled {
                    cancelled.push(job);
                } else if state.terminated {
                    // All of them, also when `jobs` borrows the rest of a
                    // batch, which must not then run on.
                    terminated.push(job);
                } else {
                    state.jobs.push_front(job);
                }
            }
            if !state.terminated {
                self.wake_one(&mut state);
            }
        }
        // In their order (they were taken last to first), with no lock
        // held: dropped, a job's promise fails it as terminated.
        for job in cancelled.into_iter().rev() {
            job.cancelled();
        }
        terminated.into_iter().rev().for_each(drop);
    }

    /// Counts `n` tasks run by slot `index`'s worker; `true` if the worker
    /// has now run as many as `max_tasks_per_child` allows (and was not
    /// killed by a cancel meanwhile: that one is ended, not retired).
    pub(crate) fn served(&self, index: usize, n: usize) -> bool {
        // Counted only for that limit: no lock taken without one.
        let Some(max) = self.max_tasks_per_child else {
            return false;
        };
        let mut state = self.lock_slots();
        let slot = &mut state.slots[index];
        slot.served += n;
        !slot.in_flight.is_doomed() && slot.served >= max
    }

    /// Slot `index` has a new worker (or none).
    pub(crate) fn reset_served(&self, index: usize) {
        self.lock_slots().slots[index].served = 0;
    }

    /// Wakes one slot thread that waits for work and is not already woken,
    /// looking round from the slot after the one woken last, so that a
    /// burst of jobs goes round the workers rather than to the first.
    fn wake_one(&self, state: &mut State) {
        let n = state.slots.len();
        for index in (0..n).map(|k| (state.woke_last + 1 + k) % n) {
            let slot = &mut state.slots[index];
            if matches!(slot.parked, Parked::Idle(_)) && !slot.signalled {
                slot.signalled = true;
                state.woke_last = index;
                self.wake[index].notify_one();
                return;
            }
        }
    }

    fn wake_all(&self) {
        for wake in &self.wake {
            wake.notify_all();
        }
    }

    /// Borrows an idle worker for a direct call, if the queue is empty (a
    /// direct call never overtakes queued jobs) and a worker is idle.
    pub(crate) fn borrow_idle(&self) -> Borrow {
        let mut state = self.lock();
        if state.closed {
            return Borrow::Closed;
        }
        if !state.jobs.is_empty() {
            return Borrow::Queue;
        }
        for (index, slot) in state.slots.iter_mut().enumerate() {
            if matches!(slot.parked, Parked::Idle(Some(_))) {
                if let Parked::Idle(Some(link)) = std::mem::replace(&mut slot.parked, Parked::Lent)
                {
                    return Borrow::Worker(index, link);
                }
            }
        }
        Borrow::Queue
    }

    /// Gives a borrowed worker back to slot `index` (`None`: it is gone and
    /// the slot thread starts another when it next needs one). The task it
    /// ran was counted by [`Self::served`].
    pub(crate) fn give_back(&self, index: usize, link: Option<Box<dyn Link>>) {
        let mut state = self.lock();
        let slot = &mut state.slots[index];
        let lost = link.is_none();
        if lost {
            slot.served = 0;
            slot.lost = true;
        }
        slot.parked = Parked::Idle(link);
        // A slot thread waits for its worker to come back, for the jobs
        // queued meanwhile, and to replace a worker the caller lost.
        let wanted = lost || !state.jobs.is_empty() || state.closed || state.terminated;
        if wanted {
            state.slots[index].signalled = true;
            self.wake[index].notify_one();
        }
    }

    /// Whether the pool may still run work: not terminated, and not closed
    /// with an empty queue.
    pub(crate) fn wants_workers(&self) -> bool {
        let state = self.lock();
        !(state.terminated || (state.closed && state.jobs.is_empty()))
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.lock_slots().terminated
    }

    /// Accepts no more jobs; the queued ones still run.
    pub(crate) fn close(&self) {
        // The inbox first: no job pushed after it stays there unseen.
        self.inbox.close();
        self.lock().closed = true;
        self.wake_all();
    }

    /// Accepts no more jobs and fails the queued ones, which will never
    /// run; returns how many there were.
    pub(crate) fn terminate(&self) -> usize {
        self.inbox.close();
        let (jobs, _settling) = {
            let mut state = self.lock();
            state.terminated = true;
            state.closed = true;
            let jobs = std::mem::take(&mut state.jobs);
            (jobs, self.settling(&mut state))
        };
        self.wake_all();
        // Each job's promise fails its task as it drops.
        let n = jobs.len();
        drop(jobs);
        n
    }

    /// Whether another slot than `index` waits for work with an idle
    /// worker while nothing is queued: calls pipelined to slot `index`'s
    /// worker behind one that runs long would start sooner there (see
    /// `super::exchange::receive_batch`).
    pub(crate) fn has_idle_helper(&self, index: usize) -> bool {
        let state = self.lock();
        state.jobs.is_empty()
            && !state.terminated
            && state.slots.iter().enumerate().any(|(i, s)| {
                i != index && !s.signalled && matches!(s.parked, Parked::Idle(Some(_)))
            })
    }

    /// Slots whose thread waits for work with an idle worker.
    #[cfg(test)]
    pub(crate) fn idle_workers(&self) -> usize {
        let state = self.lock();
        let idle = |s: &&SlotState| matches!(s.parked, Parked::Idle(Some(_)));
        state.slots.iter().filter(idle).count()
    }

    pub(crate) fn status(&self) -> Status {
        let state = self.lock();
        Status {
            queued: state.jobs.len(),
            closed: state.closed,
            terminated: state.terminated,
        }
    }
}
