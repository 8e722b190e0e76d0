//! Awaiting an `AsyncResult`: its `Future` implementation.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use super::AsyncResult;
use crate::error::Error;

/// Awaiting an `AsyncResult` yields the task's result without blocking the
/// executor's thread: the pool wakes the awaiting task when the result
/// arrives (once its callbacks have returned). It works on any executor
/// (tokio, async-std, `futures`' `block_on`, ...); procpool depends on none.
///
/// - `AsyncResult` and [`Pool`](crate::Pool) are `Send` and `Sync`:
///   `tokio::spawn` takes a result, or an `async move` block that owns a
///   clone of the pool, and the awaiting task may move between threads.
/// - Awaiting `&mut r` (in `select!`, under `tokio::time::timeout`) loses
///   nothing when the other branch wins or the time runs out: await `r`
///   again, from any task, or [`get`](AsyncResult::get) it.
/// - Dropping the future (a `select!` loser, an aborted task) does not
///   cancel the task. [`cancel`](AsyncResult::cancel) does, and
///   [`cancel_handle`](AsyncResult::cancel_handle) from another task while
///   this one awaits: the await then returns [`Error::Cancelled`]. A
///   [`terminate`](crate::Pool::terminate) wakes every awaiting task with
///   [`Error::Terminated`], a worker's death with [`Error::WorkerDied`].
/// - Everything else waits on the calling thread: `apply_<fn>`, `map_<fn>`,
///   an `imap`'s `next`, [`get`](AsyncResult::get), [`wait`](AsyncResult::wait),
///   [`join`](crate::Pool::join), [`terminate`](crate::Pool::terminate), and
///   the drop of a pool's last handle, which waits for its queued tasks.
///   From async code, run those through the executor's way of running
///   blocking code (`tokio::task::spawn_blocking`), or they hold its thread
///   (on a single-threaded executor, every other task) meanwhile. Briefly,
///   [`Pool::new`](crate::Pool::new) and `build` wait for every worker to
///   start (an initializer's run included), and a
///   [`cancel`](AsyncResult::cancel) that stops a running task waits for
///   its killed worker to end (half a second at most).
///
/// ```
/// #[procpool::pool_task]
/// fn add(a: i32, b: i32) -> i32 { a + b }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = procpool::Pool::new(1)?;
///     let future = apply_async_add(&pool, 2, 3);
///     // Any executor; a minimal one here, to stay dependency-free.
///     let sum = block_on(future)?;
///     assert_eq!(sum, 5);
///     Ok(())
/// }
///
/// fn block_on<F: std::future::Future>(future: F) -> F::Output {
///     use std::sync::Arc;
///     use std::task::{Context, Poll, Wake};
///     struct Unpark(std::thread::Thread);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) { self.0.unpark() }
///     }
///     let waker = Arc::new(Unpark(std::thread::current())).into();
///     let mut cx = Context::from_waker(&waker);
///     let mut future = std::pin::pin!(future);
///     loop {
///         match future.as_mut().poll(&mut cx) {
///             Poll::Ready(out) => return out,
///             Poll::Pending => std::thread::park(),
///         }
///     }
/// }
/// ```
impl<T: DeserializeOwned + 'static> Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.cell.poll_outcome(cx.waker()) {
            // Not the last reader for sure: `(&mut result).await` leaves
            // the result to read again.
            Some(outcome) => Poll::Ready(Self::decode(&self.cell, &outcome)),
            None => Poll::Pending,
        }
    }
}
