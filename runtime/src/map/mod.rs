//! The map family: `map_<fn>` and `map_async_<fn>` here, the lazy
//! `imap_<fn>` / `imap_unordered_<fn>` in [`imap`]. Items go to the workers
//! in [`chunk`]s, one frame per chunk, and come back in input order.

pub(crate) mod imap;
mod lends;
mod options;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::call::Kind;
use crate::chunk;
use crate::error::Error;
use crate::pool::{Admission, Lazy};
use crate::result::{self, AsyncResult, Outcome, Promise};
use crate::task::{EncodeItem, Task};
use crate::Pool;
pub use lends::Lends;
pub use options::MapOptions;
pub(crate) use options::{chunk_bytes, exact_len, failures_room};

/// Chunks in flight per worker: one running, one queued behind it, so a
/// worker never waits for the caller to send its next chunk.
pub(crate) const CHUNKS_PER_WORKER: usize = 2;
/// Past [`CHUNKS_PER_WORKER`], `map` keeps small chunks queued while they
/// hold fewer than this many items per worker...
const MAP_ITEMS_AHEAD: usize = 512;
/// ...and fewer than this many encoded bytes in all.
const MAP_BYTES_AHEAD: usize = 256 << 10;

/// Whether `map` may queue another chunk with `chunks` chunks of `items`
/// items and `bytes` encoded bytes running: [`CHUNKS_PER_WORKER`] per
/// worker always, and more while they are small, so that a worker finishing
/// a tiny chunk (chunksize 1) finds the next one queued instead of waiting
/// for the caller's thread to decode the last and cut another. (`imap` keeps
/// to the first rule: it reads a lazy input no further ahead than that.)
fn window_admits(processes: usize, chunks: usize, items: usize, bytes: usize) -> bool {
    let processes = processes.max(1);
    chunks < CHUNKS_PER_WORKER * processes
        || (items < MAP_ITEMS_AHEAD * processes && bytes < MAP_BYTES_AHEAD)
}

/// Queues one chunk of a map holding `admission` (see `Pool::admit`); its
/// outcome is the RESULTS body.
fn submit_admitted<M: Task>(admission: &Admission, pool: &Pool, bytes: Vec<u8>) -> AsyncResult<()> {
    pool.submit_admitted(admission, &M::INFO, Kind::Chunk, Ok(bytes.into()))
}

/// Queues every chunk of `items` at once (like Python's `map_async`): all
/// of them, even if `close` comes meanwhile; `PoolClosed` if it came before
/// (even for an empty input).
fn submit_all<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<(AsyncResult<()>, usize)>, Error>
where
    M::Output: 'static,
{
    pool.foreign(M::INFO.name)?;
    let admission = pool.admit(Lazy::Map).ok_or_else(|| Error::PoolClosed {
        task: M::INFO.name.to_string(),
    })?;
    let (mut items, size, max_bytes) = sized_input::<M, I>(pool, items, options)?;
    // Its results will be one `Vec` (see `decode_gathered`): room for them,
    // or a typed error before anything is queued, as `map` has. (Only
    // reserved here: pages never touched cost nothing.)
    drop(room_for_results::<M::Output>(
        M::INFO.name,
        items.size_hint().0,
    )?);
    let mut chunks = Vec::new();
    let mut carry = Vec::new();
    while let Some((bytes, n)) = chunk::next_chunk::<M, _>(&mut items, size, max_bytes, &mut carry)
    {
        // An input that forked goes on in the copy, where the queue is the
        // parent's, its lock perhaps held for good by a thread of the
        // parent at the fork (as in `map`): nothing of it is touched.
        pool.foreign(M::INFO.name)?;
        chunks.push((submit_admitted::<M>(&admission, pool, bytes), n));
    }
    Ok(chunks)
}

/// The input as an iterator of known length, its chunk size (Python's rule
/// needs the length: an input without an exact `size_hint` is collected
/// first, as Python's `map` makes a list) and the bytes a chunk may hold.
#[allow(clippy::type_complexity)]
fn sized_input<M: Task, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<(Input<I::IntoIter>, usize, usize), Error> {
    let name = M::INFO.name;
    let max_bytes = options.map_chunk_bytes(pool.max_frame());
    let items = items.into_iter();
    let (input, len) = match exact_len(&items) {
        Some(len) => (Input::Sized(items), len),
        None => {
            let all: Vec<I::Item> = items.collect();
            let len = all.len();
            (Input::Collected(all.into_iter()), len)
        }
    };
    let size = options
        .resolve(name, Some(len), pool.processes())?
        .min(failures_room(pool.max_frame()));
    Ok((input, size, max_bytes))
}

/// An empty `Vec` with room for `count` results, or a typed error if there
/// can be none (2⁶⁰ of them), which `Vec::with_capacity` would abort on.
fn room_for_results<R>(task: &str, count: usize) -> Result<Vec<R>, Error> {
    let mut out = Vec::new();
    match out.try_reserve_exact(count) {
        Ok(()) => Ok(out),
        Err(e) => Err(Error::Io {
            context: format!("map of `{task}`: room for {count} results"),
            source: Arc::new(std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)),
        }),
    }
}

/// A map's input: as given, if its length is known, else collected.
enum Input<I: Iterator> {
    Sized(I),
    Collected(std::vec::IntoIter<I::Item>),
}

impl<I: Iterator> Iterator for Input<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        match self {
            Input::Sized(items) => items.next(),
            Input::Collected(items) => items.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Input::Sized(items) => items.size_hint(),
            Input::Collected(items) => items.size_hint(),
        }
    }
}

/// Encoded results of chunks back before an earlier one that `map` keeps
/// before it stops queueing more: a map holds its output, this, and the
/// chunks in flight, not a copy of every result.
const MAP_EARLY_BYTES: usize = 8 << 20;

/// `map_<fn>`: every result in input order, or the first error.
///
/// Chunks are queued as the input is cut, while fewer than two per worker
/// are running, so every worker always has work (a slow item holds up no
/// other worker, as in Python); each chunk's results are decoded into the
/// output as soon as every chunk before it is back. Chunks that come back
/// early wait, up to [`MAP_EARLY_BYTES`] of them, before queueing pauses.
pub fn map<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<M::Output>, Error>
where
    M::Output: 'static,
{
    let task = M::INFO.name;
    pool.foreign(task)?;
    let processes = pool.processes();
    let (mut items, size, max_bytes) = sized_input::<M, I>(pool, items, options)?;
    // Room for every result at once, or a typed error before anything runs
    // (a range of 2⁶⁰ items would abort the process here).
    let mut out = room_for_results::<M::Output>(task, items.size_hint().0)?;
    // Written once, front to back: huge pages spare most of its page faults.
    crate::sys::advise_huge_pages(&mut out);
    // Begun before `close`, it runs to its end (given back once every
    // chunk is queued, or on an early return).
    let mut admission = Some(pool.admit(Lazy::Map).ok_or_else(|| Error::PoolClosed {
        task: task.to_string(),
    })?);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Arc<Outcome>)>();
    // Items and encoded bytes per chunk queued so far; chunks running and
    // their bytes; chunks back early.
    let mut sizes = Vec::new();
    let mut chunk_bytes = Vec::new();
    let (mut running, mut running_items, mut running_bytes) = (0, 0, 0);
    let mut early: BTreeMap<usize, Arc<Outcome>> = BTreeMap::new();
    let mut early_bytes = 0;
    let mut carry = Vec::new();
    // The next chunk to decode, in input order.
    let mut next = 0;
    loop {
        // Decoded first: the room they leave decides whether more chunks
        // may be queued. (Checked before, a map whose first chunk came back
        // last, behind more than MAP_EARLY_BYTES of others, queued nothing,
        // then decoded them all and waited for a reply with no chunk in
        // flight: for ever.)
        while let Some(outcome) = early.remove(&next) {
            early_bytes -= outcome_len(&outcome);
            decode_into::<M::Output>(task, &outcome, sizes[next], &mut out)?;
            next += 1;
        }
        while window_admits(processes, running, running_items, running_bytes)
            && early_bytes < MAP_EARLY_BYTES
        {
            let Some(admitted) = &admission else {
                break;
            };
            let Some((bytes, n)) =
                chunk::next_chunk::<M, _>(&mut items, size, max_bytes, &mut carry)
            else {
                admission = None;
                break;
            };
            // An input that forked goes on in the copy, where the queue and
            // `done_tx`'s channel are the parent's: a thread of the parent
            // may have held their locks at the fork, for good there (the
            // copy hung queueing this chunk). Nothing of them is touched.
            pool.foreign(task)?;
            let number = sizes.len();
            let len = bytes.len();
            sizes.push(n);
            chunk_bytes.push(len);
            running += 1;
            running_items += n;
            running_bytes += len;
            let done = done_tx.clone();
            // Every chunk's promise is kept or failed, so this always
            // sends, and the receive below always ends.
            submit_admitted::<M>(admitted, pool, bytes).listen_outcome(Box::new(move |outcome| {
                let _ = done.send((number, outcome));
            }));
        }
        // (With nothing in flight, every chunk queued came back and was
        // decoded above, and the window admits one: the input is used up.)
        if admission.is_none() && running == 0 && early.is_empty() {
            return Ok(out);
        }
        // A fork in the input (or an item's encoding) leaves the copy with
        // chunks in flight that only the parent hears of: fail, not wait.
        pool.foreign(task)?;
        let (number, outcome) = done_rx.recv().map_err(|_| Error::Terminated {
            task: task.to_string(),
        })?;
        // A cancelled chunk (`close_and_cancel` took it from the queue)
        // cancels the map, as it does a `map_async`: said at once, not once
        // the chunks before it are back.
        if let Err(e @ Error::Cancelled { .. }) = &*outcome {
            return Err(e.clone());
        }
        running -= 1;
        running_items -= sizes[number];
        running_bytes -= chunk_bytes[number];
        early_bytes += outcome_len(&outcome);
        early.insert(number, outcome);
    }
}

/// The bytes an outcome holds (a chunk's encoded results).
fn outcome_len(outcome: &Outcome) -> usize {
    outcome.as_ref().map_or(0, |body| body.len())
}

/// Decodes the `sent` results of one chunk's outcome onto `out`, or returns
/// the first error among them (or the chunk's own).
fn decode_into<R: DeserializeOwned + 'static>(
    task: &str,
    outcome: &Outcome,
    sent: usize,
    out: &mut Vec<R>,
) -> Result<(), Error> {
    let body = outcome.as_ref().map_err(Clone::clone)?;
    chunk::decode_body(task, body.head(), sent, out)
}

/// `map_async_<fn>`: one [`AsyncResult`] for the whole map.
pub fn map_async<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> AsyncResult<Vec<M::Output>>
where
    M::Output: 'static,
{
    let name = M::INFO.name;
    let (promise, result) =
        result::pending_with(&M::INFO, pool.hub(), decode_gathered::<M::Output>);
    let chunks = match submit_all::<M, I>(pool, items, options) {
        Ok(chunks) => chunks,
        Err(e) => {
            promise.complete(Err(e));
            return result;
        }
    };
    let gather = Arc::new(Gather {
        task: name,
        promise: Mutex::new(Some(promise)),
        parts: Mutex::new(Parts {
            outcomes: vec![None; chunks.len()],
            settled: 0,
            taken: false,
        }),
        sizes: chunks.iter().map(|(_, n)| *n).collect(),
        left: AtomicUsize::new(chunks.len()),
    });
    if chunks.is_empty() {
        gather.finish();
    }
    let mut parts = Vec::with_capacity(chunks.len());
    for (index, (chunk, _)) in chunks.into_iter().enumerate() {
        let gather = gather.clone();
        chunk.listen_outcome(Box::new(move |outcome| gather.arrive(index, outcome)));
        parts.push(chunk.cancel_target());
    }
    result.cancels_parts(parts)
}

/// Collects a `map_async`'s chunks and fills its promise with the RESULTS
/// bodies of all of them: `total u64`, then per chunk `sent u64 | len u64 |
/// body`, cut after the first chunk that holds an error so that decoding
/// stops at the first error in input order. That error is known, and the
/// promise filled, once its chunk and every chunk before it are back: the
/// chunks after it are not waited for (as `map` returns it, and Python's
/// `map_async` fails, at once; they still run). A cancelled chunk
/// (`close_and_cancel` takes the queued ones) fills it at once: the map is
/// cancelled, whatever the chunks still running give.
struct Gather {
    task: &'static str,
    promise: Mutex<Option<Promise>>,
    parts: Mutex<Parts>,
    sizes: Vec<usize>,
    left: AtomicUsize,
}

/// The chunks of a `map_async` as they come back.
struct Parts {
    /// Each chunk's outcome, by number, once it is back.
    outcomes: Vec<Option<Arc<Outcome>>>,
    /// How many leading chunks are back with every item's value.
    settled: usize,
    /// Whether the outcomes were taken to fill the promise: later chunks
    /// are dropped as they come.
    taken: bool,
}

impl Gather {
    fn arrive(&self, index: usize, outcome: Arc<Outcome>) {
        let failed = {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            if parts.taken {
                return;
            }
            // A cancelled part cancels the map as a whole (see `assemble`),
            // whatever the others do.
            let cancelled = matches!(*outcome, Err(Error::Cancelled { .. }));
            parts.outcomes[index] = Some(outcome);
            cancelled || self.settle_leading(&mut parts)
        };
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 || failed {
            self.finish();
        }
    }

    /// Moves past the leading chunks back with every value; `true` if the
    /// next one is back with an error (the map's first in input order).
    fn settle_leading(&self, parts: &mut Parts) -> bool {
        while let Some(Some(part)) = parts.outcomes.get(parts.settled) {
            if self.fails(part, self.sizes[parts.settled]) {
                return true;
            }
            parts.settled += 1;
        }
        false
    }

    /// Whether a chunk's outcome holds an error (its own, or an item's).
    fn fails(&self, part: &Outcome, sent: usize) -> bool {
        match part {
            Err(_) => true,
            Ok(body) => match chunk::body(self.task, body.head(), sent) {
                Ok(chunk::Body::Records { all_values, .. }) => !all_values,
                Ok(chunk::Body::Dense { .. }) => false,
                Err(_) => true,
            },
        }
    }

    fn finish(&self) {
        let promise = self
            .promise
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(promise) = promise {
            promise.complete(self.assemble());
        }
    }

    fn assemble(&self) -> Outcome {
        let parts = {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            parts.taken = true;
            std::mem::take(&mut parts.outcomes)
        };
        // A cancelled map is cancelled as a whole, whatever came first.
        let cancelled = parts.iter().flatten().find_map(|part| match &**part {
            Err(e @ Error::Cancelled { .. }) => Some(e.clone()),
            _ => None,
        });
        if let Some(error) = cancelled {
            return Err(error);
        }
        let total: usize = self.sizes.iter().sum();
        let mut bytes = (total as u64).to_le_bytes().to_vec();
        for (part, &sent) in parts.iter().zip(&self.sizes) {
            let Some(part) = part else {
                return Err(Error::Terminated {
                    task: self.task.to_string(),
                });
            };
            let body = match &**part {
                Ok(body) => body,
                Err(e) => return Err(e.clone()),
            };
            let failed = match chunk::body(self.task, body.head(), sent)? {
                chunk::Body::Records { all_values, .. } => !all_values,
                chunk::Body::Dense { .. } => false,
            };
            for n in [sent, body.head().len()] {
                bytes.extend_from_slice(&(n as u64).to_le_bytes());
            }
            bytes.extend_from_slice(body.head());
            if failed {
                break;
            }
        }
        Ok(bytes.into())
    }
}

fn decode_gathered<R: DeserializeOwned + 'static>(
    task: &str,
    outcome: &Outcome,
) -> Result<Vec<R>, Error> {
    let bytes = outcome.as_ref().map_err(Clone::clone)?;
    let mut rest = bytes.head();
    fn number(rest: &mut &[u8]) -> Option<usize> {
        let (n, after) = rest.split_first_chunk::<8>()?;
        *rest = after;
        usize::try_from(u64::from_le_bytes(*n)).ok()
    }
    let protocol = |message: &str| Error::Protocol {
        task: task.to_string(),
        message: message.to_string(),
    };
    let total =
        number(&mut rest).ok_or_else(|| protocol("a map's gathered results lack their count"))?;
    // A result takes at least a byte: a larger count is not trusted.
    let mut out = Vec::with_capacity(total.min(rest.len()));
    crate::sys::advise_huge_pages(&mut out);
    while !rest.is_empty() {
        let (Some(sent), Some(len)) = (number(&mut rest), number(&mut rest)) else {
            return Err(protocol("a map's gathered results cut short"));
        };
        let Some((body, after)) = rest.split_at_checked(len) else {
            return Err(protocol("a map's gathered results cut short"));
        };
        // The first error in input order, if any, is in this chunk.
        chunk::decode_body(task, body, sent, &mut out)?;
        rest = after;
    }
    if out.len() != total {
        return Err(Error::Protocol {
            task: task.to_string(),
            message: format!("{total} items were sent, {} results came back", out.len()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::window_admits;

    #[test]
    fn map_queues_two_chunks_per_worker_and_more_while_they_are_small() {
        // Two per worker always, however large.
        assert!(window_admits(2, 3, 1 << 30, 1 << 30));
        assert!(!window_admits(2, 4, 4096, 1 << 20));
        // Small ones (chunksize 1) up to 512 items per worker and 256 KiB.
        assert!(window_admits(2, 500, 500, 5000));
        assert!(!window_admits(2, 1024, 1024, 10_000));
        assert!(!window_admits(2, 100, 100, 256 << 10));
        assert!(window_admits(4, 1500, 1500, 1000));
    }
}
