//! How a slot thread takes its next jobs: the wait for work, the burst
//! left to the slots woken for it, the hold of a closed start gate, and the
//! batch pipelined behind the oldest job.

use std::time::Duration;

use super::{Parked, Queue, State};
use crate::call::Job;
use crate::link::Link;
use crate::pool::pipeline::{self, Durations};

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

/// How often a slot held by a closed start gate looks at it again.
const GATE_RECHECK: Duration = Duration::from_millis(10);

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

impl Queue {
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
}
