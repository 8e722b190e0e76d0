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
//! itself; and a thread that waits on a result whose callbacks it is
//! running itself (a callback waiting on its own result, directly or
//! through another result's callback it helped run) is given the arrived
//! outcome: waiting would wait for itself for ever.

mod cancel;
mod wait;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::{self, Thread, ThreadId};

use super::CancelTarget;
use super::{ErasedDecoder, Hub, Listener, Outcome};
use crate::callbacks;
use crate::cancel::CancelOutcome;
use crate::task::TaskInfo;

/// Where a task's outcome lands (see the module's documentation). Kept
/// small: one is alive per pending task, so what only some results need
/// (callbacks, listeners, threads or an executor waiting, a map's parts)
/// lives in a box made on first use. (72 bytes with the `Arc`'s counts:
/// the allocator's 80-byte class; a unit test pins it.)
pub(crate) struct ResultCell {
    pub(super) task: TaskName,
    /// The pool's callback thread and canceller.
    hub: Hub,
    /// The call this result is of, to cancel it (0: none: the result was
    /// known at once, or it gathers parts).
    id: u64,
    /// For a queued call's result, what its queue entry does not hold (see
    /// `crate::call::Job`): its time limit and two flags. Unused otherwise.
    pub(super) meta: AtomicU64,
    state: Mutex<CellState>,
}

/// The task of a result: a call's, or the entry of a name refused before a
/// call was made (see [`crate::task::refused`]). One pointer.
pub(crate) struct TaskName(pub(super) &'static TaskInfo);

impl std::ops::Deref for TaskName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.name
    }
}

impl From<&'static TaskInfo> for TaskName {
    fn from(info: &'static TaskInfo) -> TaskName {
        TaskName(info)
    }
}

impl From<String> for TaskName {
    fn from(name: String) -> TaskName {
        TaskName(crate::task::refused(&name))
    }
}

/// The result is *complete* once the outcome arrived and every callback
/// attached so far has returned: with no [`Extra`], as soon as the outcome
/// is there.
#[derive(Default)]
struct CellState {
    /// The outcome, once it arrived.
    outcome: Option<Arc<Outcome>>,
    /// What few results need, made on first use.
    extra: Option<Box<Extra>>,
}

#[derive(Default)]
struct Extra {
    /// Callbacks attached to the arrived outcome are waiting or running:
    /// the result is not complete yet.
    behind_callbacks: bool,
    /// The thread running this cell's callbacks, if one is.
    running: Option<ThreadId>,
    /// Threads blocked in `wait_until`, unparked on completion (and when
    /// the outcome arrives, for a callback thread to help).
    waiters: Vec<Thread>,
    /// Callbacks not yet run, in the order they were attached.
    callbacks: Vec<Listener>,
    /// procpool's own listeners (a map gathering its chunks), called on
    /// the thread the outcome arrives on, as it arrives.
    listeners: Vec<Listener>,
    /// The task of the executor awaiting this result, if any.
    waker: Option<Waker>,
    /// The calls a map's result stands for, cancelled together.
    parts: Option<Arc<[CancelTarget]>>,
    /// How a map's result decodes its outcome (see `super::pending_with`).
    decoder: Option<ErasedDecoder>,
    /// What the first cancel that found the task queued or running did:
    /// every later cancel answers the same.
    cancelled: Option<CancelOutcome>,
    /// A cancel is under way (its thread talks to the pool).
    cancelling: bool,
    /// Whether the arrived value decodes, once `successful` has decoded
    /// it to tell (see `super::AsyncResult::successful`).
    decodes: Option<bool>,
    /// Threads that cancel meanwhile: woken once it has answered.
    cancel_waiters: Vec<Thread>,
    /// `get` took the outcome out of the complete result (see
    /// [`ResultCell::take_sole`]) while a `CancelHandle` could still reach
    /// it: settled, so a cancel through the handle answers `Finished`
    /// rather than take the missing outcome for a call still under way.
    taken: bool,
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

    /// Whether the result is complete (see [`CellState`]).
    fn complete(&self) -> bool {
        self.outcome.is_some() && !self.extra.as_ref().is_some_and(|e| e.behind_callbacks)
    }

    fn running(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.running.is_some())
    }

    /// Whether the calling thread is running this cell's callbacks (it
    /// waits from inside one of them): only its return completes the
    /// result, so the outcome, which has arrived, is all it can be given.
    fn running_here(&self) -> bool {
        self.extra
            .as_ref()
            .and_then(|e| e.running)
            .is_some_and(|id| id == thread::current().id())
    }

    /// Takes what must be woken now: the waiting threads (each adds itself
    /// again if it still has to wait) and the executor's waker.
    fn take_wakeups(&mut self) -> Wakeups {
        match self.extra.as_mut() {
            Some(e) => Wakeups(std::mem::take(&mut e.waiters), e.waker.take()),
            None => Wakeups(Vec::new(), None),
        }
    }

    /// Whether the calling thread should run the callbacks itself rather
    /// than wait: a callback thread would otherwise wait for itself.
    fn should_help(&self) -> bool {
        self.outcome.is_some()
            && !self.complete()
            && !self.running()
            && callbacks::on_callback_thread()
    }
}

/// Threads and a task to wake, once the cell's lock is released.
struct Wakeups(Vec<Thread>, Option<Waker>);

impl Wakeups {
    fn wake(self) {
        for thread in self.0 {
            thread.unpark();
        }
        if let Some(waker) = self.1 {
            waker.wake();
        }
    }
}

impl ResultCell {
    pub(super) fn new(task: TaskName, hub: Hub, id: u64) -> ResultCell {
        ResultCell {
            task,
            hub,
            id,
            meta: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }

    /// The call this result is of (0: none).
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Sets how this result's outcome decodes (see `super::pending_with`).
    pub(super) fn set_decoder(&self, decoder: ErasedDecoder) {
        self.lock().extra().decoder = Some(decoder);
    }

    /// How this result's outcome decodes, if not as one encoded value. (A
    /// call's result never has a decoder of its own: its lock is not taken.)
    pub(super) fn decoder(&self) -> Option<ErasedDecoder> {
        if self.id != 0 {
            return None;
        }
        self.lock().extra.as_ref().and_then(|e| e.decoder)
    }

    /// Whether the outcome's value decodes, if [`set_decodes`](Self::set_decodes)
    /// recorded it.
    pub(super) fn decodes(&self) -> Option<bool> {
        self.lock().extra.as_ref().and_then(|e| e.decodes)
    }

    /// Records whether the outcome's value decodes, so that it is decoded
    /// once to tell, not at every `successful`.
    pub(super) fn set_decodes(&self, decodes: bool) {
        self.lock().extra().decodes = Some(decodes);
    }

    fn lock(&self) -> MutexGuard<'_, CellState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the outcome (once; later ones are ignored), calls the
    /// listeners, and completes the result, through the callback thread if
    /// callbacks are attached.
    pub(super) fn fill(self: &Arc<Self>, outcome: Outcome) {
        let outcome = Arc::new(outcome);
        let (listeners, has_callbacks, wakeups) = {
            let mut state = self.lock();
            // (Nor once `get` took it: see `take_sole`.)
            if state.outcome.is_some() || state.extra.as_ref().is_some_and(|e| e.taken) {
                return;
            }
            let has_callbacks = state.has_callbacks();
            let listeners = match state.extra.as_mut() {
                Some(e) => {
                    e.behind_callbacks = has_callbacks;
                    std::mem::take(&mut e.listeners)
                }
                None => Vec::new(),
            };
            // This thread keeps a reference only for its listeners, so that
            // a waiter woken below may find itself the outcome's last
            // reader (see `take_sole`).
            let listeners = (!listeners.is_empty()).then(|| (listeners, outcome.clone()));
            state.outcome = Some(outcome);
            // Woken even if callbacks are pending: a waiter on a callback
            // thread runs them itself (the others wait on).
            (listeners, has_callbacks, state.take_wakeups())
        };
        wakeups.wake();
        if has_callbacks {
            self.post_callbacks();
        }
        if let Some((listeners, outcome)) = listeners {
            for listener in listeners {
                listener(outcome.clone());
            }
        }
    }

    fn post_callbacks(self: &Arc<Self>) {
        let cell = self.clone();
        self.hub
            .runner()
            .post(Box::new(move || cell.run_callbacks()));
    }

    /// Runs the pending callbacks (on a callback thread), then completes
    /// the result; does nothing if another thread runs them or they ran.
    fn run_callbacks(&self) {
        /// Ends the rounds counted for `flush` (see `begin_round`) once the
        /// result is complete, or this thread unwinds.
        struct Round<'a>(&'a callbacks::CallbackRunner);
        impl Drop for Round<'_> {
            fn drop(&mut self) {
                self.0.end_round();
            }
        }
        let mut round: Option<Round<'_>> = None;
        loop {
            let (callbacks, outcome) = {
                let mut state = self.lock();
                if state.outcome.is_none() || state.running() || state.complete() {
                    return;
                }
                if !state.has_callbacks() {
                    state.extra().behind_callbacks = false;
                    let wakeups = state.take_wakeups();
                    drop(state);
                    wakeups.wake();
                    return;
                }
                state.extra().running = Some(thread::current().id());
                // Under the lock that marks the round: a `flush` that finds
                // no round running finds this result's callbacks done and
                // the result complete.
                if round.is_none() {
                    self.hub.runner().begin_round();
                    round = Some(Round(self.hub.runner()));
                }
                let outcome = state.outcome.clone().expect("checked above");
                (state.take_callbacks(), outcome)
            };
            for callback in callbacks {
                let outcome = outcome.clone();
                callbacks::run_callback(&self.task, move || callback(outcome));
            }
            // (Dropped before the result completes: see `take_sole`.)
            drop(outcome);
            // Callbacks attached meanwhile run in the next round.
            self.lock().extra().running = None;
        }
    }

    /// The outcome itself, taken out of the complete result, if `outcome`
    /// (what `wait_until` returned) and the cell's own reference are its
    /// only ones: the result's last reader (`get`, which consumes its
    /// `AsyncResult`) may then keep its buffers rather than copy them. Else
    /// `outcome` is given back. The cell holds no outcome afterwards:
    /// nobody may read it again. If a `CancelHandle` can still reach the
    /// cell (it may outlive the result for an instant: the pool's threads
    /// may hold the cell a moment longer), the cell is marked settled, so
    /// that a cancel through the handle answers `Finished` instead of
    /// taking the missing outcome for a call not finished yet, cancelling
    /// it anew (killing the worker that ran it, if the pool still held the
    /// finished call) and waiting for an outcome that never comes.
    pub(super) fn take_sole(
        self: &Arc<Self>,
        outcome: Arc<Outcome>,
    ) -> Result<Outcome, Arc<Outcome>> {
        let mut state = self.lock();
        let sole = state.complete()
            && state
                .outcome
                .as_ref()
                .is_some_and(|own| Arc::ptr_eq(own, &outcome) && Arc::strong_count(own) == 2);
        if !sole {
            return Err(outcome);
        }
        // No other reference exists and none can be made (that takes this
        // lock): once the cell's is dropped, `outcome` is the only one.
        state.outcome = None;
        // (Only handles reach the cell weakly; none can be made now: `get`
        // consumed the result.)
        let wakeups = (Arc::weak_count(self) > 0).then(|| {
            state.extra().taken = true;
            // A cancel through a handle waiting for the outcome to arrive.
            state.take_wakeups()
        });
        drop(state);
        if let Some(wakeups) = wakeups {
            wakeups.wake();
        }
        Arc::try_unwrap(outcome)
    }

    /// The outcome, if the result is complete.
    pub(super) fn completed(&self) -> Option<Arc<Outcome>> {
        let state = self.lock();
        state.outcome.clone().filter(|_| state.complete())
    }

    /// Adds a user callback: it runs on the callback thread once the
    /// outcome is there (now, if it is), and the result is complete only
    /// once it has returned.
    pub(super) fn attach(self: &Arc<Self>, callback: Listener) {
        let mut state = self.lock();
        let complete = state.complete();
        let extra = state.extra();
        extra.callbacks.push(callback);
        // Complete already: complete again once this callback returned.
        // (Arrived but not complete: the callbacks are queued or running,
        // and whoever runs them runs this one too. Not arrived: `fill`
        // posts them.)
        if complete {
            extra.behind_callbacks = true;
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

#[cfg(test)]
mod tests {
    use super::ResultCell;

    #[test]
    fn a_pending_result_fits_the_allocators_80_byte_class() {
        // One is alive per pending task; with the `Arc`'s two counts it is
        // 72 bytes, which glibc's malloc serves from its 80-byte chunks
        // (88 would take 96).
        assert_eq!(std::mem::size_of::<ResultCell>() + 16, 72);
    }
}
