//! `imap_<fn>` and `imap_unordered_<fn>`: lazy iterators over a map's
//! results, on one core ([`Feeder`]) that pulls the input a chunk at a time
//! with a bounded number of chunks in flight; they differ only in the order
//! they yield the chunks' results.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{chunk, MapOptions};
use crate::error::Error;
use crate::result::Outcome;
use crate::task::{Task, TaskInfo};
use crate::Pool;

/// Chunks in flight per worker: one running, one queued behind it, so a
/// worker never waits for the caller to send its next chunk.
const CHUNKS_PER_WORKER: usize = 2;

/// A panic's payload, as `catch_unwind` returns it.
type Payload = Box<dyn Any + Send>;

/// Cuts and queues the next chunk: its item count and result (`None` once
/// the input is exhausted), and the panic of the input's `next()` that
/// ended it, if one did.
type ChunkSource<'a> =
    Box<dyn FnMut(&Pool) -> (Option<(usize, crate::AsyncResult<()>)>, Option<Payload>) + 'a>;

/// The input, with a panic in its `next()` caught: the input ends there,
/// and the panic is kept to be resumed once the caller has had every result
/// before it (Python's imap raises the input's exception at its position).
struct Guarded<I> {
    items: I,
    panic: Option<Payload>,
}

impl<I: Iterator> Iterator for Guarded<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.panic.is_some() {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| self.items.next())) {
            Ok(item) => item,
            Err(payload) => {
                self.panic = Some(payload);
                None
            }
        }
    }
}

/// A chunk that came back: its number, its item count and its outcome.
type Done = (u64, usize, Arc<Outcome>);

/// Chunks that came back before an earlier one, by number.
type Early = BTreeMap<u64, (usize, Arc<Outcome>)>;

/// The core of both iterators: the input, cut into encoded chunks and
/// queued on demand, the chunks in flight, and the results ready to yield.
struct Feeder<'a, R> {
    pool: &'a Pool,
    task: &'static TaskInfo,
    source: Option<ChunkSource<'a>>,
    window: usize,
    /// A setup error to yield once, before ending.
    error: Option<Error>,
    /// Whether a chunk came back refused by a closed or terminated pool.
    stopped: bool,
    /// The input's panic, resumed once every result before it was yielded.
    panic: Option<Payload>,
    /// Chunks queued and not yet settled.
    in_flight: usize,
    /// The number the next chunk queued gets.
    submitted: u64,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// In input order: the number of the next chunk to settle, and the
    /// chunks that came back before it. `None`: completion order.
    ordered: Option<(u64, Early)>,
    ready: VecDeque<Result<R, Error>>,
}

impl<'a, R: DeserializeOwned> Feeder<'a, R> {
    fn new<M: Task>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
        ordered: bool,
    ) -> Self {
        let task = &M::INFO;
        let items = items.into_iter();
        let len = super::exact_len(&items);
        let mut items = Guarded { items, panic: None };
        let (done_tx, done_rx) = mpsc::channel();
        let mut feeder = Feeder {
            pool,
            task,
            source: None,
            window: CHUNKS_PER_WORKER * pool.processes().max(1),
            error: None,
            stopped: false,
            panic: None,
            in_flight: 0,
            submitted: 0,
            done_tx,
            done_rx,
            ordered: ordered.then(|| (0, BTreeMap::new())),
            ready: VecDeque::new(),
        };
        match options.resolve_imap(task.name, len, pool.processes()) {
            Ok(size) => {
                let max_bytes =
                    super::chunk_bytes(pool.max_frame()).min(MapOptions::IMAP_MAX_CHUNK_BYTES);
                feeder.source = Some(Box::new(move |pool| {
                    let chunk = chunk::next_chunk::<M>(&mut items, size, max_bytes)
                        .map(|(bytes, n)| (n, super::submit_chunk::<M>(pool, bytes)));
                    (chunk, items.panic.take())
                }))
            }
            Err(e) => feeder.error = Some(e),
        }
        feeder
    }

    /// Queues chunks until the window is full or the input is exhausted.
    fn fill(&mut self) {
        while self.in_flight < self.window {
            let Some(source) = self.source.as_mut() else {
                return;
            };
            let (chunk, panic) = source(self.pool);
            if panic.is_some() {
                // The input panicked: it ends there (after the chunk of the
                // items before it, if any).
                self.panic = panic;
                self.source = None;
            }
            let Some((sent, chunk)) = chunk else {
                // Drop the input as soon as it is exhausted.
                self.source = None;
                return;
            };
            let number = self.submitted;
            self.submitted += 1;
            self.in_flight += 1;
            let done = self.done_tx.clone();
            // Every chunk's promise is kept or failed, so this always sends,
            // and the receive in `next` always ends.
            chunk.listen_outcome(Box::new(move |outcome| {
                let _ = done.send((number, sent, outcome));
            }));
        }
    }

    /// The next chunk to settle: in input order or in completion order.
    fn next_done(&mut self) -> Option<(usize, Arc<Outcome>)> {
        loop {
            if let Some((next, early)) = &mut self.ordered {
                if let Some(done) = early.remove(next) {
                    *next += 1;
                    return Some(done);
                }
            }
            let (number, sent, outcome) = self.done_rx.recv().ok()?;
            match &mut self.ordered {
                Some((next, early)) if number != *next => {
                    early.insert(number, (sent, outcome));
                }
                Some((next, _)) => {
                    *next += 1;
                    return Some((sent, outcome));
                }
                None => return Some((sent, outcome)),
            }
        }
    }

    /// Adds a chunk's results to `ready`. A chunk refused because the pool
    /// was closed or terminated stops the feeding (an endless input is not
    /// pulled for ever): the first one yields that error once, later ones
    /// nothing.
    fn settle(&mut self, outcome: &Outcome, sent: usize) {
        if let Err(e @ (Error::PoolClosed { .. } | Error::Terminated { .. })) = outcome {
            self.source = None;
            if !self.stopped {
                self.stopped = true;
                self.ready.push_back(Err(e.clone()));
            }
            return;
        }
        chunk::decode_chunk(self.task.name, outcome, sent, &mut self.ready);
    }

    fn next(&mut self) -> Option<Result<R, Error>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if let Some(error) = self.error.take() {
                return Some(Err(error));
            }
            self.fill();
            if self.in_flight == 0 {
                if let Some(panic) = self.panic.take() {
                    resume_unwind(panic);
                }
                return None;
            }
            let (sent, outcome) = self.next_done()?;
            self.in_flight -= 1;
            self.settle(&outcome, sent);
        }
    }
}

impl<R> Feeder<'_, R> {
    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("task", &self.task.name)
            .field("chunks_in_flight", &self.in_flight)
            .finish()
    }
}

/// The iterator `imap_<fn>` returns: each item's result in input order, as
/// soon as it (and every item before it) is ready (Python's `imap`).
///
/// It pulls the input lazily, a chunk at a time, keeping at most two chunks
/// per worker in flight, so an endless input is fine. A panicking item
/// yields its own [`Error::Panic`]; the items around it are unaffected. If a
/// worker dies running a chunk, each item of that chunk yields
/// [`Error::WorkerDied`]. Once the pool is closed or terminated, it yields
/// that error ([`Error::PoolClosed`] or [`Error::Terminated`]) once and
/// ends, whatever is left of the input. If the input iterator panics at
/// item k, it yields the results of the k items before it, then that panic
/// resumes in `next()`, then it ends (Python raises the input's exception
/// at its position). Dropping the iterator stops the feeding; chunks already
/// queued still run.
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
///     Ok(())
/// }
/// ```
#[must_use = "an imap does nothing unless iterated"]
pub struct Imap<'a, R>(Feeder<'a, R>);

impl<'a, R: DeserializeOwned> Imap<'a, R> {
    pub(crate) fn new<M: Task<Output = R>>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
    ) -> Self {
        Imap(Feeder::new::<M>(pool, items, options, true))
    }
}

impl<R: DeserializeOwned> Iterator for Imap<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl<R> fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("Imap", f)
    }
}

/// The iterator `imap_unordered_<fn>` returns: each item's result as soon as
/// its chunk is done, in completion order (Python's `imap_unordered`).
///
/// Input, chunking, errors, an input that panics (every result before it,
/// in completion order, then the panic) and dropping work as for [`Imap`].
/// Pair results
/// with their inputs by returning the input (or an index) from the task.
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
pub struct ImapUnordered<'a, R>(Feeder<'a, R>);

impl<'a, R: DeserializeOwned> ImapUnordered<'a, R> {
    pub(crate) fn new<M: Task<Output = R>>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
    ) -> Self {
        ImapUnordered(Feeder::new::<M>(pool, items, options, false))
    }
}

impl<R: DeserializeOwned> Iterator for ImapUnordered<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl<R> fmt::Debug for ImapUnordered<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug("ImapUnordered", f)
    }
}
