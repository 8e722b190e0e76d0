//! Not public API. Used by code that `#[pool_task]` generates; may change in
//! any release. Re-exports, and entry points one call deep: the logic lives
//! in the modules named.

pub use ::ctor;
pub use ::inventory;
pub use ::serde;

pub use crate::registry::Registration;
pub use crate::task::{
    by_name_signature, decode_output, dense_kind, encode_dense, encode_output, encode_ref,
    encode_result, encode_value, fingerprint, settle_item, ArgsDecoder, ArgsEncoder, CallError,
    DenseKind, EncodeItem, Encoded, ErrWithDebug, ErrWithoutDebug, Lend, NotAResult, RefArg,
    RefArgAt, Returned, Task, TaskInfo, TaskOutput, ValueArg,
};

use crate::call::Kind;
use crate::{AsyncResult, Error, Imap, ImapUnordered, MapOptions, Pool};

/// How many workers this process asked to exit (after `max_tasks_per_child`
/// tasks, or at `join`), and how many of those did not exit with code 0.
/// For tests.
pub fn retirements() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let [all, unclean] = &crate::pool::RETIRED;
    (all.load(Relaxed), unclean.load(Relaxed))
}

/// Whether this process's fork server serves: `None` while it has not said
/// (or there is none). For tests that wait for it.
pub fn fork_server_serves() -> Option<bool> {
    crate::process::fork_server_serves()
}

/// `apply_<fn>`: runs the call and waits for its result.
pub fn call_task<M: Task>(pool: &Pool, args: Result<Encoded, String>) -> Result<M::Output, Error>
where
    M::Output: 'static,
{
    pool.call(&M::INFO, args, crate::result::decode_body::<M::Output>)
}

/// `apply_async_<fn>`: queues the call.
pub fn submit_task<M: Task>(pool: &Pool, args: Result<Encoded, String>) -> AsyncResult<M::Output> {
    pool.submit(&M::INFO, Kind::Single, args)
}

/// Queues a call of any task, whose result decodes as `R` (for tests that
/// send what no generated function would).
pub fn submit<R: serde::de::DeserializeOwned>(
    pool: &Pool,
    task: &TaskInfo,
    args: Result<impl Into<Encoded>, String>,
) -> AsyncResult<R> {
    let task = crate::task::intern(task.name, task.signature, task.fingerprint);
    pool.submit(task, Kind::Single, args.map(Into::into))
}

/// `map_<fn>`.
pub fn map<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Result<Vec<M::Output>, Error>
where
    M::Output: 'static,
{
    crate::map::map::<M, I>(pool, items, options)
}

/// `map_async_<fn>`.
pub fn map_async<M: Task + EncodeItem<I::Item>, I: IntoIterator>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> AsyncResult<Vec<M::Output>>
where
    M::Output: 'static,
{
    crate::map::map_async::<M, I>(pool, items, options)
}

/// `imap_<fn>`.
pub fn imap<'a, M: Task + EncodeItem<I::Item>, I: IntoIterator<IntoIter: 'a>>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> Imap<'a, M::Output, I::IntoIter>
where
    M::Output: 'static,
{
    Imap::new::<M, I>(pool, items, options)
}

/// `imap_unordered_<fn>`.
pub fn imap_unordered<'a, M: Task + EncodeItem<I::Item>, I: IntoIterator<IntoIter: 'a>>(
    pool: &Pool,
    items: I,
    options: MapOptions,
) -> ImapUnordered<'a, M::Output, I::IntoIter>
where
    M::Output: 'static,
{
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
) -> Result<(), CallError>
where
    M::Output: 'static,
{
    crate::worker::chunk::run(bytes, out, decode, call)
}

/// For tests that play a corrupt worker, in a worker: writes `bytes` into
/// this worker's reply channel as they are, ahead of the reply to the call
/// running now.
pub fn write_raw_reply(bytes: &[u8]) -> Result<(), String> {
    crate::worker::write_raw(bytes)
}

/// For tests that play a hostile worker: where the parts of a worker's
/// shared-memory channel are, in bytes from the start of its mapping
/// (`req_head`, `req_tail`, `rep_head`, `rep_tail`, `parent_seq`, `rings`;
/// each ring is `channel_ring_bytes()` long, the request ring first).
pub fn channel_layout() -> Vec<(&'static str, usize)> {
    crate::shm::offsets().to_vec()
}

/// For tests that start a test binary's worker by hand: the arguments a
/// pool starts it with (its harness runs the entry test alone).
#[cfg(target_os = "linux")]
pub use crate::process::HARNESS_ARGS as WORKER_HARNESS_ARGS;

/// For tests of what a pool does with the calls it pipelines to a busy
/// worker: the pools of this process count every call that completes as
/// quick (under a millisecond, below which a pool batches a task's calls),
/// however long it took on a slow or loaded machine.
pub fn treat_pool_calls_as_quick() {
    crate::pool::treat_calls_as_quick()
}

/// For tests of what a node does with the calls it claims ahead: the
/// nodes this process runs count every call that completes as quick (under
/// a millisecond, below which a node claims ahead), however long it took
/// on a slow or loaded machine.
#[cfg(all(target_os = "linux", feature = "redis"))]
pub fn treat_node_calls_as_quick() {
    crate::redis::treat_calls_as_quick()
}

/// For tests of how much a node keeps of the outcomes it settled (so that
/// a DELIVER Redis lost is answered again): the nodes this process runs
/// keep each one for `age` (the count and byte bounds still hold) instead
/// of a few seconds, so that what they keep depends on how much they
/// served, not on how fast a slow or loaded machine served it.
#[cfg(all(target_os = "linux", feature = "redis"))]
pub fn keep_node_outcomes_for(age: std::time::Duration) {
    crate::redis::keep_outcomes_for(age)
}

/// The size of each ring of a worker's channel.
pub fn channel_ring_bytes() -> usize {
    crate::shm::DEFAULT_RING_BYTES
}

/// For tests that drive a worker by hand: the parent's end of a fresh
/// channel. Start this program with the channel's fd at 3, the environment
/// variable `PROCPOOL_WORKER_FD=3` and the worker's arguments, then write
/// raw bytes and read frames (`len u32 LE | body`, as `wire::frame` says).
pub struct HandChannel(crate::process::HandChannel);

impl HandChannel {
    /// A channel whose worker may send and accept frames of `max_frame` bytes.
    pub fn new(max_frame: usize) -> std::io::Result<HandChannel> {
        let stall = crate::PoolBuilder::DEFAULT_FRAME_STALL_TIMEOUT;
        crate::process::HandChannel::new(max_frame, stall).map(HandChannel)
    }

    /// The fd to place at 3 in the worker (close-on-exec here).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.fd()
    }

    /// Writes `bytes` to the worker as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.write_raw(bytes)
    }

    /// Sends `body` as one frame.
    pub fn send(&mut self, body: &[u8]) -> Result<(), String> {
        let len = u32::try_from(body.len()).map_err(|e| e.to_string())?;
        self.0.write_raw(&[&len.to_le_bytes()[..], body].concat())
    }

    /// The next frame from the worker, waiting at most `timeout` for it.
    pub fn read_frame(&mut self, timeout: std::time::Duration) -> Result<Vec<u8>, String> {
        self.0.read_frame(timeout)
    }

    /// Lets the worker go: it exits once it has read what was sent (a frame
    /// cut short by this is a protocol error to it).
    pub fn close(&self) {
        self.0.close()
    }
}
