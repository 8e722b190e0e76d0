//! [`CancelOutcome`], what cancelling a task did, and how an `AsyncResult`
//! reaches the dispatcher that can cancel its call ([`CancelFn`]).

use std::sync::Arc;

/// Asks the dispatcher that runs a call to cancel it, by the call's id
/// (see `Dispatcher::cancel`).
pub(crate) type CancelFn = Arc<dyn Fn(u64) -> CancelOutcome + Send + Sync>;

/// What [`AsyncResult::cancel`](crate::AsyncResult::cancel) did.
///
/// ```
/// use std::time::Duration;
/// use procpool::{pool_task, CancelOutcome, Error, Pool};
///
/// #[pool_task]
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(1)?;
///     let running = apply_async_nap(&pool, 60_000);
///     let queued = apply_async_nap(&pool, 1);
///     assert_eq!(queued.cancel(), CancelOutcome::NotStarted);
///     std::thread::sleep(Duration::from_millis(200)); // let it start
///     // Stopped: its worker is killed and replaced.
///     assert_ne!(running.cancel(), CancelOutcome::Finished);
///     assert!(matches!(running.get(), Err(Error::Cancelled { .. })));
///     assert!(matches!(queued.get(), Err(Error::Cancelled { .. })));
///     let done = apply_async_nap(&pool, 1);
///     done.wait();
///     assert_eq!(done.cancel(), CancelOutcome::Finished);
///     assert_eq!(done.get()?, 1); // a finished result is kept
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// It was still queued (or held, unsent, by a pool slot starting the
    /// worker it waits for, alone or in a batch): it never ran and never
    /// will; its result is
    /// [`Error::Cancelled`](crate::Error::Cancelled). For a `map_async`
    /// result or an `imap`, no chunk was running and some were still
    /// queued: chunks that had already finished did run (a `map_async`'s
    /// result is `Cancelled` all the same), so `NotStarted` does not say
    /// that none of its items ran.
    NotStarted,
    /// It had been handed to a worker (it was running, or pipelined behind
    /// the call that was): that worker is killed and replaced, and its result
    /// becomes [`Error::Cancelled`](crate::Error::Cancelled) as the cancel
    /// returns (a worker killed has ended by then, in a pool of this
    /// process's own workers). If its result was settled in
    /// that very instant, before the cancel's, it is kept instead: its
    /// value, or, if a time limit, its worker's death, a worker that did
    /// not start it in time or a [`Pool::terminate`](crate::Pool::terminate)
    /// ended it, that one's (`Timeout`, `WorkerDied`, `Protocol`,
    /// `Terminated`). Through Redis, its node is told to kill that
    /// worker: a node that cannot act at once (stopped with `SIGSTOP`, cut
    /// off from Redis) kills it when it can, so the call may have run to
    /// its end meanwhile; its result is `Cancelled` all the same.
    Stopped,
    /// It had already finished (successfully or not) before any cancel:
    /// nothing changed and its result is kept. (A second cancel answers
    /// what the first did.)
    Finished,
}

impl CancelOutcome {
    /// The outcome of cancelling several parts at once (a map's chunks):
    /// `Stopped` if any part was stopped, else `NotStarted` if any part had
    /// not started, else `Finished`.
    pub(crate) fn combine(parts: impl IntoIterator<Item = CancelOutcome>) -> CancelOutcome {
        let mut all = CancelOutcome::Finished;
        for part in parts {
            all = match (all, part) {
                (CancelOutcome::Stopped, _) | (_, CancelOutcome::Stopped) => CancelOutcome::Stopped,
                (CancelOutcome::NotStarted, _) | (_, CancelOutcome::NotStarted) => {
                    CancelOutcome::NotStarted
                }
                _ => CancelOutcome::Finished,
            };
        }
        all
    }
}
