//! The core of both imap iterators (`Feeder`): the input, read a chunk at
//! a time and queued on demand within a window of chunks in flight, and
//! the chunks' results, settled in input or completion order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::chunk;
use crate::error::Error;
use crate::map::{MapOptions, CHUNKS_PER_WORKER};
use crate::pool::{Admission, Lazy};
use crate::result::{CancelOutcome, CancelTarget, Outcome};
use crate::task::{EncodeItem, Task, TaskInfo};
use crate::unwind::Payload;
use crate::Pool;

/// Cuts the next chunk from the input (`chunk::next_chunk` for the task):
/// a plain function pointer, so the iterators are `Send` whenever their
/// input is.
type NextChunk<I> = fn(&mut Guarded<I>, usize, usize, &mut Vec<u8>) -> Option<(Vec<u8>, usize)>;

/// The input, with a panic in its `next()` caught: the input ends there,
/// and the panic is kept to be resumed once the caller has had every result
/// before it (Python's imap raises the input's exception at its position).
struct Guarded<I> {
    items: I,
    panic: Option<Payload>,
}

impl<I: Iterator> Iterator for Guarded<I> {
    type Item = I::Item;

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.panic {
            Some(_) => (0, Some(0)),
            None => self.items.size_hint(),
        }
    }

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

/// How long [`Feeder::next_done`] waits for a chunk.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all: only a chunk already back.
    No,
    /// Until the deadline (`None`: for as long as it takes).
    Until(Option<Instant>),
}

/// A chunk that came back: its number, its item count and its outcome.
type Done = (u64, usize, Arc<Outcome>);

/// Chunks that came back before an earlier one, by number.
type Early = BTreeMap<u64, (usize, Arc<Outcome>)>;

/// The core of both iterators: the input, cut into encoded chunks and
/// queued on demand, the chunks in flight, and the results ready to yield.
pub(super) struct Feeder<R, I> {
    /// A handle of the pool: the iterator may outlive the caller's.
    pool: Pool,
    /// Leave to queue chunks after `close` (see `Pool::admit`), held while
    /// the input is read.
    admission: Option<Admission>,
    task: &'static TaskInfo,
    /// The input, until it is exhausted or the feeding stops.
    items: Option<Guarded<I>>,
    next_chunk: NextChunk<I>,
    /// An item read and encoded that begins the next chunk (see
    /// `chunk::next_chunk`).
    carry: Vec<u8>,
    /// Items per chunk, and encoded bytes per chunk at most.
    size: usize,
    /// The items of the next chunk while the default size ramps up (then
    /// `usize::MAX`): the first chunks hold 1, 2, 4, ... items, so that
    /// the first results of slow items come back after one item's time,
    /// as with Python's `imap` (chunksize 1), while fast items soon travel
    /// in chunks of `size`.
    ramp: usize,
    max_bytes: usize,
    window: usize,
    /// A setup error to yield once, before ending.
    error: Option<Error>,
    /// Whether a chunk came back refused by a closed or terminated pool, or
    /// cancelled.
    stopped: bool,
    /// That chunk's error, yielded once the chunks still in flight have
    /// yielded their results: last, in place of what is left.
    stop_error: Option<Error>,
    /// `cancel` dropped input not read yet: once no chunk is left, the
    /// iterator yields `Cancelled` in its place (unless a cancelled chunk
    /// already did).
    cancelled_input: bool,
    /// What the first `cancel` answered: a later one answers the same, as
    /// an `AsyncResult`'s does (the input it dropped and the chunks it
    /// stopped are gone by then, so asking them again would say `Finished`).
    cancelled: Option<CancelOutcome>,
    /// The input's panic, resumed once every result before it was yielded.
    panic: Option<Payload>,
    /// The chunks queued and not yet settled, by number: what `cancel` stops.
    in_flight: HashMap<u64, CancelTarget>,
    /// The number the next chunk queued gets.
    submitted: u64,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// In input order: the number of the next chunk to settle, and the
    /// chunks that came back before it. `None`: completion order.
    ordered: Option<(u64, Early)>,
    ready: VecDeque<Result<R, Error>>,
}

impl<R: DeserializeOwned + 'static, I: Iterator> Feeder<R, I> {
    pub(super) fn new<M, It>(pool: &Pool, items: It, options: MapOptions, ordered: bool) -> Self
    where
        M: Task + EncodeItem<I::Item>,
        M::Output: 'static,
        It: IntoIterator<IntoIter = I>,
    {
        let task = &M::INFO;
        let items = items.into_iter();
        let len = crate::map::exact_len(&items);
        let (done_tx, done_rx) = mpsc::channel();
        let mut feeder = Feeder {
            pool: pool.clone(),
            // None once closing: the iterator then yields `PoolClosed`.
            admission: pool.admit(Lazy::Imap),
            task,
            items: Some(Guarded { items, panic: None }),
            next_chunk: chunk::next_chunk::<M, Guarded<I>>,
            carry: Vec::new(),
            size: 1,
            ramp: if options.is_default_size() {
                1
            } else {
                usize::MAX
            },
            max_bytes: crate::map::chunk_bytes(pool.max_frame())
                .min(MapOptions::IMAP_MAX_CHUNK_BYTES),
            window: CHUNKS_PER_WORKER * pool.processes().max(1),
            error: None,
            stopped: false,
            stop_error: None,
            cancelled_input: false,
            cancelled: None,
            panic: None,
            in_flight: HashMap::new(),
            submitted: 0,
            done_tx,
            done_rx,
            ordered: ordered.then(|| (0, BTreeMap::new())),
            ready: VecDeque::new(),
        };
        let setup = match feeder.admission {
            // Closed before it began: refused whole (as Python's imap
            // raises), its input not read, even if it is empty. (Nor is one
            // admitted in a copy made by `fork`, which says so.)
            None => Err(pool
                .foreign(task.name)
                .err()
                .unwrap_or_else(|| Error::PoolClosed {
                    task: task.name.to_string(),
                })),
            Some(_) => options.resolve_imap(task.name, len, pool.processes()),
        };
        match setup {
            // (Few enough that the records of as many failures fit a reply.)
            Ok(size) => feeder.size = size.min(crate::map::failures_room(pool.max_frame())),
            Err(e) => {
                feeder.stop_feeding();
                feeder.error = Some(e);
            }
        }
        feeder
    }

    /// Queues the next chunk, if the window has room and the input is not
    /// exhausted; returns whether it did. The window counts the chunks not
    /// yet yielded: in flight, or back early (before an earlier one, in
    /// input order).
    fn fill_one(&mut self) -> bool {
        if self.in_flight.len() + self.early_len() >= self.window {
            return false;
        }
        // Feeding holds both (see `stop_feeding`).
        let (Some(items), Some(admission)) = (self.items.as_mut(), self.admission.as_ref()) else {
            return false;
        };
        let size = self.size.min(self.ramp);
        self.ramp = self.ramp.saturating_mul(2);
        let next = (self.next_chunk)(items, size, self.max_bytes, &mut self.carry);
        let panicked = items.panic.take();
        let Some((bytes, sent)) = next else {
            // Drop the input as soon as it is exhausted.
            self.panic = panicked;
            self.stop_feeding();
            return false;
        };
        // An input that forked goes on in the copy, where the queue and
        // `done_tx`'s channel are the parent's: a thread of the parent may
        // have held their locks at the fork, for good there (the copy hung
        // queueing this chunk). Nothing of them is touched: the next turn
        // of `next` says `Config`.
        if self.pool.in_copy() {
            return true;
        }
        let kind = crate::call::Kind::Chunk;
        let chunk = self
            .pool
            .submit_admitted::<()>(admission, self.task, kind, Ok(bytes.into()));
        if let Some(panic) = panicked {
            // The input panicked: it ends there (after this chunk of the
            // items before it).
            self.panic = Some(panic);
            self.stop_feeding();
        }
        let number = self.submitted;
        self.submitted += 1;
        let done = self.done_tx.clone();
        // Every chunk's promise is kept or failed, so this always sends,
        // and the receive in `next` always ends.
        chunk.listen_outcome(Box::new(move |outcome| {
            let _ = done.send((number, sent, outcome));
        }));
        self.in_flight.insert(number, chunk.cancel_target());
        true
    }

    /// The next chunk to settle: in input order or in completion order;
    /// `None` unless one is back before `wait` ends.
    fn next_done(&mut self, wait: Wait) -> Option<(usize, Arc<Outcome>)> {
        loop {
            if let Some((next, early)) = &mut self.ordered {
                if let Some(done) = early.remove(next) {
                    *next += 1;
                    return Some(done);
                }
            }
            let (number, sent, outcome) = match wait {
                Wait::No => self.done_rx.try_recv().ok()?,
                Wait::Until(None) => self.done_rx.recv().ok()?,
                Wait::Until(Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.done_rx.recv_timeout(left).ok()?
                }
            };
            self.in_flight.remove(&number);
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
    /// was closed or terminated, or cancelled, stops the feeding (an endless
    /// input is not pulled for ever): the first one's error is yielded once,
    /// last, once the chunks still in flight are back, later ones nothing.
    /// In completion order, the results of those chunks are yielded before
    /// it. In input order, only those of the chunks ahead of the stopped one
    /// (settled before it): a chunk that finished behind it has no place to
    /// yield its values in, as the stopped chunk's items yield none (they
    /// were yielded in those items' places, taken for their results).
    fn settle(&mut self, outcome: &Outcome, sent: usize) {
        if self.stopped && self.ordered.is_some() {
            return;
        }
        if let Err(
            e @ (Error::PoolClosed { .. } | Error::Terminated { .. } | Error::Cancelled { .. }),
        ) = outcome
        {
            self.stop_feeding();
            if !self.stopped {
                self.stopped = true;
                self.stop_error = Some(e.clone());
            }
            return;
        }
        chunk::decode_chunk(self.task.name, outcome, sent, &mut self.ready);
    }

    /// The next result, waiting for it until `deadline` (`None`: for as
    /// long as it takes); `Err(())` if the deadline passed first.
    pub(super) fn next(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Result<R, Error>>, ()> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            if let Some(error) = self.error.take() {
                return Ok(Some(Err(error)));
            }
            // A chunk already back goes before more input is read (reading
            // it may wait: a slow stream).
            if let Some((sent, outcome)) = self.next_done(Wait::No) {
                self.settle(&outcome, sent);
                continue;
            }
            let unfinished =
                self.items.is_some() || !self.in_flight.is_empty() || self.early_len() > 0;
            if unfinished {
                if let Err(error) = self.pool.foreign(self.task.name) {
                    // In a copy made by `fork`: what is in flight is the
                    // parent's and never comes back here, and the input is
                    // the parent's to read (it is not read here, nor a chunk
                    // queued). Said once, then the iteration ends.
                    self.stop_feeding();
                    self.in_flight.clear();
                    if let Some((_, early)) = &mut self.ordered {
                        early.clear();
                    }
                    // (Nor an error the parent had yet to yield after its
                    // chunks in flight: this one stands in for all that.)
                    self.stop_error = None;
                    self.cancelled_input = false;
                    return Ok(Some(Err(error)));
                }
            }
            if self.fill_one() {
                continue;
            }
            if self.in_flight.is_empty() && self.early_len() == 0 {
                if let Some(error) = self.stop_error.take() {
                    return Ok(Some(Err(error)));
                }
                if std::mem::take(&mut self.cancelled_input) && !self.stopped {
                    // Every chunk it had queued finished: the input the
                    // cancel dropped is what was cancelled.
                    self.stopped = true;
                    return Ok(Some(Err(Error::Cancelled {
                        task: self.task.name.to_string(),
                    })));
                }
                if let Some(panic) = self.panic.take() {
                    resume_unwind(panic);
                }
                return Ok(None);
            }
            // (Something is in flight, and `self` holds a sender: with no
            // deadline this always receives.)
            let (sent, outcome) = self.next_done(Wait::Until(deadline)).ok_or(())?;
            self.settle(&outcome, sent);
        }
    }

    /// [`Self::next`] for at most `timeout`: a [`Error::WaitTimeout`] if
    /// nothing was ready by then (the result is not lost: a later call
    /// yields it).
    pub(super) fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R, Error>> {
        self.next(Instant::now().checked_add(timeout))
            .unwrap_or_else(|()| {
                Some(Err(Error::WaitTimeout {
                    task: self.task.name.to_string(),
                    waited: timeout,
                }))
            })
    }

    /// How many chunks came back before an earlier one.
    fn early_len(&self) -> usize {
        self.ordered.as_ref().map_or(0, |(_, early)| early.len())
    }
}

impl<R, I: Iterator> Feeder<R, I> {
    /// Stops reading the input (exhausted, or stopped): no chunk is queued
    /// any more, so the leave to queue them after `close` is given back.
    fn stop_feeding(&mut self) {
        self.items = None;
        self.admission = None;
    }

    /// Stops the feeding and cancels every chunk in flight (see
    /// [`Imap::cancel`](super::Imap::cancel)).
    pub(super) fn cancel(&mut self) -> CancelOutcome {
        if let Some(first) = self.cancelled {
            return first;
        }
        // (An input known to be exhausted, not read to its end yet, has
        // nothing left, but for an item read and held for the next chunk.)
        let input_left = self
            .items
            .as_ref()
            .filter(|items| items.size_hint().1 != Some(0) || !self.carry.is_empty())
            .map(|_| CancelOutcome::NotStarted);
        // (Cancelled before it queued anything, it just ends.)
        self.cancelled_input |= input_left.is_some() && self.submitted > 0;
        self.stop_feeding();
        // The last queued first (as a map's parts, see `CancelTarget`): a
        // running chunk's worker is killed only once the chunks queued
        // behind it have left the queue.
        let mut chunks: Vec<_> = self.in_flight.iter().collect();
        chunks.sort_unstable_by_key(|(number, _)| std::cmp::Reverse(**number));
        let chunks = chunks.into_iter().map(|(_, chunk)| chunk.cancel());
        let outcome = CancelOutcome::combine(chunks.chain(input_left));
        self.cancelled = Some(outcome);
        outcome
    }
}

impl<R, I> Feeder<R, I> {
    pub(super) fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("task", &self.task.name)
            .field("chunks_in_flight", &self.in_flight.len())
            .finish()
    }
}
