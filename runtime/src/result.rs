//! `AsyncResult<T>`: the handle to a task's future result, and `Promise`, the
//! pool's side of it; both share a [`ResultCell`](cell::ResultCell).

mod cell;
mod decode;
mod future;
mod handle;
mod hub;
mod promise;
mod target;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

pub(crate) use crate::cancel::{CancelFn, CancelOutcome};
use crate::error::Error;
use cell::ResultCell;
pub(crate) use decode::decode_body;
pub use handle::CancelHandle;
pub(crate) use hub::Hub;
pub(crate) use promise::{pending, pending_with, ready, Promise};
pub(crate) use target::CancelTarget;

/// The encoded result of a task, or why there is none.
pub(crate) type Outcome = Result<crate::wire::Body, Error>;

pub(crate) type Listener = Box<dyn FnOnce(Arc<Outcome>) + Send>;

/// Turns an outcome into the caller's result type.
pub(crate) type Decoder<T> = fn(&str, &Outcome) -> Result<T, Error>;

/// A [`Decoder`] of some `T`, kept in the result cell of that `T`'s
/// [`AsyncResult`] (rare: a map's; keeping it there rather than in every
/// handle keeps the handle one pointer).
pub(crate) type ErasedDecoder = fn();

/// The result of a task submitted with `apply_async_<fn>`: Python's
/// `AsyncResult`, typed.
///
/// Dropping it without collecting the result is fine: the task still runs and
/// its worker moves on (dropping does not cancel it; [`cancel`](Self::cancel)
/// does). Callbacks attached with [`callback`](Self::callback),
/// [`error_callback`](Self::error_callback) and
/// [`on_complete`](Self::on_complete) run on the pool's callback thread as
/// soon as the result arrives (even if it arrived before they were
/// attached), in arrival order, never on a thread that talks to a worker.
///
/// As in Python, the result counts as there only once its callbacks have
/// returned: when [`get`](Self::get), [`get_timeout`](Self::get_timeout),
/// [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout),
/// [`ready`](Self::ready), [`successful`](Self::successful) or `.await`
/// report it, every callback attached so far has run, so "append to a list
/// in the callback, `wait()`, read the list" is safe. A callback may submit
/// tasks, wait on other results (if one of those has callbacks waiting in
/// line behind it, the waiting callback thread runs them first) and close,
/// join, terminate or drop its pool. A callback that waits on its own result
/// (or on a result whose callbacks its thread is running further up) is
/// given the outcome at once: waiting for its callbacks to return would wait
/// for itself for ever.
///
/// A callback that panics is caught: procpool prints nothing, but logs a
/// warning (`log` target `procpool`) naming the task and quoting the panic,
/// and the result, the callbacks after it and the pool carry on. Like any
/// panic, it first goes through the program's panic hook (Rust's default
/// hook prints it on stderr; `std::panic::set_hook` decides otherwise).
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
#[must_use = "the task runs anyway; without `get`, `wait` or a callback its result and any error are lost"]
pub struct AsyncResult<T> {
    cell: Arc<ResultCell>,
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

impl<T: DeserializeOwned + 'static> AsyncResult<T> {
    /// Waits for the task and returns its result (Python's `get()`).
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let pending = apply_async_add(&pool, 2, 3);
    ///     assert_eq!(pending.get()?, 5);
    ///     Ok(())
    /// }
    /// ```
    pub fn get(self) -> Result<T, Error> {
        let outcome = self.wait_outcome();
        Self::decode_last(&self.cell, outcome)
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
    /// let r = apply_async_nap(&pool, 2000);
    /// assert!(matches!(r.get_timeout(Duration::from_millis(1)), Err(procpool::Error::WaitTimeout { .. })));
    /// assert_eq!(r.get()?, 2000); // not lost
    /// # Ok(()) }
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        match self.cell.wait_until(Instant::now().checked_add(timeout)) {
            Some(outcome) => Self::decode(&self.cell, &outcome),
            None => Err(Error::WaitTimeout {
                task: self.task().to_string(),
                waited: timeout,
            }),
        }
    }
}

impl<T: DeserializeOwned + 'static> AsyncResult<T> {
    /// `None` while the task runs; then whether [`get`](Self::get) returns
    /// a value (Python's `successful()`, which raises instead of returning
    /// `None`). So it is `Some(false)` for a `map_async_<fn>` one of whose
    /// items failed, and for a result that does not decode: the outcome is
    /// decoded to tell (the value is dropped), by the first call only; later
    /// ones answer what it found.
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn check(x: u32) -> u32 { assert!(x != 2, "no 2"); x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let r = map_async_check(&pool, 0..4);
    ///     r.wait();
    ///     assert_eq!(r.successful(), Some(false)); // item 2 panicked
    ///     assert!(r.get().is_err());
    ///     Ok(())
    /// }
    /// ```
    pub fn successful(&self) -> Option<bool> {
        let outcome = self.cell.completed()?;
        if outcome.is_err() {
            return Some(false);
        }
        if let Some(decodes) = self.cell.decodes() {
            return Some(decodes);
        }
        // (Not under the cell's lock: the value's `Deserialize` is the
        // user's code. Threads asking at once may each decode it.)
        let decodes = Self::decode(&self.cell, &outcome).is_ok();
        self.cell.set_decodes(decodes);
        Some(decodes)
    }

    /// Runs `f` with the value once the task succeeds (Python's `callback`).
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let pending = apply_async_add(&pool, 2, 3).callback(move |sum| tx.send(sum).unwrap());
    ///     pending.wait(); // the callback has returned
    ///     assert_eq!(rx.recv().unwrap(), 5);
    ///     Ok(())
    /// }
    /// ```
    pub fn callback(self, f: impl FnOnce(T) + Send + 'static) -> Self {
        self.on_complete(move |result| {
            if let Ok(value) = result {
                f(value);
            }
        })
    }

    /// Runs `f` with the error once the task fails (Python's `error_callback`).
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn checked_div(a: i32, b: i32) -> i32 { a / b } // panics when b is 0
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let pending = apply_async_checked_div(&pool, 1, 0)
    ///         .error_callback(move |error| tx.send(error.kind()).unwrap());
    ///     pending.wait();
    ///     assert_eq!(rx.recv().unwrap(), procpool::ErrorKind::Panic);
    ///     Ok(())
    /// }
    /// ```
    pub fn error_callback(self, f: impl FnOnce(Error) + Send + 'static) -> Self {
        self.on_complete(move |result| {
            if let Err(error) = result {
                f(error);
            }
        })
    }

    /// Runs `f` with the task's result, success or failure, once it arrives.
    /// `get()` still returns the result afterwards, once `f` has returned.
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
        let cell = self.cell.clone();
        self.cell
            .attach(Box::new(move |outcome| f(Self::decode(&cell, &outcome))));
        self
    }
}

impl<T> AsyncResult<T> {
    /// Makes this result cancel `parts` (a map's chunks) together.
    pub(crate) fn cancels_parts(self, parts: Vec<CancelTarget>) -> Self {
        self.cell.set_parts(parts);
        self
    }

    /// What cancelling this result cancels, to be kept without the result
    /// (and its outcome) itself.
    pub(crate) fn cancel_target(&self) -> CancelTarget {
        self.cell.cancel_target()
    }

    /// Cancels the task (Python's `Future.cancel()`, but a running task is
    /// stopped too, like pebble's): if it is still queued it never runs; if
    /// it is running, its worker is killed and replaced. Either way its
    /// result becomes [`Error::Cancelled`], and the other tasks are not
    /// affected (the calls pipelined behind it on the same worker had not
    /// started: they go back to the queue; a worker that finished the task
    /// and already started the next one is not killed, and the outcome is
    /// [`Finished`](CancelOutcome::Finished)). A result that is already there
    /// is kept. Returns without waiting for the task, saying which of these
    /// happened; unless that is `Finished`, the result is `Cancelled` by
    /// then, as Python's `Future.cancel()` leaves a future done (`get` does
    /// not wait; `ready()` is true at once, or, if callbacks are attached,
    /// once they returned: they run on the callback thread in their turn,
    /// and a cancel does not wait behind other results' callbacks). A
    /// worker killed to stop the task has ended by then, so the task holds
    /// nothing any more (a lock, a file; waited for half a second at most,
    /// and not through Redis, whose node kills it when it acts); its
    /// replacement follows. Cancelling again changes nothing and answers
    /// what the first cancel did (as Python's `Future.cancel()` answers
    /// `True` again); threads cancelling at once all get the first one's
    /// answer. A result [`Pool::close_and_cancel`](crate::Pool::close_and_cancel)
    /// cancelled answers [`NotStarted`](CancelOutcome::NotStarted): it never
    /// ran. A time limit that ends the task in the same instant
    /// may win: the outcome is then [`Stopped`](CancelOutcome::Stopped) and
    /// the result [`Error::Timeout`]; so may a [`Pool::terminate`](crate::Pool::terminate)
    /// on another thread: `Stopped`, and the result [`Error::Terminated`],
    /// as for every task the terminate finds unfinished (a result settled
    /// first is kept).
    ///
    /// For a `map_async_<fn>`, every chunk is cancelled: the result is
    /// `Err(Cancelled)` unless every chunk had already finished (or the map
    /// had already failed: its first error is known once its chunk and
    /// those before it are back, and a result that is there is kept); the outcome
    /// is [`Stopped`](CancelOutcome::Stopped) if any chunk was running,
    /// else [`NotStarted`](CancelOutcome::NotStarted) if any was queued.
    /// A map whose result was there before the cancel answers
    /// [`Finished`](CancelOutcome::Finished) (or `NotStarted` if
    /// `close_and_cancel` had cancelled it), its result kept, and the
    /// chunks still queued or running behind its first error are cancelled
    /// all the same.
    ///
    /// Dropping an `AsyncResult` does not cancel its task.
    ///
    /// ```
    /// use procpool::{pool_task, CancelOutcome, Error, Pool};
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let busy = apply_async_nap(&pool, 2000); // still running at the cancel
    ///     let waiting = apply_async_nap(&pool, 60_000);
    ///     assert_eq!(waiting.cancel(), CancelOutcome::NotStarted);
    ///     assert!(matches!(waiting.get(), Err(Error::Cancelled { .. })));
    ///     busy.get()?; // not affected
    ///     Ok(())
    /// }
    /// ```
    pub fn cancel(&self) -> CancelOutcome {
        self.cell.cancel()
    }

    /// A handle that cancels this task from elsewhere (another thread, or
    /// another async task) while this result is awaited or waited on: see
    /// [`CancelHandle`]. Aborting an async task that awaits the result
    /// drops it, which does not cancel; this handle still cancels it then.
    ///
    /// ```
    /// use procpool::{pool_task, CancelOutcome, Error, Pool};
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let busy = apply_async_nap(&pool, 2000);
    ///     let r = apply_async_nap(&pool, 60_000);
    ///     let handle = r.cancel_handle();
    ///     assert_eq!(handle.cancel(), CancelOutcome::NotStarted);
    ///     assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    ///     busy.get()?;
    ///     Ok(())
    /// }
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            cell: Arc::downgrade(&self.cell),
        }
    }

    /// The registered name of the task.
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let pending = apply_async_add(&pool, 2, 3);
    ///     assert!(pending.task().ends_with("::add"));
    ///     Ok(())
    /// }
    /// ```
    pub fn task(&self) -> &str {
        &self.cell.task
    }

    /// Waits until the result is there and its callbacks have returned
    /// (Python's `wait()`).
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let pending = apply_async_add(&pool, 2, 3);
    ///     pending.wait();
    ///     assert!(pending.ready());
    ///     assert_eq!(pending.get()?, 5);
    ///     Ok(())
    /// }
    /// ```
    pub fn wait(&self) {
        self.cell.wait_until(None);
    }

    /// Waits at most `timeout`; `true` if the result is there.
    ///
    /// ```
    /// # use std::time::Duration;
    /// #[procpool::pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let pending = apply_async_nap(&pool, 300);
    ///     assert!(!pending.wait_timeout(Duration::from_millis(10))); // still running
    ///     assert!(pending.wait_timeout(Duration::from_secs(30)));
    ///     assert_eq!(pending.get()?, 300);
    ///     Ok(())
    /// }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell
            .wait_until(Instant::now().checked_add(timeout))
            .is_some()
    }

    /// Waits for the raw outcome (a map decodes it itself).
    pub(crate) fn wait_outcome(&self) -> Arc<Outcome> {
        self.cell
            .wait_until(None)
            .expect("waits without a deadline")
    }

    /// Waits for the raw outcome and takes it (no copy if nothing else
    /// holds it).
    pub(crate) fn into_outcome(self) -> Outcome {
        let outcome = self.wait_outcome();
        match self.cell.take_sole(outcome) {
            Ok(outcome) => outcome,
            Err(shared) => (*shared).clone(),
        }
    }

    /// Calls `listener` with the raw outcome, on the thread that fills it
    /// (or here, if it is there): it must be quick.
    pub(crate) fn listen_outcome(&self, listener: Listener) {
        self.cell.listen(listener);
    }

    /// Whether the task has finished, successfully or not, and its
    /// callbacks have returned.
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = procpool::Pool::new(1)?;
    ///     let pending = apply_async_add(&pool, 2, 3);
    ///     while !pending.ready() {
    ///         std::thread::yield_now(); // other work here
    ///     }
    ///     assert_eq!(pending.successful(), Some(true));
    ///     Ok(())
    /// }
    /// ```
    pub fn ready(&self) -> bool {
        self.cell.completed().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::wire::Body;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::mpsc;
    use std::task::{Context, Poll};

    const BIG: usize = 1 << 20;

    /// A `Vec<u8>` result whose outcome arrived as a large block does from
    /// a worker (its encoded length, then the bytes as the tail), and where
    /// those bytes are.
    fn arrived() -> (AsyncResult<Vec<u8>>, *const u8) {
        let (promise, result) = pending::<Vec<u8>>("echo".to_string(), Hub::default(), 0);
        let tail = vec![7u8; BIG];
        let at = tail.as_ptr();
        let mut head = Vec::new();
        codec::encode_len(tail.len(), &mut head);
        promise.complete(Ok(Body::split(head, tail)));
        (result, at)
    }

    fn check(bytes: &[u8]) {
        assert_eq!(bytes.len(), BIG);
        assert!(bytes.iter().all(|&b| b == 7));
    }

    #[test]
    fn the_last_reader_of_a_block_result_takes_it_whole_and_a_shared_one_is_copied() {
        // `get` (which consumes the result): the received bytes themselves.
        let (result, at) = arrived();
        let bytes = result.get().unwrap();
        check(&bytes);
        assert_eq!(bytes.as_ptr(), at, "taken, not copied");

        // Polled (`(&mut result).await` leaves it to read again): a copy,
        // and the result stays whole for `get`, which takes it.
        let (mut result, at) = arrived();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut result).poll(&mut cx) {
            Poll::Ready(Ok(bytes)) => {
                check(&bytes);
                assert_ne!(bytes.as_ptr(), at, "copied");
            }
            other => panic!("not ready with the bytes: {other:?}"),
        }
        assert!(result.ready());
        let bytes = result.get().unwrap();
        check(&bytes);
        assert_eq!(bytes.as_ptr(), at, "taken by get");

        // After a callback ran (it decoded its own copy).
        let (result, at) = arrived();
        let (tx, rx) = mpsc::channel();
        let result = result.callback(move |bytes: Vec<u8>| tx.send(bytes).unwrap());
        let bytes = result.get().unwrap();
        check(&bytes);
        assert_eq!(bytes.as_ptr(), at, "taken once the callback returned");
        let called = rx.recv().unwrap();
        check(&called);
        assert_ne!(called.as_ptr(), at);

        // Someone else still holds the outcome: `get` copies, and theirs
        // stays whole.
        let (result, at) = arrived();
        let kept = result.cell.completed().expect("complete");
        let bytes = result.get().unwrap();
        check(&bytes);
        assert_ne!(bytes.as_ptr(), at, "copied");
        let body = kept.as_ref().as_ref().expect("a body");
        assert_eq!(body.tail().as_ptr(), at);
        check(body.tail());
    }
}
