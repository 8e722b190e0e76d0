//! One call, from the generated code to the wire: which task, its encoded
//! arguments, whether it is a single call or a chunk of a map, and its time
//! limit. A queued call is a [`Job`]: the call's arguments and the
//! [`Promise`] its outcome settles, whose result cell holds the call's id,
//! task and limit (one is queued per pending task: it is kept to 32 bytes).
//! What sending and settling need of either is a [`CallRef`].

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::error::Error;
use crate::result::Promise;
use crate::task::{Encoded, TaskInfo};
use crate::wire;

/// What a call carries to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One call of the task: answered with its value (VALUE).
    Single,
    /// A chunk of a map: many items in one frame (CALL_BATCH), answered
    /// with one outcome per item (RESULTS); see [`crate::chunk`].
    Chunk,
}

/// One call of a task.
pub(crate) struct Call {
    /// Unique in its pool; the worker's reply names it.
    pub(crate) id: u64,
    /// The task: its registered name, and the caller's signature and
    /// fingerprint (0: unchecked), which the worker checks.
    pub(crate) task: &'static TaskInfo,
    /// The encoded arguments (for a chunk: its items), and their tail if
    /// they end in a large `Vec<u8>` (see [`Args::Split`]).
    pub(crate) args: Args,
    pub(crate) kind: Kind,
    /// How long the worker may run it.
    pub(crate) timeout: Limit,
}

/// A time limit in 62 bits (8 bytes with a [`Job`]'s two flags, not an
/// `Option<Duration>`'s 16): nanoseconds, all ones for none (146 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(u64);

impl Limit {
    /// No limit.
    pub(crate) const NONE: Limit = Limit(LIMIT_BITS);

    /// The limit as a duration, `None` for none.
    pub(crate) fn get(self) -> Option<Duration> {
        (self != Limit::NONE).then(|| Duration::from_nanos(self.0))
    }
}

/// The bits of a [`Limit`].
const LIMIT_BITS: u64 = (1 << 62) - 1;

impl From<Option<Duration>> for Limit {
    fn from(limit: Option<Duration>) -> Limit {
        match limit {
            // The longest limit kept is one short of none (146 years).
            Some(d) => Limit(d.as_nanos().min(u128::from(LIMIT_BITS - 1)) as u64),
            None => Limit::NONE,
        }
    }
}

/// What sending a call, waiting for its reply and settling it need to know
/// of it: a [`Call`]'s fields, or a [`Job`]'s (see [`Job::call`]).
#[derive(Clone, Copy)]
pub(crate) struct CallRef<'a> {
    pub(crate) id: u64,
    pub(crate) task: &'static TaskInfo,
    pub(crate) args: &'a Args,
    pub(crate) kind: Kind,
    pub(crate) timeout: Limit,
}

impl CallRef<'_> {
    /// The registered name of the task.
    pub(crate) fn name(&self) -> &'static str {
        self.task.name
    }

    /// Appends the frame header that goes before the arguments to `out`.
    pub(crate) fn append_header(&self, out: &mut Vec<u8>) {
        let chunk = self.kind == Kind::Chunk;
        wire::append_header(out, chunk, self.id, self.task.fingerprint, self.task.name);
    }

    /// The arguments' tail (empty if none).
    pub(crate) fn tail(&self) -> &[u8] {
        self.args.tail()
    }

    /// How many calls of its task this call runs: a map chunk runs each of
    /// its items as one (what a pipelined batch's window counts).
    pub(crate) fn weight(&self) -> usize {
        match self.kind {
            Kind::Single => 1,
            Kind::Chunk => crate::chunk::item_count(&self.args[..]),
        }
    }

    /// [`Error::Cancelled`] for this call.
    pub(crate) fn cancelled(&self) -> Error {
        Error::Cancelled {
            task: self.name().to_string(),
        }
    }

    /// [`Error::Terminated`] for this call.
    pub(crate) fn terminated(&self) -> Error {
        Error::Terminated {
            task: self.name().to_string(),
        }
    }
}

impl Call {
    /// What sending and settling the call need of it.
    pub(crate) fn as_ref(&self) -> CallRef<'_> {
        CallRef {
            id: self.id,
            task: self.task,
            args: &self.args,
            kind: self.kind,
            timeout: self.timeout,
        }
    }

    /// The registered name of the task.
    pub(crate) fn name(&self) -> &'static str {
        self.task.name
    }

    /// [`Error::Cancelled`] for this call.
    #[cfg(feature = "redis")]
    pub(crate) fn cancelled(&self) -> Error {
        self.as_ref().cancelled()
    }

    /// [`Error::Terminated`] for this call.
    pub(crate) fn terminated(&self) -> Error {
        self.as_ref().terminated()
    }

    /// The length of the encoded arguments, tail included.
    #[cfg(feature = "redis")]
    pub(crate) fn args_len(&self) -> usize {
        self.args.len() + self.args.tail().len()
    }

    /// Moves the tail to the end of the arguments, so that they are the
    /// whole encoding in one buffer (for a dispatcher that sends calls as
    /// one blob: Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn join_tail(&mut self) {
        if let Args::Split(_) = self.args {
            if let Args::Split(parts) = std::mem::take(&mut self.args) {
                let [mut head, tail] = *parts;
                head.extend_from_slice(&tail);
                self.args = Args::Heap(head);
            }
        }
    }
}

/// A call's encoded arguments. Most are a few bytes (a number, a short
/// string), kept inline rather than in an allocation of their own: one is
/// alive per queued call.
pub(crate) enum Args {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Vec<u8>),
    /// Arguments that end in a large `Vec<u8>`: the bytes before it (its
    /// length last), then the vector itself, sent as it is after them as
    /// the tail of a split frame (see `crate::task::Encoded`), never copied
    /// into the first. Boxed: rare, and the enum stays as small as a `Vec`.
    Split(Box<[Vec<u8>; 2]>),
}

impl Default for Args {
    fn default() -> Args {
        Args::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl From<Encoded> for Args {
    fn from(encoded: Encoded) -> Args {
        let Encoded { bytes, tail } = encoded;
        if tail.is_empty() {
            Args::from(bytes)
        } else {
            Args::Split(Box::new([bytes, tail]))
        }
    }
}

// The most bytes kept inline (the enum stays as small as a `Vec`): a
// task's, which decides what encoded arguments are worth shrinking.
use crate::task::INLINE_ARGS as INLINE;

impl From<Vec<u8>> for Args {
    /// Few bytes are copied inline, and their buffer kept by this thread for
    /// the next call's arguments (see `crate::task::ArgsEncoder::new`).
    fn from(vec: Vec<u8>) -> Args {
        if vec.len() > INLINE {
            return Args::Heap(vec);
        }
        let mut bytes = [0; INLINE];
        bytes[..vec.len()].copy_from_slice(&vec);
        let len = vec.len() as u8;
        crate::buffers::recycle(vec);
        Args::Inline { len, bytes }
    }
}

impl Args {
    /// The tail (empty unless [`Args::Split`]).
    pub(crate) fn tail(&self) -> &[u8] {
        match self {
            Args::Split(parts) => &parts[1],
            _ => &[],
        }
    }

    /// The buffers the arguments had, if any (for reuse).
    fn into_bufs(self) -> [Vec<u8>; 2] {
        match self {
            Args::Heap(vec) => [vec, Vec::new()],
            Args::Split(parts) => *parts,
            Args::Inline { .. } => [Vec::new(), Vec::new()],
        }
    }
}

impl std::ops::Deref for Args {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Args::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Args::Heap(vec) => vec,
            Args::Split(parts) => &parts[0],
        }
    }
}

impl Drop for Call {
    /// Large argument buffers are kept for reuse by the thread done with
    /// the call: the next large result it reads goes there instead of into
    /// fresh memory (a page fault per 4 KiB).
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.args));
    }
}

fn recycle(args: Args) {
    for buf in args.into_bufs() {
        crate::buffers::recycle(buf);
    }
}

/// A queued call: its arguments and the promise its outcome settles, whose
/// result cell holds the rest of the call: its id, its task, and one word
/// (its [`Limit`], whether it is a chunk ([`CHUNK`]) and whether a worker
/// died after taking it and before starting it ([`LOST`])).
pub(crate) struct Job {
    promise: Promise,
    args: Args,
}

/// The meta word's flag of a chunk of a map.
const CHUNK: u64 = 1 << 62;
/// The meta word's flag of a call whose worker died before starting it.
const LOST: u64 = 1 << 63;

impl Job {
    /// Queues `call`, settled through `promise` (made for it: its cell
    /// holds the call's id and task).
    pub(crate) fn new(mut call: Call, promise: Promise) -> Job {
        debug_assert_eq!(promise.call_id(), call.id);
        let chunk = if call.kind == Kind::Chunk { CHUNK } else { 0 };
        promise.call_meta().store(call.timeout.0 | chunk, Relaxed);
        Job {
            promise,
            args: std::mem::take(&mut call.args),
        }
    }

    fn meta(&self) -> u64 {
        self.promise.call_meta().load(Relaxed)
    }

    /// What sending and settling the call need of it.
    pub(crate) fn call(&self) -> CallRef<'_> {
        let meta = self.meta();
        CallRef {
            id: self.promise.call_id(),
            task: self.promise.call_task(),
            args: &self.args,
            kind: if meta & CHUNK != 0 {
                Kind::Chunk
            } else {
                Kind::Single
            },
            timeout: Limit(meta & LIMIT_BITS),
        }
    }

    /// The call's id.
    pub(crate) fn id(&self) -> u64 {
        self.promise.call_id()
    }

    /// Whether a worker died after taking the call and before starting it;
    /// one such death sends it back to the queue, a second fails it (see
    /// `crate::pool::exchange`).
    pub(crate) fn lost_unstarted(&self) -> bool {
        self.meta() & LOST != 0
    }

    /// Records that a worker died after taking the call and before starting it.
    pub(crate) fn mark_lost_unstarted(&mut self) {
        self.promise.call_meta().fetch_or(LOST, Relaxed);
    }

    /// The call again, and its promise (for a dispatcher that keeps calls
    /// its own way: Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn into_call(mut self) -> (Call, Promise) {
        let call = self.call();
        let (id, task, kind, timeout) = (call.id, call.task, call.kind, call.timeout);
        let args = std::mem::take(&mut self.args);
        let call = Call {
            id,
            task,
            args,
            kind,
            timeout,
        };
        (call, std::mem::take(&mut self.promise))
    }

    /// Settles the job with `outcome`.
    pub(crate) fn complete(mut self, outcome: crate::result::Outcome) {
        std::mem::take(&mut self.promise).complete(outcome);
    }

    /// Settles the job as cancelled.
    pub(crate) fn cancelled(self) {
        let error = self.call().cancelled();
        self.complete(Err(error));
    }
}

impl Drop for Job {
    /// As [`Call`]'s.
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.args));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_stay_as_small_as_a_vec() {
        // One is alive per queued call: the tail variant must not grow it.
        assert_eq!(std::mem::size_of::<Args>(), std::mem::size_of::<Vec<u8>>());
        // One queued job per pending task: its promise and arguments (the
        // call's id, task and limit are in the promise's cell).
        assert_eq!(std::mem::size_of::<Job>(), 32);
    }

    #[test]
    fn small_arguments_reuse_one_buffer_and_keep_no_large_one_busy() {
        // Inline arguments hand their buffer back to the thread, and the
        // next call's arguments are encoded in it.
        let first = crate::task::ArgsEncoder::new()
            .push(&7u64)
            .finish()
            .unwrap();
        let buffer = first.bytes.as_ptr();
        assert!(matches!(Args::from(first), Args::Inline { len: 1, .. }));
        let second = crate::task::ArgsEncoder::new()
            .push(&8u64)
            .finish()
            .unwrap();
        assert_eq!(second.bytes.as_ptr(), buffer);
        drop(Args::from(second));
        // Arguments too long to be inline, encoded in a roomy recycled
        // buffer, keep a copy of their size: a queued call holds no more.
        crate::buffers::recycle(Vec::with_capacity(60_000));
        let text = "x".repeat(100);
        let encoded = crate::task::ArgsEncoder::new()
            .push(&text)
            .finish()
            .unwrap();
        assert!(encoded.bytes.capacity() <= 2 * encoded.bytes.len().max(128));
        assert!(matches!(Args::from(encoded), Args::Heap(_)));
        assert_eq!(crate::buffers::small_buffer().capacity(), 60_000);
    }

    #[test]
    fn arguments_ending_in_a_large_vector_leave_the_threads_large_spare_alone() {
        // The result of the last large call left a spare; the next call's
        // few bytes before its large tail must not keep it (its result
        // is read into it: a round trip of N bytes peaks at 2N, not 3N).
        crate::buffers::recycle(vec![0u8; 4 << 20]);
        struct M;
        impl crate::task::ValueArg<0> for M {
            type Type = Vec<u8>;
        }
        let encoded = crate::task::ArgsEncoder::new()
            .value::<M, 0>(vec![1u8; 2 << 20])
            .finish()
            .unwrap();
        assert_eq!(encoded.tail.len(), 2 << 20);
        assert!(
            encoded.bytes.capacity() < 1024,
            "{}",
            encoded.bytes.capacity()
        );
        let spare = crate::buffers::spare_buffer(1 << 20).expect("the spare, given back");
        assert_eq!(spare.capacity(), 4 << 20);
    }

    #[test]
    fn a_limit_keeps_its_duration_and_the_longest_is_not_none() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(Limit::from(second).get(), second);
        assert_eq!(Limit::from(None), Limit::NONE);
        assert_eq!(Limit::from(None).get(), None);
        // Longer than 62 bits of nanoseconds: the longest kept, not "none".
        let longest = Limit::from(Some(Duration::MAX));
        assert_ne!(longest, Limit::NONE);
        assert_eq!(longest.0, LIMIT_BITS - 1);
    }

    #[test]
    fn a_tail_travels_apart_from_the_bytes_before_it() {
        let split = Args::from(Encoded {
            bytes: vec![1, 2],
            tail: vec![9; 100],
        });
        assert_eq!((&split[..], split.tail().len()), (&[1u8, 2][..], 100));
        let plain = Args::from(Encoded::from(vec![7; 40]));
        assert_eq!((plain.len(), plain.tail().len()), (40, 0));
        let inline = Args::from(vec![3]);
        assert_eq!((&inline[..], inline.tail()), (&[3u8][..], &[][..]));
    }

    #[cfg(feature = "redis")]
    #[test]
    fn joining_the_tail_keeps_every_byte() {
        let task = crate::task::intern("t", "fn()", 0);
        let call = |args: Args| Call {
            id: 0,
            task,
            args,
            kind: Kind::Single,
            timeout: None.into(),
        };
        let mut split = call(Args::from(Encoded {
            bytes: vec![1, 2],
            tail: vec![9; 3],
        }));
        split.join_tail();
        assert_eq!(
            (&split.args[..], split.args.tail()),
            (&[1u8, 2, 9, 9, 9][..], &[][..])
        );
        // Arguments without a tail are left as they are.
        for bytes in [vec![7u8; 3], vec![8u8; 40]] {
            let mut plain = call(Args::from(bytes.clone()));
            plain.join_tail();
            assert_eq!(&plain.args[..], &bytes[..]);
        }
    }
}
