//! [`CancelHandle`]: cancels an [`AsyncResult`](crate::AsyncResult)'s task
//! from elsewhere, while the result itself is awaited or waited on.

use std::fmt;
use std::sync::Weak;

use super::cell::ResultCell;
use crate::cancel::CancelOutcome;

/// Cancels the task of an [`AsyncResult`](crate::AsyncResult) from another
/// thread or async task while the result's owner awaits (or `get`s) it: an
/// `AsyncResult` is not shared, and aborting the async task that awaits it
/// only drops it, which does not cancel. Made by
/// [`AsyncResult::cancel_handle`](crate::AsyncResult::cancel_handle);
/// [`cancel`](Self::cancel) does exactly what the result's own
/// [`cancel`](crate::AsyncResult::cancel) does, and the awaiting task wakes
/// with [`Error::Cancelled`](crate::Error::Cancelled). Cheap to clone,
/// `Send` and `Sync`; it does not keep the result's value alive.
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
///     let waiter = std::thread::spawn(move || r.get()); // or a task awaiting `r`
///     assert_eq!(handle.cancel(), CancelOutcome::NotStarted);
///     assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled { .. })));
///     // `r` consumed, its task settled: nothing left to cancel.
///     assert_eq!(handle.cancel(), CancelOutcome::Finished);
///     busy.get()?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    pub(super) cell: Weak<ResultCell>,
}

impl CancelHandle {
    /// Cancels the task, as [`AsyncResult::cancel`](crate::AsyncResult::cancel)
    /// (see there for what each [`CancelOutcome`] means); while the result
    /// is alive, cancelling again answers what the first cancel did. Once
    /// the result is gone (consumed by `get` or `.await`, or dropped) and
    /// its task settled, there is nothing left to cancel:
    /// [`Finished`](CancelOutcome::Finished), whatever a cancel before
    /// answered. Returns without waiting for the task or the result's
    /// callbacks (a running task it stops: once its killed worker has
    /// ended, a moment, half a second at most), but on the calling thread:
    /// in a pool built on Redis it tells Redis, which while Redis
    /// is unreachable takes up to a few `broker_retry`s, so async code
    /// that must not hold its executor's thread that long calls it through
    /// `spawn_blocking`.
    ///
    /// ```
    /// # use procpool::{pool_task, CancelOutcome, Pool};
    /// #[pool_task]
    /// fn one() -> u8 { 1 }
    ///
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = Pool::new(1)?;
    /// let r = apply_async_one(&pool);
    /// let handle = r.cancel_handle();
    /// assert_eq!(r.get()?, 1);
    /// assert_eq!(handle.cancel(), CancelOutcome::Finished); // nothing left to cancel
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self) -> CancelOutcome {
        match self.cell.upgrade() {
            Some(cell) => cell.cancel(),
            None => CancelOutcome::Finished,
        }
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.cell.upgrade().map(|cell| cell.task.to_string());
        f.debug_struct("CancelHandle").field("task", &task).finish()
    }
}
