//! [`ResultCell`]: where a task's outcome lands, shared by the pool's
//! promise and the caller's `AsyncResult`, and the ordering it guarantees:
//! a result is *complete* (what `get`, `wait`, `ready`, `successful` and
//! `.await` report) only once its callbacks have returned, as in Python.
//!
//! An outcome arrives on a slot thread. With no callback attached, it is
//! complete at once. Otherwise the callbacks are handed to the pool's
//! callback thread, which runs them and then completes the result; the slot
//! thread never runs them. A callback thread that waits on a result whose
//! outcome arrived but whose callbacks wait in line (behind the very
//! callback that waits, perhaps) runs them itself instead of waiting for
//! itself.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use super::{Hub, Listener, Outcome};
use crate::callbacks;
use crate::cancel::CancelTarget;
use crate::task::TaskInfo;

/// Where a task's outcome lands (see the module's documentation). Kept
/// small: one is alive per pending task, so what only some results need
/// (callbacks, listeners, an executor's waker, a map's parts) lives in a
/// box made on first use.
pub(crate) struct ResultCell {
    pub(super) task: TaskName,
    /// The pool's callback thread and canceller.
    hub: Hub,
    /// The call this result is of, to cancel it (0: none: the result was
    /// known at once, or it gathers parts).
    id: u64,
    state: Mutex<CellState>,
    done: Condvar,
}

/// The name of a result's task: a call's (`&'static`, no allocation), or
/// one refused before a call was made (a name nobody registered). One
/// pointer and a tag (a `String` would be three words).
#[allow(clippy::box_collection)]
pub(crate) enum TaskName {
    Call(&'static TaskInfo),
    Refused(Box<String>),
}

impl std::ops::Deref for TaskName {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            TaskName::Call(info) => info.name,
            TaskName::Refused(name) => name,
        }
    }
}

impl From<&'static TaskInfo> for TaskName {
    fn from(info: &'static TaskInfo) -> TaskName {
        TaskName::Call(info)
    }
}

impl From<String> for TaskName {
    fn from(name: String) -> TaskName {
        TaskName::Refused(Box::new(name))
    }
}

#[derive(Default)]
struct CellState {
    /// The outcome, once it arrived.
    outcome: Option<Arc<Outcome>>,
    /// What few results need, made on first use.
    extra: Option<Box<Extra>>,
    /// Threads blocked in `wait_until` (a notify is a system call; skipped
    /// when nobody waits).
    waiters: u32,
    /// Whether the result is complete: the outcome arrived and every
    /// callback attached so far has returned.
    complete: bool,
    /// A thread is running this cell's callbacks.
    running: bool,
}

#[derive(Default)]
struct Extra {
    /// Callbacks not yet run, in the order they were attached.
    callbacks: Vec<Listener>,
    /// procpool's own listeners (a map gathering its chunks), called on
    /// the thread the outcome arrives on, as it arrives.
    listeners: Vec<Listener>,
    /// The task of the executor awaiting this result, if any.
    waker: Option<Waker>,
    /// The calls a map's result stands for, cancelled together.
    parts: Option<Arc<[CancelTarget]>>,
}

impl CellState {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn has_callbacks(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| !e.callbacks.is_empty())
    }

    fn take_callbacks(&mut self) -> Vec<Listener> {
        self.extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.callbacks))
            .unwrap_or_default()
    }

    fn take_waker(&mut self) -> Option<Waker> {
        self.extra.as_mut().and_then(|e| e.waker.take())
    }

    /// Whether the calling thread should run the callbacks itself rather
    /// than wait: a callback thread would otherwise wait for itself.
    fn should_help(&self) -> bool {
        self.outcome.is_some() && !self.complete && !self.running && callbacks::on_callback_thread()
    }
}

impl ResultCell {
    pub(super) fn new(task: TaskName, hub: Hub, id: u64) -> ResultCell {
        ResultCell {
            task,
            hub,
            id,
            state: Mutex::default(),
            done: Condvar::new(),
        }
    }

    /// What cancelling this result cancels.
    pub(super) fn cancel_target(&self) -> CancelTarget {
        let parts = self.lock().extra.as_ref().and_then(|e| e.parts.clone());
        match parts {
            Some(parts) => CancelTarget::Parts(parts),
            None if self.id != 0 => CancelTarget::Call(self.hub.clone(), self.id),
            None => CancelTarget::None,
        }
    }

    /// Makes this result stand for `parts` (a map's chunks) when cancelled.
    pub(super) fn set_parts(&self, parts: Vec<CancelTarget>) {
        self.lock().extra().parts = Some(parts.into());
    }

    fn lock(&self) -> MutexGuard<'_, CellState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the outcome (once; later ones are ignored), calls the
    /// listeners, and completes the result, through the callback thread if
    /// callbacks are attached.
    pub(super) fn fill(self: &Arc<Self>, outcome: Outcome) {
        let outcome = Arc::new(outcome);
        let (listeners, has_callbacks, waiters, waker) = {
            let mut state = self.lock();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome.clone());
            state.complete = !state.has_callbacks();
            let listeners = state
                .extra
                .as_mut()
                .map(|e| std::mem::take(&mut e.listeners))
                .unwrap_or_default();
            (
                listeners,
                !state.complete,
                state.waiters > 0,
                state.take_waker(),
            )
        };
        // Woken even if callbacks are pending: a waiter on a callback thread
        // runs them itself (the others wait on).
        if waiters {
            self.done.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        if has_callbacks {
            self.post_callbacks();
        }
        for listener in listeners {
            listener(outcome.clone());
        }
    }

    fn post_callbacks(self: &Arc<Self>) {
        let cell = self.clone();
        self.hub.runner().post(Box::new(move || cell.run_callbacks()));
    }

    /// Runs the pending callbacks (on a callback thread), then completes
    /// the result; does nothing if another thread runs them or they ran.
    fn run_callbacks(&self) {
        loop {
            let (callbacks, outcome) = {
                let mut state = self.lock();
                let Some(outcome) = state.outcome.clone() else {
                    return;
                };
                if state.running || state.complete {
                    return;
                }
                if !state.has_callbacks() {
                    state.complete = true;
                    let waiters = state.waiters > 0;
                    let waker = state.take_waker();
                    drop(state);
                    if waiters {
                        self.done.notify_all();
                    }
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                    return;
                }
                state.running = true;
                (state.take_callbacks(), outcome)
            };
            for callback in callbacks {
                let outcome = outcome.clone();
                callbacks::run_guarded(Box::new(move || callback(outcome)));
            }
            // Callbacks attached meanwhile run in the next round.
            self.lock().running = false;
        }
    }

    /// Waits until the result is complete or `deadline` passes.
    pub(super) fn wait_until(&self, deadline: Option<Instant>) -> Option<Arc<Outcome>> {
        let mut state = self.lock();
        loop {
            if state.complete {
                return state.outcome.clone();
            }
            if state.should_help() {
                drop(state);
                self.run_callbacks();
                state = self.lock();
                continue;
            }
            let left = match deadline {
                None => None,
                Some(deadline) => Some(deadline.checked_duration_since(Instant::now())?),
            };
            state.waiters += 1;
            state = match left {
                None => self.done.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(left) => {
                    self.done
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            state.waiters -= 1;
        }
    }

    /// The outcome if the result is complete; else remembers `waker` to
    /// wake on completion.
    pub(super) fn poll_outcome(&self, waker: &Waker) -> Option<Arc<Outcome>> {
        let mut state = self.lock();
        loop {
            if state.complete {
                return state.outcome.clone();
            }
            if !state.should_help() {
                break;
            }
            drop(state);
            self.run_callbacks();
            state = self.lock();
        }
        match &mut state.extra().waker {
            Some(old) if old.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        None
    }

    /// The outcome, if the result is complete.
    pub(super) fn completed(&self) -> Option<Arc<Outcome>> {
        let state = self.lock();
        state.outcome.clone().filter(|_| state.complete)
    }

    /// Adds a user callback: it runs on the callback thread once the
    /// outcome is there (now, if it is), and the result is complete only
    /// once it has returned.
    pub(super) fn attach(self: &Arc<Self>, callback: Listener) {
        let mut state = self.lock();
        state.extra().callbacks.push(callback);
        // Complete already: complete again once this callback returned.
        // (Arrived but not complete: the callbacks are queued or running,
        // and whoever runs them runs this one too.)
        if state.complete {
            state.complete = false;
            drop(state);
            self.post_callbacks();
        }
    }

    /// Calls `listener` with the outcome: now if it arrived, else on arrival
    /// (on the thread it arrives on).
    pub(super) fn listen(&self, listener: Listener) {
        let mut state = self.lock();
        match &state.outcome {
            Some(outcome) => {
                let outcome = outcome.clone();
                drop(state);
                listener(outcome);
            }
            None => state.extra().listeners.push(listener),
        }
    }
}
