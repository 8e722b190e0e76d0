//! Waiting on a result cell until it is complete: blocking a thread
//! (which, on a callback thread, runs the callbacks it would wait for
//! itself), or polled by an executor.

use std::sync::Arc;
use std::task::Waker;
use std::thread::{self, Thread};
use std::time::Instant;

use super::ResultCell;
use crate::result::Outcome;

/// The stack a callback thread keeps free before it runs the callbacks of a
/// result it waits on (see [`ResultCell::help`]): room for the user's
/// callbacks between two nested waits.
const HELP_RED_ZONE: usize = 256 << 10;
/// The stack segment [`ResultCell::help`] adds when less than
/// [`HELP_RED_ZONE`] is left.
const HELP_STACK: usize = 4 << 20;

impl ResultCell {
    /// [`run_callbacks`](Self::run_callbacks) by a callback thread that
    /// waits on this result (see [`CellState::should_help`](super::CellState::should_help)), on a fresh
    /// stack segment once its own runs low: a callback that waits on a
    /// result whose callback waits on another, and so on (a chain of tasks
    /// each submitted and waited for by the previous one's callback), nests
    /// one such run per link, which overflowed the callback thread's 2 MiB
    /// stack (and aborted the whole program) after some hundreds of links.
    fn help(&self) {
        stacker::maybe_grow(HELP_RED_ZONE, HELP_STACK, || self.run_callbacks());
    }

    /// Waits until the result is complete or `deadline` passes.
    pub(in crate::result) fn wait_until(&self, deadline: Option<Instant>) -> Option<Arc<Outcome>> {
        // This thread's handle, taken once it has to wait.
        let mut me: Option<Thread> = None;
        let mut state = self.lock();
        let waited = loop {
            if state.complete() || state.running_here() {
                break state.outcome.clone();
            }
            if state.should_help() {
                drop(state);
                self.help();
                state = self.lock();
                continue;
            }
            // In a copy made by `fork`, nothing ever completes it.
            if let Some(error) = self.hub.foreign(&self.task) {
                break Some(Arc::new(Err(error)));
            }
            let left = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => Some(left),
                    None => break None,
                },
            };
            // Whoever completes the result takes the list and unparks it.
            let me = me.get_or_insert_with(thread::current);
            let waiters = &mut state.extra().waiters;
            if !waiters.iter().any(|t| t.id() == me.id()) {
                waiters.push(me.clone());
            }
            drop(state);
            match left {
                None => thread::park(),
                Some(left) => thread::park_timeout(left),
            }
            state = self.lock();
        };
        if let (Some(me), Some(e)) = (me, state.extra.as_mut()) {
            e.waiters.retain(|t| t.id() != me.id());
        }
        waited
    }

    /// The outcome if the result is complete; else remembers `waker` to
    /// wake on completion.
    pub(in crate::result) fn poll_outcome(&self, waker: &Waker) -> Option<Arc<Outcome>> {
        let mut state = self.lock();
        loop {
            if state.complete() || state.running_here() {
                return state.outcome.clone();
            }
            if !state.should_help() {
                break;
            }
            drop(state);
            self.help();
            state = self.lock();
        }
        // In a copy made by `fork`, nothing ever completes it (as in
        // `wait_until`): `.await` fails at once there too.
        if let Some(error) = self.hub.foreign(&self.task) {
            return Some(Arc::new(Err(error)));
        }
        match &mut state.extra().waker {
            Some(old) if old.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        None
    }
}
