//! Pipelining: how many queued jobs a slot sends its worker in one batch.
//!
//! A batch costs one write and one read for all its calls and replies, which
//! is what makes many small tasks fast. It must not make a task wait behind
//! another while a worker is free, so a slot batches only while no other
//! slot waits for work, only tasks it has seen run quickly (mean under 1 ms),
//! and only as many as fit in a small time and byte budget. The worker runs a
//! batch's calls one by one, in order. (A task known to be quick that turns
//! out slow would delay the calls behind it in its batch: while it runs, the
//! slot gives those calls back to the queue as soon as another worker waits
//! for work with nothing queued; see `super::exchange::GiveBack`. A batch
//! holds at most about 2 ms of expected work.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set for tests ([`treat_calls_as_quick`]): the pools of this process
/// count every call as taking no time.
static ALL_QUICK: AtomicBool = AtomicBool::new(false);

/// For tests of what a pool does with the calls it pipelines: from now on
/// the pools of this process count every call that completes as taking no
/// time, as on a fast machine, instead of by its time, which a slow or
/// loaded machine makes look slow (a mean over 1 ms: never batched, so
/// nothing behind a call to give back).
pub(crate) fn treat_calls_as_quick() {
    ALL_QUICK.store(true, Ordering::Relaxed);
}

/// Most calls in one batch.
pub(crate) const MAX_WINDOW: usize = 1024;
/// Only tasks whose mean observed run time is below this are batched.
const QUICK_TASK: Duration = Duration::from_millis(1);
/// Estimated run time of one batch, at most: the last call of a batch waits
/// behind the others for about this long.
const TIME_BUDGET: Duration = Duration::from_millis(2);
/// Encoded arguments of one batch, at most.
pub(crate) const BYTE_BUDGET: usize = 64 << 10;

/// One slot's running mean run time per task name (including the round
/// trip, so an upper bound of the task's own time). A short list searched
/// in order: a pool runs a handful of distinct tasks, and a hash of each
/// name per call cost more than the search.
#[derive(Default)]
pub(crate) struct Durations {
    means: Vec<(&'static str, Duration)>,
}

impl Durations {
    /// Records that a batch of calls of `tasks` (in order) took `elapsed`
    /// together: each call counts as `elapsed / tasks.len()`. A run of calls
    /// of one task is looked up once.
    pub(crate) fn observe_batch(&mut self, tasks: &[&'static str], elapsed: Duration) {
        // (A batch holds at most `MAX_WINDOW` calls.)
        let each = if ALL_QUICK.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            elapsed / tasks.len().max(1) as u32
        };
        let mut rest = tasks;
        while let Some(&task) = rest.first() {
            let run = rest.iter().take_while(|&&t| std::ptr::eq(t, task)).count();
            self.observe_each(task, run, each);
            rest = &rest[run..];
        }
    }

    /// Records `times` calls of `task` that took `each`.
    fn observe_each(&mut self, task: &'static str, times: usize, each: Duration) {
        // An exponential moving average, one step per call: recent runs
        // count most. After 32 steps the old mean weighs (3/4)^32 < 10^-4:
        // further steps change nothing that matters.
        let steps = times.min(32);
        match self.mean(task) {
            Some(mean) => (0..steps).for_each(|_| *mean = (*mean * 3 + each) / 4),
            None => self.means.push((task, each)),
        }
    }

    fn mean(&mut self, task: &str) -> Option<&mut Duration> {
        self.means
            .iter_mut()
            .find(|(name, _)| std::ptr::eq(*name, task) || *name == task)
            .map(|(_, mean)| mean)
    }

    /// How many calls of `task` one batch may hold, judged by its run time
    /// alone (1: not batched; unknown tasks are not batched).
    pub(crate) fn window(&self, task: &str) -> usize {
        let mean = self
            .means
            .iter()
            .find(|(name, _)| std::ptr::eq(*name, task) || *name == task)
            .map(|(_, mean)| *mean);
        match mean {
            Some(mean) if mean < QUICK_TASK => {
                let by_time = TIME_BUDGET.as_nanos() / mean.as_nanos().max(1);
                (by_time as usize).clamp(1, MAX_WINDOW)
            }
            _ => 1,
        }
    }
}

/// How many more jobs a slot may add to a batch that has one, given the
/// queue's length after it, the number of other slots waiting for work and
/// the tasks the worker may still run before it is retired.
pub(crate) fn extra_jobs(queued: usize, idle_slots: usize, tasks_left: Option<usize>) -> usize {
    if idle_slots > 0 {
        // Another worker is free: the queue is theirs.
        return 0;
    }
    let mut extra = queued.min(MAX_WINDOW - 1);
    if let Some(left) = tasks_left {
        extra = extra.min(left.saturating_sub(1));
    }
    extra
}
