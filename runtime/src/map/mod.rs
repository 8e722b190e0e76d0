//! The map family: `map_<fn>` and `map_async_<fn>` here, the lazy
//! `imap_<fn>` / `imap_unordered_<fn>` in [`imap`]. Items go to the workers
//! in [`chunk`]s, one frame per chunk, and come back in input order.

pub(crate) mod chunk;
pub(crate) mod imap;
mod options;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::call::Kind;
use crate::error::Error;
use crate::result::{self, AsyncResult, Outcome, Promise};
use crate::task::{EncodeItem, Task};
use crate::Pool;
use chunk::Records;
pub use options::MapOptions;
pub(crate) use options::{chunk_bytes, exact_len};

/// Queues one chunk; its outcome is the RESULTS body.
pub(crate) fn submit_chunk<M: Task>(
    pool: &Pool,
    bytes: Result<Vec<u8>, String>,
) -> AsyncResult<()> {
    pool.submit(&M::INFO, Kind::Chunk, bytes)
}

/// Queues every chunk of `items` at once (like Python's `map`).
fn submit_all<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<(AsyncResult<()>, usize)>, Error> {
    let task = &M::INFO;
    let mut items = items.into_iter();
    let mut chunks = Vec::new();
    let max_bytes = chunk_bytes(pool.max_frame());
    match exact_len(&items) {
        Some(len) => {
            let size = options.resolve(task.name, Some(len), pool.processes())?;
            while let Some((bytes, n)) = chunk::next_chunk::<M, _>(&mut items, size, max_bytes) {
                chunks.push((submit_chunk::<M>(pool, bytes), n));
            }
        }
        None => {
            let all: Vec<I::Item> = items.collect();
            let size = options.resolve(task.name, Some(all.len()), pool.processes())?;
            let mut items = all.into_iter();
            while let Some((bytes, n)) = chunk::next_chunk::<M, _>(&mut items, size, max_bytes) {
                chunks.push((submit_chunk::<M>(pool, bytes), n));
            }
        }
    }
    Ok(chunks)
}

/// `map_<fn>`: every result in input order, or the first error.
pub fn map<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<M::Output>, Error> {
    let task = M::INFO.name;
    let chunks = submit_all::<M, I>(pool, items, options)?;
    let total = chunks.iter().map(|(_, n)| n).sum();
    let mut out = Vec::with_capacity(total);
    for (chunk, sent) in chunks {
        let outcome = chunk.wait_outcome();
        let body = match &*outcome {
            Ok(body) => body,
            Err(e) => return Err(e.clone()),
        };
        let (records, _) = chunk::records(task, body, sent)?;
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
pub fn map_async<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> AsyncResult<Vec<M::Output>> {
    let name = M::INFO.name;
    let (promise, result) =
        result::pending_with(&M::INFO, pool.hub(), 0, decode_gathered::<M::Output>);
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
        parts: Mutex::new(vec![None; chunks.len()]),
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

/// Collects a `map_async`'s chunks and fills its promise with the records
/// of all of them: `total u64 | records`, cut after the first chunk that
/// holds an error so that decoding stops at the first error in input order.
struct Gather {
    task: &'static str,
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
            let (records, all_values) = chunk::records(self.task, body, sent)?;
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
