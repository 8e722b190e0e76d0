//! `imap_<fn>` and `imap_unordered_<fn>`: lazy iterators over a map's
//! results, on one core ([`Feeder`]) that pulls the input a chunk at a time
//! with a bounded number of chunks in flight; they differ only in the order
//! they yield the chunks' results.

mod feeder;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::MapOptions;
use crate::error::Error;
use crate::result::CancelOutcome;
use crate::task::{EncodeItem, Task};
use crate::Pool;
use feeder::Feeder;

/// The iterator `imap_<fn>` returns: each item's result in input order, as
/// soon as it (and every item before it) is ready (Python's `imap`). `I` is
/// the input's iterator (the generated functions return an
/// `impl Iterator`): an `Imap` is `Send` whenever the input iterator and the
/// results are, so it can be handed to another thread. It holds a handle of
/// its pool (it borrows only its input, for `'a`): it may outlive the
/// caller's handle, be returned or moved to a thread of its own; the pool
/// closes and joins once the last handle is gone.
///
/// It pulls the input lazily, a chunk at a time, keeping at most two chunks
/// per worker in flight, so an endless input is fine. It reads the input on
/// the thread that iterates it (Python reads it on a thread of its own), a
/// chunk already back first. So nothing runs before its first `next()`
/// (or [`next_timeout`](Self::next_timeout)), where Python's `imap` starts
/// at once: to have the first chunks run while the caller does other work,
/// call `next_timeout(Duration::ZERO)` first (it queues chunks until the
/// window is full or a result is back, and returns [`Error::WaitTimeout`]
/// unless a result is ready), or use `map_async_<fn>`. Over a slow stream
/// each result comes once the next item is read. An input that waits for
/// this imap's own results (a feedback loop) therefore cannot be read: feed
/// one with `apply_async`. A panicking item
/// yields its own [`Error::Panic`]; the items around it are unaffected. If a
/// worker dies running a chunk, each item of that chunk yields
/// [`Error::WorkerDied`]. An `imap` begun before [`Pool::close`] runs to
/// its end, as in Python. Once the pool is terminated, or joined before the
/// iterator was read to its end, or the iterator is
/// [cancelled](Self::cancel), it yields that error ([`Error::Terminated`],
/// [`Error::PoolClosed`], [`Error::Cancelled`]) once in place of what is
/// left, and ends. If the input iterator panics at
/// item k, it yields the results of the k items before it, then that panic
/// resumes in `next()`, then it ends (Python raises the input's exception
/// at its position). Dropping the iterator stops the feeding; chunks
/// already queued still run (cancel them to stop them).
///
/// ```
/// use procpool::{pool_task, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     // An endless input, consumed partially.
///     let first: Result<Vec<u64>, _> = imap_square(&pool, 0..).take(5).collect();
///     assert_eq!(first?, [0, 1, 4, 9, 16]);
///     // Sent to another thread (the input, a range, is Send), which may
///     // outlive `pool`: the iterator holds a handle of its own.
///     let squares = imap_square(&pool, 0..10);
///     let total = std::thread::spawn(move || squares.map(|r| r.unwrap()).sum::<u64>());
///     drop(pool);
///     assert_eq!(total.join().unwrap(), 285);
///     Ok(())
/// }
/// ```
#[must_use = "an imap does nothing unless iterated"]
pub struct Imap<'a, R, I>(Feeder<R, I>, PhantomData<&'a ()>);

impl<R: DeserializeOwned + 'static, I: Iterator> Imap<'_, R, I> {
    pub(crate) fn new<M, It>(pool: &Pool, items: It, options: MapOptions) -> Self
    where
        M: Task<Output = R> + EncodeItem<I::Item>,
        It: IntoIterator<IntoIter = I>,
    {
        Imap(
            Feeder::new::<M, It>(pool, items, options, true),
            PhantomData,
        )
    }

    /// The next result, waiting at most `timeout` for it (Python's
    /// `next(timeout)`): [`Error::WaitTimeout`] if it was not ready by then.
    /// Nothing is lost: a later call (or [`next`](Iterator::next)) yields
    /// that result. `None` once the iterator has ended. The timeout bounds
    /// the wait for workers, not the reading of the input: an input
    /// iterator that blocks in its own `next()` holds this call as long.
    ///
    /// ```
    /// use std::time::Duration;
    /// use procpool::{pool_task, Error, Pool};
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let mut naps = imap_nap(&pool, [1500, 0]);
    ///     let early = naps.next_timeout(Duration::from_millis(10));
    ///     assert!(matches!(early, Some(Err(Error::WaitTimeout { .. }))));
    ///     assert_eq!(naps.next_timeout(Duration::from_secs(60)).unwrap()?, 1500); // not lost
    ///     assert_eq!(naps.next().unwrap()?, 0);
    ///     assert!(naps.next_timeout(Duration::from_millis(1)).is_none());
    ///     Ok(())
    /// }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, Error>> {
        self.0.next_timeout(timeout)
    }
}

impl<R, I: Iterator> Imap<'_, R, I> {
    /// Stops the map: no more input is read, and every chunk queued or
    /// running is cancelled as [`AsyncResult::cancel`](crate::AsyncResult::cancel) does (a running
    /// chunk's worker is killed and replaced). The iterator then yields the
    /// results of the chunks that had already finished ahead of the first
    /// one it stopped (a result is only ever yielded in its item's place),
    /// [`Error::Cancelled`] once in place of the rest (chunks or unread
    /// input), and ends (at once, if it had queued nothing yet). Returns
    /// [`Stopped`](CancelOutcome::Stopped) if a chunk was running,
    /// [`NotStarted`](CancelOutcome::NotStarted) if only queued chunks (or
    /// unread input) were dropped, [`Finished`](CancelOutcome::Finished) if
    /// nothing was left. Cancelling again changes nothing and answers what
    /// the first cancel did.
    ///
    /// ```
    /// use procpool::{pool_task, Error, MapOptions, Pool};
    ///
    /// #[pool_task]
    /// fn slow_square(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(x)); x * x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(2)?;
    ///     let naps = [0, 1, 60_000, 60_000].into_iter().cycle();
    ///     let mut results = imap_slow_square_with(&pool, naps, MapOptions::new().chunksize(1));
    ///     assert_eq!(results.next().unwrap()?, 0);
    ///     results.cancel(); // the endless input stops; the long naps are stopped
    ///     let rest: Vec<_> = results.collect();
    ///     assert!(matches!(rest.last(), Some(Err(Error::Cancelled { .. }))));
    ///     Ok(())
    /// }
    /// ```
    pub fn cancel(&mut self) -> CancelOutcome {
        self.0.cancel()
    }
}

impl<R: DeserializeOwned + 'static, I: Iterator> Iterator for Imap<'_, R, I> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // (Without a deadline it never times out.)
        self.0.next(None).unwrap_or(None)
    }
}

impl<R, I> fmt::Debug for Imap<'_, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("Imap", f)
    }
}

/// The iterator `imap_unordered_<fn>` returns: each item's result as soon as
/// its chunk is done, in completion order (Python's `imap_unordered`).
///
/// Input, chunking, errors, an input that panics (every result before it,
/// in completion order, then the panic), cancelling, dropping and `Send`
/// work as for [`Imap`]. Pair results with their inputs by returning the
/// input (or an index) from the task.
///
/// ```
/// use procpool::{pool_task, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> (u64, u64) { (x, x * x) }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     let mut all = imap_unordered_square(&pool, 0..100).collect::<Result<Vec<_>, _>>()?;
///     all.sort();
///     assert_eq!(all[7], (7, 49));
///     Ok(())
/// }
/// ```
#[must_use = "an imap_unordered does nothing unless iterated"]
pub struct ImapUnordered<'a, R, I>(Feeder<R, I>, PhantomData<&'a ()>);

impl<R: DeserializeOwned + 'static, I: Iterator> ImapUnordered<'_, R, I> {
    pub(crate) fn new<M, It>(pool: &Pool, items: It, options: MapOptions) -> Self
    where
        M: Task<Output = R> + EncodeItem<I::Item>,
        It: IntoIterator<IntoIter = I>,
    {
        ImapUnordered(
            Feeder::new::<M, It>(pool, items, options, false),
            PhantomData,
        )
    }

    /// The next result to finish, waiting at most `timeout` for it, as
    /// [`Imap::next_timeout`] does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use procpool::{pool_task, Error, Pool};
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let mut naps = imap_unordered_nap(&pool, [1500]);
    ///     let early = naps.next_timeout(Duration::from_millis(10));
    ///     assert!(matches!(early, Some(Err(Error::WaitTimeout { .. }))));
    ///     assert_eq!(naps.next_timeout(Duration::from_secs(60)).unwrap()?, 1500);
    ///     assert!(naps.next().is_none());
    ///     Ok(())
    /// }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, Error>> {
        self.0.next_timeout(timeout)
    }
}

impl<R, I: Iterator> ImapUnordered<'_, R, I> {
    /// Stops the map, as [`Imap::cancel`] does.
    ///
    /// ```
    /// use procpool::{pool_task, CancelOutcome, Pool};
    ///
    /// #[pool_task]
    /// fn square(x: u64) -> u64 { x * x }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let mut results = imap_unordered_square(&pool, 0..);
    ///     // Nothing was queued yet: the input is simply never read.
    ///     assert_eq!(results.cancel(), CancelOutcome::NotStarted);
    ///     assert!(results.next().is_none());
    ///     Ok(())
    /// }
    /// ```
    pub fn cancel(&mut self) -> CancelOutcome {
        self.0.cancel()
    }
}

impl<R: DeserializeOwned + 'static, I: Iterator> Iterator for ImapUnordered<'_, R, I> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // (Without a deadline it never times out.)
        self.0.next(None).unwrap_or(None)
    }
}

impl<R, I> fmt::Debug for ImapUnordered<'_, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("ImapUnordered", f)
    }
}
