//! Not public API. Used by code that `#[pool_task]` generates; may change in
//! any release. Re-exports, and entry points one call deep: the logic lives
//! in the modules named.

pub use ::ctor;
pub use ::inventory;
pub use ::serde;

pub use crate::registry::Registration;
pub use crate::task::{
    by_name_signature, encode_byte_output, encode_output, encode_ref, encode_result, encode_value,
    fingerprint, ArgsDecoder, ArgsEncoder, CallError, EncodeItem, Lend, RefArg, RefArgAt, Task,
    TaskInfo, TaskOutput, ValueArg,
};

use crate::call::Kind;
use crate::{codec, AsyncResult, Error, Imap, ImapUnordered, MapOptions, Pool};

/// How many workers this process asked to exit (after `max_tasks_per_child`
/// tasks, or at `join`), and how many of those did not exit with code 0.
/// For tests.
pub fn retirements() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let [all, unclean] = &crate::pool::RETIRED;
    (all.load(Relaxed), unclean.load(Relaxed))
}

/// `apply_<fn>`: runs the call and waits for its result.
pub fn call_task<M: Task>(pool: &Pool, args: Result<Vec<u8>, String>) -> Result<M::Output, Error> {
    pool.call(&M::INFO, args, codec::decode::<M::Output>)
}

/// [`call_task`] for a task returning `Vec<u8>`: decodes it as one block.
pub fn call_task_bytes<M: Task<Output = Vec<u8>>>(
    pool: &Pool,
    args: Result<Vec<u8>, String>,
) -> Result<Vec<u8>, Error> {
    pool.call(&M::INFO, args, |bytes| {
        codec::decode::<codec::BytesIn>(bytes).map(|b| b.0)
    })
}

/// `apply_async_<fn>`: queues the call.
pub fn submit_task<M: Task>(pool: &Pool, args: Result<Vec<u8>, String>) -> AsyncResult<M::Output> {
    pool.submit(&M::INFO, Kind::Single, args)
}

/// Queues a call of any task, whose result decodes as `R` (for tests that
/// send what no generated function would).
pub fn submit<R: serde::de::DeserializeOwned>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<Vec<u8>, String>,
) -> AsyncResult<R> {
    let task = crate::task::intern(task.name, task.signature, task.fingerprint);
    pool.submit(task, Kind::Single, args)
}

/// `map_<fn>`.
pub fn map<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<M::Output>, Error> {
    crate::map::map::<M, I>(pool, items, options)
}

/// `map_async_<fn>`.
pub fn map_async<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> AsyncResult<Vec<M::Output>> {
    crate::map::map_async::<M, I>(pool, items, options)
}

/// `imap_<fn>`.
pub fn imap<'a, M: Task + EncodeItem<I::Item>, I: IntoIterator<IntoIter: 'a>>(
    pool: &'a Pool,
    items: I,
    options: MapOptions,
) -> Imap<'a, M::Output, I::IntoIter> {
    Imap::new::<M, I>(pool, items, options)
}

/// `imap_unordered_<fn>`.
pub fn imap_unordered<'a, M: Task + EncodeItem<I::Item>, I: IntoIterator<IntoIter: 'a>>(
    pool: &'a Pool,
    items: I,
    options: MapOptions,
) -> ImapUnordered<'a, M::Output, I::IntoIter> {
    ImapUnordered::new::<M, I>(pool, items, options)
}

/// The worker's entry for a chunk of task `M`: `decode` reads one item's
/// arguments, `call` runs the function on them (each under its own panic
/// guard).
pub fn run_chunk<M: TaskOutput, A>(
    bytes: &[u8],
    out: &mut Vec<u8>,
    decode: impl FnMut(&mut ArgsDecoder<'_>) -> Result<A, CallError>,
    call: impl FnMut(A) -> M::Output,
) -> Result<(), CallError> {
    crate::map::chunk::run(bytes, out, decode, call)
}
