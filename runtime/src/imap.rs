//! `imap_<fn>` and `imap_unordered_<fn>`: lazy iterators over a map's
//! results, pulling the input a chunk at a time with a bounded number of
//! chunks in flight.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::__private::{MapTask, TaskInfo};
use crate::error::Error;
use crate::map::{self, MapOptions};
use crate::result::{AsyncResult, Outcome};
use crate::Pool;

/// Chunks in flight per worker: one running, one queued behind it, so a
/// worker never waits for the caller to send its next chunk.
const CHUNKS_PER_WORKER: usize = 2;

type ChunkSource<'a> = Box<dyn FnMut() -> Option<(Result<Vec<u8>, String>, usize)> + 'a>;

/// What both iterators share: the input, cut into encoded chunks on demand,
/// and the pool they go to.
struct Feeder<'a> {
    pool: &'a Pool,
    task: &'static TaskInfo,
    source: Option<ChunkSource<'a>>,
    window: usize,
    /// A setup error to yield once, before ending.
    error: Option<Error>,
    /// Whether a chunk came back refused by a closed or terminated pool.
    stopped: bool,
}

impl<'a> Feeder<'a> {
    fn new<M: MapTask>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
    ) -> Self {
        let task = &M::INFO;
        let mut items = items.into_iter();
        let len = map::exact_len(&items);
        let mut feeder = Feeder {
            pool,
            task,
            source: None,
            window: CHUNKS_PER_WORKER * pool.processes().max(1),
            error: None,
            stopped: false,
        };
        match options.resolve_imap(task.name, len, pool.processes()) {
            Ok(size) => {
                let max_bytes = map::chunk_bytes(pool).min(MapOptions::IMAP_MAX_CHUNK_BYTES);
                feeder.source = Some(Box::new(move || {
                    map::next_chunk::<M>(&mut items, size, max_bytes)
                }))
            }
            Err(e) => feeder.error = Some(e),
        }
        feeder
    }

    /// Encodes and queues the next chunk, if the input has one.
    fn submit_next(&mut self) -> Option<(AsyncResult<()>, usize)> {
        let source = self.source.as_mut()?;
        match source() {
            Some((bytes, n)) => Some((map::submit_chunk(self.pool, self.task, bytes), n)),
            None => {
                // Drop the input as soon as it is exhausted.
                self.source = None;
                None
            }
        }
    }
}

impl Feeder<'_> {
    /// Adds a chunk's results to `ready`. A chunk refused because the pool
    /// was closed or terminated stops the feeding (an endless input is not
    /// pulled for ever): the first one yields that error once, later ones
    /// nothing.
    fn settle<R: DeserializeOwned>(
        &mut self,
        outcome: &Outcome,
        sent: usize,
        ready: &mut VecDeque<Result<R, Error>>,
    ) {
        if let Err(e @ (Error::PoolClosed { .. } | Error::Terminated { .. })) = outcome {
            self.source = None;
            if !self.stopped {
                self.stopped = true;
                ready.push_back(Err(e.clone()));
            }
            return;
        }
        map::decode_chunk(self.task.name, outcome, sent, ready);
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
/// ends, whatever is left of the input. Dropping the iterator stops the
/// feeding; chunks already queued still run.
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
pub struct Imap<'a, R> {
    feeder: Feeder<'a>,
    in_flight: VecDeque<(AsyncResult<()>, usize)>,
    ready: VecDeque<Result<R, Error>>,
}

impl<'a, R> Imap<'a, R> {
    #[doc(hidden)]
    pub fn new<M: MapTask<Output = R>>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
    ) -> Self {
        Imap {
            feeder: Feeder::new::<M>(pool, items, options),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }
}

impl<R: DeserializeOwned> Iterator for Imap<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if let Some(error) = self.feeder.error.take() {
                return Some(Err(error));
            }
            while self.in_flight.len() < self.feeder.window {
                match self.feeder.submit_next() {
                    Some(chunk) => self.in_flight.push_back(chunk),
                    None => break,
                }
            }
            let (chunk, sent) = self.in_flight.pop_front()?;
            let outcome = chunk.wait_outcome();
            self.feeder.settle(&outcome, sent, &mut self.ready);
        }
    }
}

impl<R> fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("task", &self.feeder.task.name)
            .field("chunks_in_flight", &self.in_flight.len())
            .finish()
    }
}

/// The iterator `imap_unordered_<fn>` returns: each item's result as soon as
/// its chunk is done, in completion order (Python's `imap_unordered`).
///
/// Input, chunking, errors and dropping work as for [`Imap`]. Pair results
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
pub struct ImapUnordered<'a, R> {
    feeder: Feeder<'a>,
    in_flight: usize,
    done_tx: mpsc::Sender<(usize, Arc<Outcome>)>,
    done_rx: mpsc::Receiver<(usize, Arc<Outcome>)>,
    ready: VecDeque<Result<R, Error>>,
}

impl<'a, R> ImapUnordered<'a, R> {
    #[doc(hidden)]
    pub fn new<M: MapTask<Output = R>>(
        pool: &'a Pool,
        items: impl IntoIterator<Item = M::Item, IntoIter: 'a>,
        options: MapOptions,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        ImapUnordered {
            feeder: Feeder::new::<M>(pool, items, options),
            in_flight: 0,
            done_tx,
            done_rx,
            ready: VecDeque::new(),
        }
    }
}

impl<R: DeserializeOwned> Iterator for ImapUnordered<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if let Some(error) = self.feeder.error.take() {
                return Some(Err(error));
            }
            while self.in_flight < self.feeder.window {
                let Some((chunk, sent)) = self.feeder.submit_next() else {
                    break;
                };
                let done = self.done_tx.clone();
                // Every chunk's promise is kept or failed, so this always
                // sends, and the receive below always ends.
                chunk.listen_outcome(Box::new(move |outcome| {
                    let _ = done.send((sent, outcome));
                }));
                self.in_flight += 1;
            }
            if self.in_flight == 0 {
                return None;
            }
            let (sent, outcome) = self.done_rx.recv().ok()?;
            self.in_flight -= 1;
            self.feeder.settle(&outcome, sent, &mut self.ready);
        }
    }
}

impl<R> fmt::Debug for ImapUnordered<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("task", &self.feeder.task.name)
            .field("chunks_in_flight", &self.in_flight)
            .finish()
    }
}
