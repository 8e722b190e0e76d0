//! `map_<fn>` and `map_async_<fn>`: items go to the workers in chunks, one
//! frame per chunk, and come back in input order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::__private::{MapTask, TaskInfo};
use crate::batch::{self, Records};
use crate::error::Error;
use crate::pool::TaskCall;
use crate::result::{self, AsyncResult, Outcome, Promise};
use crate::Pool;

/// How the map family splits its input (Python's `chunksize`).
///
/// Items travel to the workers in chunks: one frame, one worker, many items.
/// Larger chunks cost less per item; smaller ones balance uneven work better
/// and let `imap` yield sooner. By default:
///
/// - `map_<fn>` and `map_async_<fn>`, and `imap_<fn>` /
///   `imap_unordered_<fn>` over an input whose length is known (its
///   `size_hint` is exact, as for ranges, vectors and slices), use Python's
///   `Pool.map` rule: `ceil(len / (4 × processes))`;
///   `imap`'s default is capped at [`MapOptions::IMAP_MAX_DEFAULT_CHUNKSIZE`]
///   items, so that a huge input (`0..u64::MAX`) does not make huge chunks
///   (Python's `imap` default is 1; ours is bounded but larger, for speed);
/// - `imap_<fn>` / `imap_unordered_<fn>` over an input of unknown length
///   (a filter, a reader, an endless iterator) use chunks of
///   [`MapOptions::DEFAULT_UNKNOWN_LEN_CHUNKSIZE`] items.
///
/// A chunk also ends early once its encoded items fill a quarter of the
/// pool's [frame limit](crate::PoolBuilder::max_frame_bytes) (for `imap`,
/// [`MapOptions::IMAP_MAX_CHUNK_BYTES`] at most), so large items make
/// smaller chunks instead of failing with [`Error::FrameTooLarge`].
///
/// A pool's [`task_timeout`](crate::PoolBuilder::task_timeout) applies to
/// each chunk as a whole, and a chunk counts as one task for
/// [`max_tasks_per_child`](crate::PoolBuilder::max_tasks_per_child).
///
/// ```
/// use procpool::{pool_task, MapOptions, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     let one_by_one = MapOptions::new().chunksize(1);
///     assert_eq!(map_square_with(&pool, 0..4, one_by_one)?, [0, 1, 4, 9]);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapOptions {
    chunksize: Option<usize>,
}

impl MapOptions {
    /// Chunk size of `imap_<fn>` / `imap_unordered_<fn>` over an input of
    /// unknown length.
    pub const DEFAULT_UNKNOWN_LEN_CHUNKSIZE: usize = 16;

    /// The most items a default chunk of `imap_<fn>` /
    /// `imap_unordered_<fn>` holds, whatever the input's length (an explicit
    /// [`chunksize`](Self::chunksize) is used as given).
    pub const IMAP_MAX_DEFAULT_CHUNKSIZE: usize = 1024;

    /// The most encoded item bytes one chunk of `imap_<fn>` /
    /// `imap_unordered_<fn>` holds (1 MiB): a lazy map keeps few items in
    /// memory.
    pub const IMAP_MAX_CHUNK_BYTES: usize = 1 << 20;

    /// The defaults (see [`MapOptions`]).
    pub fn new() -> Self {
        MapOptions::default()
    }

    /// Items per chunk, at least 1 (0 makes the call fail with
    /// [`Error::Config`]).
    pub fn chunksize(mut self, items: usize) -> Self {
        self.chunksize = Some(items);
        self
    }

    /// [`resolve`](Self::resolve) for `imap`: a default chunk size is capped
    /// at [`IMAP_MAX_DEFAULT_CHUNKSIZE`](Self::IMAP_MAX_DEFAULT_CHUNKSIZE).
    pub(crate) fn resolve_imap(
        &self,
        task: &str,
        len: Option<usize>,
        processes: usize,
    ) -> Result<usize, Error> {
        let size = self.resolve(task, len, processes)?;
        Ok(match self.chunksize {
            Some(_) => size,
            None => size.min(Self::IMAP_MAX_DEFAULT_CHUNKSIZE),
        })
    }

    /// The chunk size for an input of `len` items (`None`: unknown) on a
    /// pool of `processes` workers.
    pub(crate) fn resolve(
        &self,
        task: &str,
        len: Option<usize>,
        processes: usize,
    ) -> Result<usize, Error> {
        match (self.chunksize, len) {
            (Some(0), _) => Err(Error::Config {
                message: format!("task `{task}`: chunksize must be at least 1"),
            }),
            (Some(n), _) => Ok(n),
            (None, Some(len)) => Ok(len.div_ceil(4 * processes.max(1)).max(1)),
            (None, None) => Ok(Self::DEFAULT_UNKNOWN_LEN_CHUNKSIZE),
        }
    }
}

/// The length of `items` if its `size_hint` is exact.
pub(crate) fn exact_len(items: &impl Iterator) -> Option<usize> {
    match items.size_hint() {
        (low, Some(high)) if low == high => Some(low),
        _ => None,
    }
}

/// How many bytes of encoded items a chunk may hold: a quarter of the frame
/// limit, so that a chunk of large items is cut short instead of failing
/// with [`Error::FrameTooLarge`] (its results need room too).
pub(crate) fn chunk_bytes(pool: &Pool) -> usize {
    pool.max_frame() / 4
}

/// Encodes up to `size` items from `items` as one chunk, ending it early
/// once it holds `max_bytes`; `None` when the input is exhausted. Returns the
/// bytes (or why they could not be made) and the number of items taken.
pub(crate) fn next_chunk<M: MapTask>(
    items: &mut impl Iterator<Item = M::Item>,
    size: usize,
    max_bytes: usize,
) -> Option<(Result<Vec<u8>, String>, usize)> {
    let first = items.next()?;
    let size = size.min(u32::MAX as usize);
    let mut bytes = vec![0; 4];
    let mut encoded = M::encode_item(first, &mut bytes);
    // Room for the rest, guessed from the first item (at most 16 MiB ahead).
    let guess = (bytes.len() - 4).saturating_mul(size - 1);
    bytes.reserve(guess.min(16 << 20).min(max_bytes));
    let mut taken = 1;
    while taken < size && bytes.len() < max_bytes {
        let Some(item) = items.next() else { break };
        if encoded.is_ok() {
            encoded = M::encode_item(item, &mut bytes);
        }
        // After a failure, still take the chunk's items: they all fail with it.
        taken += 1;
    }
    let bytes = encoded.map(|()| {
        bytes[..4].copy_from_slice(&(taken as u32).to_le_bytes());
        bytes
    });
    Some((bytes, taken))
}

/// Queues one chunk; its outcome is the RESULTS body.
pub(crate) fn submit_chunk(
    pool: &Pool,
    task: &TaskInfo,
    bytes: Result<Vec<u8>, String>,
) -> AsyncResult<()> {
    let call = TaskCall {
        task: Arc::from(task.name),
        fingerprint: task.fingerprint,
        signature: task.signature,
        timeout: None,
        batch: true,
    };
    pool.submit(call, bytes)
}

/// Queues every chunk of `items` at once (like Python's `map`).
fn submit_all<M: MapTask>(
    pool: &Pool,
    items: impl IntoIterator<Item = M::Item>,
    options: MapOptions,
) -> Result<Vec<(AsyncResult<()>, usize)>, Error> {
    let task = &M::INFO;
    let mut items = items.into_iter();
    let mut chunks = Vec::new();
    let max_bytes = chunk_bytes(pool);
    match exact_len(&items) {
        Some(len) => {
            let size = options.resolve(task.name, Some(len), pool.processes())?;
            while let Some((bytes, n)) = next_chunk::<M>(&mut items, size, max_bytes) {
                chunks.push((submit_chunk(pool, task, bytes), n));
            }
        }
        None => {
            let all: Vec<M::Item> = items.collect();
            let size = options.resolve(task.name, Some(all.len()), pool.processes())?;
            let mut items = all.into_iter();
            while let Some((bytes, n)) = next_chunk::<M>(&mut items, size, max_bytes) {
                chunks.push((submit_chunk(pool, task, bytes), n));
            }
        }
    }
    Ok(chunks)
}

/// Decodes one chunk's outcome into `out`, one entry per item sent: a
/// failure of the whole chunk (its worker died, the pool was terminated)
/// fails each of its items.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    task: &str,
    outcome: &Outcome,
    sent: usize,
    out: &mut impl Extend<Result<R, Error>>,
) {
    let records = match outcome {
        Ok(body) => batch::records(task, body, sent).map(|(records, _)| records),
        Err(e) => Err(e.clone()),
    };
    match records {
        Ok(records) => {
            let mut records = Records::new(task, records);
            let mut left = sent;
            while left > 0 {
                let Some(item) = records.next::<R>() else {
                    break;
                };
                out.extend(Some(item));
                left -= 1;
            }
            if left > 0 {
                let error = Error::Protocol {
                    task: task.to_string(),
                    message: format!("a chunk's reply ended {left} results early"),
                };
                out.extend(std::iter::repeat_n(error, left).map(Err));
            }
        }
        Err(error) => out.extend(std::iter::repeat_n(error, sent).map(Err)),
    }
}

/// `map_<fn>`: every result in input order, or the first error.
pub fn map<M: MapTask>(
    pool: &Pool,
    items: impl IntoIterator<Item = M::Item>,
    options: MapOptions,
) -> Result<Vec<M::Output>, Error> {
    let task = M::INFO.name;
    let chunks = submit_all::<M>(pool, items, options)?;
    let total = chunks.iter().map(|(_, n)| n).sum();
    let mut out = Vec::with_capacity(total);
    for (chunk, sent) in chunks {
        let outcome = chunk.wait_outcome();
        let body = match &*outcome {
            Ok(body) => body,
            Err(e) => return Err(e.clone()),
        };
        let (records, _) = batch::records(task, body, sent)?;
        let mut records = Records::new(task, records);
        for _ in 0..sent {
            match records.next::<M::Output>() {
                Some(item) => out.push(item?),
                None => {
                    return Err(Error::Protocol {
                        task: task.to_string(),
                        message: "a chunk's reply ended early".into(),
                    })
                }
            }
        }
    }
    Ok(out)
}

/// `map_async_<fn>`: one [`AsyncResult`] for the whole map.
pub fn map_async<M: MapTask>(
    pool: &Pool,
    items: impl IntoIterator<Item = M::Item>,
    options: MapOptions,
) -> AsyncResult<Vec<M::Output>> {
    let name: Arc<str> = Arc::from(M::INFO.name);
    let (promise, result) =
        result::pending_with(name.clone(), pool.runner(), decode_gathered::<M::Output>);
    let chunks = match submit_all::<M>(pool, items, options) {
        Ok(chunks) => chunks,
        Err(e) => {
            promise.complete(Err(e));
            return result;
        }
    };
    let gather = Arc::new(Gather {
        task: name,
        promise: Mutex::new(Some(promise)),
        parts: Mutex::new(vec![None; chunks.len()]),
        sizes: chunks.iter().map(|(_, n)| *n).collect(),
        left: AtomicUsize::new(chunks.len()),
    });
    if chunks.is_empty() {
        gather.finish();
    }
    for (index, (chunk, _)) in chunks.into_iter().enumerate() {
        let gather = gather.clone();
        chunk.listen_outcome(Box::new(move |outcome| gather.arrive(index, outcome)));
    }
    result
}

/// Collects a `map_async`'s chunks and fills its promise with the records
/// of all of them: `total u64 | records`, cut after the first chunk that
/// holds an error so that decoding stops at the first error in input order.
struct Gather {
    task: Arc<str>,
    promise: Mutex<Option<Promise>>,
    parts: Mutex<Vec<Option<Arc<Outcome>>>>,
    sizes: Vec<usize>,
    left: AtomicUsize,
}

impl Gather {
    fn arrive(&self, index: usize, outcome: Arc<Outcome>) {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(outcome);
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
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
        let parts = std::mem::take(&mut *self.parts.lock().unwrap_or_else(|e| e.into_inner()));
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
            let (records, all_values) = batch::records(&self.task, body, sent)?;
            bytes.extend_from_slice(records);
            if !all_values {
                break;
            }
        }
        Ok(bytes.into())
    }
}

fn decode_gathered<R: DeserializeOwned>(task: &str, outcome: &Outcome) -> Result<Vec<R>, Error> {
    let bytes = outcome.as_ref().map_err(Clone::clone)?;
    let Some((total, records)) = bytes.split_first_chunk::<8>() else {
        return Err(Error::Protocol {
            task: task.to_string(),
            message: "a map's gathered results lack their count".into(),
        });
    };
    let total = u64::from_le_bytes(*total) as usize;
    let mut out = Vec::with_capacity(total);
    let mut records = Records::new(task, records);
    while let Some(item) = records.next::<R>() {
        out.push(item?);
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
    use super::MapOptions;

    #[test]
    fn default_chunksize_follows_python() {
        let default = MapOptions::new();
        // Python: chunksize, extra = divmod(len, 4 * processes); chunksize += bool(extra)
        assert_eq!(default.resolve("t", Some(200_000), 2).unwrap(), 25_000);
        assert_eq!(default.resolve("t", Some(10), 2).unwrap(), 2);
        assert_eq!(default.resolve("t", Some(1), 8).unwrap(), 1);
        assert_eq!(default.resolve("t", Some(0), 2).unwrap(), 1);
        assert_eq!(
            default.resolve("t", None, 2).unwrap(),
            MapOptions::DEFAULT_UNKNOWN_LEN_CHUNKSIZE
        );
        let seven = MapOptions::new().chunksize(7);
        assert_eq!(seven.resolve("t", Some(1000), 2).unwrap(), 7);
        assert_eq!(seven.resolve("t", None, 2).unwrap(), 7);
        assert!(MapOptions::new()
            .chunksize(0)
            .resolve("t", None, 2)
            .is_err());
    }
}
