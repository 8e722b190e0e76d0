//! [`Pool`], the handle users hold, and what runs behind it: the
//! [`Dispatcher`](dispatcher::Dispatcher) seam, the local dispatcher (queue,
//! slots, pipelining, the exchange with a worker, the initializer) and the
//! builder with its validated configuration.

mod builder;
mod by_name;
mod closing;
pub(crate) mod config;
pub(crate) mod dispatcher;
mod exchange;
mod in_flight;
mod inbox;
mod initializer;
mod local;
mod pipeline;
mod queue;
mod remote;
mod retire;
mod slot;
mod submit;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub use builder::PoolBuilder;
pub(crate) use closing::Lazy;
pub(crate) use pipeline::treat_calls_as_quick;
#[cfg(feature = "redis")]
pub(crate) use remote::DEFAULT_QUEUE;
#[cfg(feature = "redis")]
pub(crate) use remote::NODE_TTL;
pub(crate) use retire::RETIRED;
pub(crate) use submit::Admission;

use crate::error::Error;
use crate::result::Hub;
use crate::result::{CancelFn, CancelOutcome};
use closing::Closing;
use config::Config;
use dispatcher::Dispatcher;

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Tasks are `#[pool_task]` functions, submitted with the generated
/// `apply_<fn>` (blocking) and `apply_async_<fn>` (returns an
/// [`AsyncResult`](crate::AsyncResult)). They queue in order and each goes
/// to whichever worker is free first. A blocking call that finds the queue
/// empty and a worker idle runs on that worker straight from the calling
/// thread; many small queued tasks go to busy workers in batches (see the
/// crate's "Speed" notes).
///
/// A `Pool` is a cheap handle: clone it to share the pool between threads
/// or components ([`with_task_timeout`](Self::with_task_timeout) makes a
/// handle with another time limit). All handles act on the same workers and
/// queue; `close`, `join` and `terminate` on any of them act on the whole
/// pool. Dropping the last handle closes the pool and waits for the work
/// already queued, like [`close`](Self::close) then [`join`](Self::join)
/// (Python's `with Pool()` block ends in `terminate()` instead, losing
/// unfinished tasks: call [`terminate`](Self::terminate) last for that),
/// unless a panic drops it (a failing test, a panicking `main`): it is then
/// [terminated](Self::terminate), as Python's `with Pool()` is. (A pool
/// made while a panic unwinds, by a destructor, is not dropped by that
/// panic, nor is one whose last handle a callback's panic drops, which is
/// caught and logged: their drop joins.)
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
///     assert_eq!(apply_square(&pool, 4)?, 16);
///     let pending: Vec<_> = (0..4).map(|x| apply_async_square(&pool, x)).collect();
///     let squares: Result<Vec<u64>, _> = pending.into_iter().map(|r| r.get()).collect();
///     assert_eq!(squares?, [0, 1, 4, 9]);
///
///     let shared = pool.clone(); // the same pool, from another thread
///     let t = std::thread::spawn(move || apply_square(&shared, 5));
///     assert_eq!(t.join().unwrap()?, 25);
///     pool.close();
///     pool.join();
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
    /// This handle's time limit, if it overrides the pool's.
    timeout: Option<Option<Duration>>,
}

/// What every handle of one pool shares; dropping it closes and joins (or,
/// dropped by a panic, terminates).
struct Inner {
    /// Never dropped in a copy of this process made by `fork` (see
    /// [`Pool::in_copy`]): there its threads are missing and its workers
    /// are the parent's, so dropping it would wait for ever or kill them.
    dispatcher: Arc<dyn Dispatcher>,
    config: Arc<Config>,
    /// The callback thread and the canceller, shared with every
    /// `AsyncResult` (which refers to the dispatcher weakly: a result
    /// outliving its pool does not keep the pool alive, and by then its
    /// call is settled).
    hub: Hub,
    next_id: AtomicU64,
    /// Whether `close` was called, and the maps that keep the dispatcher
    /// open meanwhile.
    closing: Closing,
    /// Whether the thread that made the pool was unwinding a panic then (a
    /// destructor's cleanup): that panic does not drop the pool, whose drop
    /// at the end of that destructor's own scope joins.
    made_while_panicking: bool,
}

impl Inner {
    /// `join` (see [`Pool::join`]).
    fn join(&self) {
        self.closing.close_and_wait_for_maps();
        self.dispatcher.join();
        self.hub.runner().flush();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.hub.in_copy() {
            // A copy made by `fork`: the dispatcher is left alone (leaked:
            // the reference forgotten here keeps it from being dropped).
            std::mem::forget(Arc::clone(&self.dispatcher));
            return;
        }
        // (Not on a callback thread: a callback's panic is caught and
        // logged there, and the pool carries on; its last handle, dropped
        // by that panic, closes and joins as any callback's drop does.)
        if std::thread::panicking()
            && !self.made_while_panicking
            && !crate::callbacks::on_callback_thread()
        {
            // Dropped by a panic (a failing test, a panicking `main`): its
            // thread can no longer read a result, so stop now, as Python's
            // `with Pool()` does on an exception, rather than wait for
            // every task (for ever, if one never ends).
            log::warn!(
                target: "procpool",
                "a pool dropped by a panic is terminated: its running tasks are stopped and its pending results fail with Terminated"
            );
            let _ = self.closing.close();
            self.dispatcher.terminate();
            self.hub.runner().flush();
            return;
        }
        self.join();
    }
}

impl Pool {
    /// A pool of `processes` workers; short for
    /// `Pool::builder().processes(processes).build()`.
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok(()) }
    /// ```
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A [`PoolBuilder`] with default settings.
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::builder().processes(1).build()?;
    /// assert_eq!(pool.processes(), 1);
    /// # Ok(()) }
    /// ```
    #[must_use = "a builder does nothing until `build`"]
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn from_dispatcher(dispatcher: Arc<dyn Dispatcher>, config: Arc<Config>) -> Pool {
        let weak = Arc::downgrade(&dispatcher);
        let canceller: CancelFn = Arc::new(move |id| match weak.upgrade() {
            Some(dispatcher) => dispatcher.cancel(id),
            None => CancelOutcome::Finished,
        });
        Pool {
            inner: Arc::new(Inner {
                dispatcher,
                config,
                hub: Hub::new(canceller),
                next_id: AtomicU64::new(1),
                closing: Closing::default(),
                made_while_panicking: std::thread::panicking(),
            }),
            timeout: None,
        }
    }

    /// Number of worker processes (for a pool built with
    /// `PoolBuilder::redis`: of the nodes serving its queue now, at least 1).
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// assert_eq!(procpool::Pool::new(3)?.processes(), 3);
    /// # Ok(()) }
    /// ```
    pub fn processes(&self) -> usize {
        self.inner
            .dispatcher
            .processes()
            .unwrap_or(self.inner.config.processes)
    }

    /// Another handle to this pool (same workers, same queue) whose tasks
    /// have the time limit `limit` instead of the pool-wide one (`None`: no
    /// limit). Pass it to the generated functions like the pool itself:
    /// `apply_f(&pool.with_task_timeout(Some(d)), x)`. A task past its limit
    /// fails with [`Error::Timeout`] and its worker is killed and replaced
    /// (with `Some(Duration::ZERO)`, every call fails so at once, unsent).
    ///
    /// The handles share one life cycle: `close`, `join` and `terminate` on
    /// any of them act on the whole pool, and the pool is closed and joined
    /// when the last handle is dropped.
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
    ///     let impatient = pool.with_task_timeout(Some(Duration::from_millis(100)));
    ///     assert!(matches!(apply_nap(&impatient, 10_000), Err(Error::Timeout { .. })));
    ///     assert_eq!(apply_nap(&pool, 1)?, 1); // a new worker took over
    ///     Ok(())
    /// }
    /// ```
    #[must_use = "the handle with the new time limit is returned; the pool itself is unchanged"]
    pub fn with_task_timeout(&self, limit: Option<Duration>) -> Pool {
        Pool {
            inner: self.inner.clone(),
            timeout: Some(limit),
        }
    }

    /// The time limit of calls made through this handle.
    fn task_timeout(&self) -> Option<Duration> {
        self.timeout.unwrap_or(self.inner.config.task_timeout)
    }

    /// Whether this process is not the one that made the pool but a copy
    /// of it made by `fork` (its hub knows: see [`Hub::in_copy`]). There
    /// every call fails at once ([`Pool::foreign`]) and `close`, `join`,
    /// `terminate` and the drop do nothing.
    pub(crate) fn in_copy(&self) -> bool {
        self.inner.hub.in_copy()
    }

    /// `Err` naming `task` in a copy made by `fork` (see [`Hub::foreign`]).
    pub(crate) fn foreign(&self, task: &str) -> Result<(), Error> {
        self.inner.hub.foreign(task).map_or(Ok(()), Err)
    }

    /// The largest frame the pool sends or accepts.
    pub(crate) fn max_frame(&self) -> usize {
        self.inner.config.max_frame
    }

    /// The pool's callback thread, for results made outside [`Pool::submit`].
    pub(crate) fn hub(&self) -> Hub {
        self.inner.hub.clone()
    }

    /// Accepts no more tasks (Python's `close()`). Queued tasks still run,
    /// and so does all of a `map` or `imap` begun before (as in Python,
    /// where a map's tasks are all queued at once: procpool's queue a map's
    /// chunks as it goes); new calls and maps fail with
    /// [`Error::PoolClosed`].
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn one() -> u8 { 1 }
    ///
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(1)?;
    /// let queued = apply_async_one(&pool);
    /// pool.close();
    /// assert!(matches!(apply_one(&pool), Err(procpool::Error::PoolClosed { .. })));
    /// assert_eq!(queued.get()?, 1); // queued before close: still runs
    /// # Ok(()) }
    /// ```
    pub fn close(&self) {
        if self.in_copy() {
            return;
        }
        // A map begun before runs to its end (see `closing`): the last one
        // closes the dispatcher then.
        if self.inner.closing.close() {
            self.inner.dispatcher.close();
        }
    }

    /// Closes the pool and cancels every task still queued, letting the
    /// running ones finish (Python's `executor.shutdown(cancel_futures=True)`,
    /// without the wait: [`join`](Self::join) waits). Each cancelled task's
    /// result is [`Error::Cancelled`]; returns how many were cancelled (a
    /// map's chunk counts as one). The tasks running finish; those that had
    /// not started are cancelled wherever they wait: in the queue,
    /// pipelined to a busy worker behind the task it runs (that worker is
    /// then stopped once its running task has returned, so it starts none of
    /// them, and they settle as cancelled then), or held by a pool thread
    /// while it starts the worker that replaces a dead or retired one (that
    /// worker is kept, and the task settles as cancelled once it is up).
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use std::time::Duration;
    /// use procpool::{pool_task, Error, Pool};
    ///
    /// /// Creates `flag`, then runs until it is removed (a minute at most).
    /// #[pool_task]
    /// fn hold(flag: PathBuf) -> u64 {
    ///     std::fs::write(&flag, "").unwrap();
    ///     for _ in 0..60_000 {
    ///         if !flag.exists() { break; }
    ///         std::thread::sleep(Duration::from_millis(1));
    ///     }
    ///     1
    /// }
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let flag = std::env::temp_dir().join(format!("hold-{}", std::process::id()));
    ///     let running = apply_async_hold(&pool, flag.clone());
    ///     // Once it runs, only the calls after it are still queued.
    ///     while !flag.exists() { std::thread::sleep(Duration::from_millis(1)); }
    ///     let queued: Vec<_> = (0..5).map(|_| apply_async_nap(&pool, 1)).collect();
    ///     assert_eq!(pool.close_and_cancel(), 5);
    ///     std::fs::remove_file(&flag).unwrap(); // now the running task ends
    ///     pool.join();
    ///     assert_eq!(running.get()?, 1); // let finish
    ///     for r in queued {
    ///         assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn close_and_cancel(&self) -> usize {
        if self.in_copy() {
            return 0;
        }
        // Maps under way queue nothing more either.
        let _ = self.inner.closing.close();
        self.inner.dispatcher.close();
        let cancelled = self.inner.dispatcher.cancel_queued();
        log::debug!(target: "procpool", "close_and_cancel: {cancelled} queued tasks cancelled");
        cancelled
    }

    /// Waits until every queued task has run, every worker has exited and
    /// every callback has run (Python's `join()`). Closes the pool first, so
    /// it cannot wait forever for tasks that will never come. It waits for
    /// every `map` under way on other threads to end (not for one whose own
    /// input iterator calls `join`: what that map had not queued yet fails
    /// with [`Error::PoolClosed`]); an `imap` not read to
    /// its end by then yields the results of the chunks it had queued, then
    /// [`Error::PoolClosed`] (it reads its input only as it is read itself,
    /// so `join` cannot wait for it).
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(1)?;
    /// pool.close();
    /// pool.join();
    /// # Ok(()) }
    /// ```
    pub fn join(&self) {
        if self.in_copy() {
            return;
        }
        self.inner.join();
    }

    /// Stops now (Python's `terminate()`): workers are killed, and every task
    /// not finished fails with [`Error::Terminated`] (one cancelled before,
    /// by [`AsyncResult::cancel`](crate::AsyncResult::cancel) or
    /// [`close_and_cancel`](Self::close_and_cancel), stays
    /// [`Error::Cancelled`], as they answered). Returns once every
    /// worker is reaped and the pool's callbacks have run, those of the
    /// tasks it failed too: a callback running at that moment (a slow one)
    /// is waited for, as Python's `terminate()` waits for its result
    /// handler. (Called from a callback, it does not wait for that one.)
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    ///
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(1)?;
    /// let long = apply_async_nap(&pool, 60_000);
    /// pool.terminate();
    /// assert!(matches!(long.get(), Err(procpool::Error::Terminated { .. })));
    /// # Ok(()) }
    /// ```
    pub fn terminate(&self) {
        if self.in_copy() {
            return;
        }
        let _ = self.inner.closing.close();
        self.inner.dispatcher.terminate();
        self.inner.hub.runner().flush();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.inner.dispatcher.status();
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("queued", &status.queued)
            .field(
                "closed",
                &(status.closed || self.inner.closing.is_closing()),
            )
            .field("terminated", &status.terminated)
            .field("task_timeout", &self.task_timeout())
            .finish()
    }
}
