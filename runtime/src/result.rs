//! `AsyncResult<T>`: the handle to a task's future result, and `Promise`, the
//! pool's side of it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::callbacks::CallbackRunner;
use crate::codec;
use crate::error::Error;

/// The encoded result of a task, or why there is none.
pub(crate) type Outcome = Result<crate::wire::Body, Error>;

type Listener = Box<dyn FnOnce(Arc<Outcome>) + Send>;

/// Where a task's outcome lands, shared by the pool and the caller.
pub(crate) struct Slot {
    task: Arc<str>,
    state: Mutex<SlotState>,
    done: Condvar,
}

#[derive(Default)]
struct SlotState {
    outcome: Option<Arc<Outcome>>,
    listeners: Vec<Listener>,
    /// Threads blocked in `wait_until` (a notify is a system call; skipped
    /// when nobody waits).
    waiters: usize,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fill(&self, outcome: Outcome) {
        let outcome = Arc::new(outcome);
        let (listeners, waiters) = {
            let mut state = self.lock();
            if state.outcome.is_some() {
                return;
            }
            state.outcome = Some(outcome.clone());
            (std::mem::take(&mut state.listeners), state.waiters > 0)
        };
        if waiters {
            self.done.notify_all();
        }
        for listener in listeners {
            listener(outcome.clone());
        }
    }

    /// Waits until the outcome is there or `deadline` passes.
    fn wait_until(&self, deadline: Option<Instant>) -> Option<Arc<Outcome>> {
        let mut state = self.lock();
        loop {
            if let Some(outcome) = &state.outcome {
                return Some(outcome.clone());
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

    /// Calls `listener` with the outcome: now if it is there, else on arrival.
    fn listen(&self, listener: Listener) {
        let mut state = self.lock();
        match &state.outcome {
            Some(outcome) => {
                let outcome = outcome.clone();
                drop(state);
                listener(outcome);
            }
            None => state.listeners.push(listener),
        }
    }
}

/// The pool's promise to fill a slot. Dropping it unfilled (a job discarded
/// on any path) fails the task instead of leaving its caller waiting forever.
pub(crate) struct Promise {
    slot: Option<Arc<Slot>>,
}

impl Promise {
    pub(crate) fn task(&self) -> &str {
        self.slot.as_ref().map(|s| &*s.task).unwrap_or("")
    }

    pub(crate) fn complete(mut self, outcome: Outcome) {
        if let Some(slot) = self.slot.take() {
            slot.fill(outcome);
        }
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let task = slot.task.to_string();
            slot.fill(Err(Error::Terminated { task }));
        }
    }
}

/// Creates a connected promise and result for the task named `task`.
pub(crate) fn pending<T>(task: Arc<str>, runner: CallbackRunner) -> (Promise, AsyncResult<T>) {
    let slot = Arc::new(Slot {
        task,
        state: Mutex::default(),
        done: Condvar::new(),
    });
    let result = AsyncResult {
        slot: slot.clone(),
        runner,
        _type: PhantomData,
    };
    (Promise { slot: Some(slot) }, result)
}

/// A result that is already known (the task was refused before it was sent).
pub(crate) fn ready<T>(task: Arc<str>, runner: CallbackRunner, outcome: Outcome) -> AsyncResult<T> {
    let (promise, result) = pending(task, runner);
    promise.complete(outcome);
    result
}

/// The result of a task submitted with `apply_async_<fn>`: Python's
/// `AsyncResult`, typed.
///
/// Dropping it without collecting the result is fine: the task still runs and
/// its worker moves on. Callbacks attached with [`callback`](Self::callback)
/// and [`error_callback`](Self::error_callback) run on the pool's callback
/// thread as soon as the result arrives, even if it arrived before they were
/// attached.
///
/// ```
/// use std::time::Duration;
/// use procpool::{pool_task, Pool};
///
/// #[pool_task]
/// fn add(a: i32, b: i32) -> i32 { a + b }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(1)?;
///     let r = apply_async_add(&pool, 2, 3);
///     assert!(r.wait_timeout(Duration::from_secs(30)));
///     assert!(r.ready());
///     assert_eq!(r.successful(), Some(true));
///     assert_eq!(r.get()?, 5);
///     Ok(())
/// }
/// ```
#[must_use = "an AsyncResult does nothing unless you wait for it or attach a callback"]
pub struct AsyncResult<T> {
    slot: Arc<Slot>,
    runner: CallbackRunner,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("task", &self.task())
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T: DeserializeOwned> AsyncResult<T> {
    /// Waits for the task and returns its result (Python's `get()`).
    pub fn get(self) -> Result<T, Error> {
        let outcome = self
            .slot
            .wait_until(None)
            .expect("waits without a deadline");
        decode_outcome(&self.slot.task, &outcome)
    }

    /// Waits at most `timeout` for the result. On
    /// [`Error::WaitTimeout`] the task goes on running and its result can
    /// still be collected later with another call or [`get`](Self::get).
    ///
    /// ```
    /// # use std::time::Duration;
    /// #[procpool::pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(1)?;
    /// let r = apply_async_nap(&pool, 300);
    /// assert!(matches!(r.get_timeout(Duration::from_millis(1)), Err(procpool::Error::WaitTimeout { .. })));
    /// assert_eq!(r.get()?, 300); // not lost
    /// # Ok(()) }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        match self.slot.wait_until(Instant::now().checked_add(timeout)) {
            Some(outcome) => decode_outcome(&self.slot.task, &outcome),
            None => Err(Error::WaitTimeout {
                task: self.task().to_string(),
                waited: timeout,
            }),
        }
    }

    /// Runs `f` with the value once the task succeeds (Python's `callback`).
    pub fn callback(self, f: impl FnOnce(T) + Send + 'static) -> Self {
        self.on_complete(move |result| {
            if let Ok(value) = result {
                f(value);
            }
        })
    }

    /// Runs `f` with the error once the task fails (Python's `error_callback`).
    pub fn error_callback(self, f: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_complete(move |result| {
            if let Err(error) = result {
                f(error);
            }
        })
    }

    /// Runs `f` with the task's result, success or failure, once it arrives.
    /// `get()` still returns the result afterwards.
    ///
    /// ```
    /// # use std::sync::mpsc;
    /// #[procpool::pool_task]
    /// fn double(x: u8) -> u8 { x * 2 }
    ///
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let r = apply_async_double(&pool, 21).on_complete(move |res| tx.send(res).unwrap());
    /// assert_eq!(rx.recv().unwrap()?, 42);
    /// assert_eq!(r.get()?, 42);
    /// # Ok(()) }
    /// ```
    pub fn on_complete(self, f: impl FnOnce(Result<T, Error>) + Send + 'static) -> Self {
        let runner = self.runner.clone();
        let task = self.slot.task.clone();
        self.slot.listen(Box::new(move |outcome| {
            runner.post(Box::new(move || f(decode_outcome(&task, &outcome))));
        }));
        self
    }
}

impl<T> AsyncResult<T> {
    /// The registered name of the task.
    pub fn task(&self) -> &str {
        &self.slot.task
    }

    /// Waits until the result is there (Python's `wait()`).
    pub fn wait(&self) {
        self.slot.wait_until(None);
    }

    /// Waits at most `timeout`; `true` if the result is there.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot
            .wait_until(Instant::now().checked_add(timeout))
            .is_some()
    }

    /// Whether the task has finished, successfully or not.
    pub fn ready(&self) -> bool {
        self.slot.lock().outcome.is_some()
    }

    /// `None` while the task runs; then whether it returned a value
    /// (Python's `successful()`, which raises instead of returning `None`).
    pub fn successful(&self) -> Option<bool> {
        self.slot.lock().outcome.as_ref().map(|o| o.is_ok())
    }
}

fn decode_outcome<T: DeserializeOwned>(task: &str, outcome: &Outcome) -> Result<T, Error> {
    match outcome {
        Ok(bytes) => codec::decode(bytes).map_err(|message| Error::Decode {
            task: task.to_string(),
            what: "result",
            message,
        }),
        Err(e) => Err(e.clone()),
    }
}
