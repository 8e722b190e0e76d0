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
use super::in_flight::{InFlight, Place};
use super::inbox::Inbox;
use super::pipeline::{self, Durations};
use crate::call::Job;
use crate::link::{CancelKill, Link};
use crate::result::CancelOutcome;

/// What a slot thread is to do next.
pub(crate) enum Next {
    /// Run the jobs put in the batch.
    Jobs,
    /// Nothing came for a while: check the idle worker (`lost`: a caller
    /// lost the worker it borrowed from this slot).
    Idle { lost: bool },
    /// The pool is closed and drained, or terminated.
    Stop,
    /// A cancel killed the worker (the one in `worker`, given back): end it
    /// and start another before asking again.
    Doomed,
}

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

impl State {
    /// Slots other than `index` woken for a queued job, with an idle worker,
    /// that have not looked at the queue yet.
    fn woken_elsewhere(&self, index: usize) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                *i != index && s.signalled && matches!(s.parked, Parked::Idle(Some(_)))
            })
            .count()
    }
}

/// Whether queued jobs may be started now (see [`Queue::set_start_gate`]).
pub(crate) type StartGate = Box<dyn Fn() -> bool + Send + Sync>;

/// How often a slot held by a closed start gate looks at it again.
const GATE_RECHECK: Duration = Duration::from_millis(10);

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

    /// Parks slot `index`'s worker (if any) and waits for the oldest queued
    /// job; puts it in `batch`, followed by as many more as may be pipelined
    /// with it (see [`pipeline`]), and the worker back in `worker`
    /// ([`Next::Jobs`]). [`Next::Idle`] (with the worker back in `worker`)
    /// if no job came within `idle`, so the slot can check on its idle
    /// worker; [`Next::Stop`] once the pool is closed and drained, or
    /// terminated, and the worker is not lent out. [`Next::Doomed`] at once
    /// if a cancel killed the worker during the last batch.
    pub(crate) fn next_jobs(
        &self,
        index: usize,
        worker: &mut Option<Box<dyn Link>>,
        durations: &Durations,
        batch: &mut Vec<Job>,
        idle: Duration,
    ) -> Next {
        let mut state = self.lock();
        if state.slots[index].in_flight.finish() && worker.is_some() {
            return Next::Doomed;
        }
        state.slots[index].parked = Parked::Idle(worker.take());
        let mut waited_out = false;
        loop {
            let st = &mut *state;
            st.slots[index].signalled = false;
            if !matches!(st.slots[index].parked, Parked::Lent) {
                let next = if st.terminated {
                    Next::Stop
                } else if !st.closed
                    && !st.jobs.is_empty()
                    && st.jobs.len() < st.slots.len()
                    && st.jobs.len() <= st.woken_elsewhere(index)
                {
                    // Every queued job has a woken slot with an idle worker
                    // on its way to take it: leave them theirs, so that a
                    // burst spreads over the workers instead of going to
                    // whichever thread runs first (the others would find
                    // the queue empty). Wait as an idle slot. (Not once the
                    // pool is closed: then the slot drains the queue and
                    // stops, nothing would wake it to stop later.)
                    state = self.wait(index, state, idle).0;
                    continue;
                } else if !st.closed && !st.jobs.is_empty() && self.gate_closed() {
                    // Held: look again shortly (nothing signals the gate).
                    state = self.wait(index, state, GATE_RECHECK).0;
                    continue;
                } else if let Some(job) = st.jobs.pop_front() {
                    self.take_batch(st, index, job, durations, batch);
                    Next::Jobs
                } else if st.closed {
                    Next::Stop
                } else if waited_out || st.slots[index].lost {
                    Next::Idle {
                        lost: std::mem::take(&mut st.slots[index].lost),
                    }
                } else {
                    (state, waited_out) = self.wait(index, state, idle);
                    continue;
                };
                let slot = &mut st.slots[index];
                if let Parked::Idle(link) = std::mem::replace(&mut slot.parked, Parked::Busy) {
                    *worker = link;
                }
                return next;
            }
            // The worker is lent to a caller: wait for it. Not for ever: a
            // worker given back idle (no notification) must still be
            // checked every `idle`, so that one that dies then is reaped and
            // replaced at once, not at the next job.
            state = self.wait(index, state, idle).0;
        }
    }

    /// Puts `first` in `batch`, followed by the queued jobs that may be
    /// pipelined with it on slot `index`'s worker.
    fn take_batch(
        &self,
        state: &mut State,
        index: usize,
        first: Job,
        durations: &Durations,
        batch: &mut Vec<Job>,
    ) {
        // A call with a tail (a large byte block) goes alone: never
        // pipelined. Map chunks are pipelined as calls are, by the mean time
        // of their calls: a map with small chunks (chunksize 1) is as many
        // quick calls, one round trip each without it. A chunk weighs as
        // many calls as it has items, in the window of each task's calls
        // (its time budget): a chunk of 1000 quick items is no quick call.
        let window = if first.call().tail().is_empty() {
            durations.window(first.call().name())
        } else {
            1
        };
        let mut bytes = first.call().args.len();
        let mut weight = first.call().weight();
        batch.push(first);
        let mut jobs = 1;
        if window > weight {
            let idle = state
                .slots
                .iter()
                .filter(|s| matches!(s.parked, Parked::Idle(_)))
                .count()
                - 1;
            let left = self
                .max_tasks_per_child
                .map(|max| max.saturating_sub(state.slots[index].served));
            jobs += pipeline::extra_jobs(state.jobs.len(), idle, left);
        }
        while batch.len() < jobs {
            let Some(next) = state.jobs.front() else {
                break;
            };
            bytes += next.call().args.len();
            weight += next.call().weight();
            if bytes > pipeline::BYTE_BUDGET
                || !next.call().tail().is_empty()
                || weight > window
                || durations.window(next.call().name()) < 2
            {
                break;
            }
            batch.extend(state.jobs.pop_front());
        }
        let ids = batch.iter().map(|job| job.id());
        state.slots[index].in_flight.start(ids);
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

    /// Slot `index` read the outcome of the call in front of its batch. If
    /// the next call was cancelled, `kill` stops the worker unless it went
    /// past that call (see [`InFlight::settle_one`](super::in_flight::InFlight::settle_one)).
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

    /// Cancels call `id` (see [`super::in_flight`]): a queued one is taken
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
