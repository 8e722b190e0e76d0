//! One call, from the generated code to the wire: which task, its encoded
//! arguments, whether it is a single call or a chunk of a map, and its time
//! limit. A queued call is a [`Job`]: the call and the [`Promise`] its
//! outcome settles.

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
    /// with one outcome per item (RESULTS); see [`crate::map::chunk`].
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
    /// How many workers died (not killed for a cancel) after taking the
    /// call and before starting it; one such death sends it back to the
    /// queue, a second fails it (see `crate::pool::exchange`). (In the
    /// padding after `kind`: the call stays 56 bytes.)
    pub(crate) lost_unstarted: u8,
    /// How long the worker may run it.
    pub(crate) timeout: Limit,
}

/// A time limit in 8 bytes, not an `Option<Duration>`'s 16 (one is alive
/// per queued call): nanoseconds, `u64::MAX` for none (584 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(u64);

impl Limit {
    /// No limit.
    pub(crate) const NONE: Limit = Limit(u64::MAX);

    /// The limit as a duration, `None` for none.
    pub(crate) fn get(self) -> Option<Duration> {
        (self != Limit::NONE).then(|| Duration::from_nanos(self.0))
    }
}

impl From<Option<Duration>> for Limit {
    fn from(limit: Option<Duration>) -> Limit {
        match limit {
            Some(d) => Limit(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)),
            None => Limit::NONE,
        }
    }
}

impl Call {
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

    /// The length of the encoded arguments, tail included.
    #[cfg(feature = "redis")]
    pub(crate) fn args_len(&self) -> usize {
        self.args.len() + self.tail().len()
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

/// The most bytes kept inline (the enum stays as small as a `Vec`).
const INLINE: usize = 15;

impl From<Vec<u8>> for Args {
    fn from(vec: Vec<u8>) -> Args {
        if vec.len() > INLINE {
            return Args::Heap(vec);
        }
        let mut bytes = [0; INLINE];
        bytes[..vec.len()].copy_from_slice(&vec);
        Args::Inline {
            len: vec.len() as u8,
            bytes,
        }
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
        for buf in std::mem::take(&mut self.args).into_bufs() {
            crate::buffers::recycle(buf);
        }
    }
}

/// A queued call and the promise its outcome settles.
pub(crate) struct Job {
    pub(crate) call: Call,
    pub(crate) promise: Promise,
}

impl Job {
    /// Settles the job with `outcome`.
    pub(crate) fn complete(self, outcome: crate::result::Outcome) {
        self.promise.complete(outcome);
    }

    /// Settles the job as cancelled.
    pub(crate) fn cancelled(self) {
        let error = self.call.cancelled();
        self.complete(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_stay_as_small_as_a_vec() {
        // One is alive per queued call: the tail variant must not grow it.
        assert_eq!(std::mem::size_of::<Args>(), std::mem::size_of::<Vec<u8>>());
        // Nor may the death count grow the call (or the queue's entry).
        assert_eq!(std::mem::size_of::<Call>(), 56);
        assert_eq!(std::mem::size_of::<Job>(), 64);
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
            lost_unstarted: 0,
            timeout: None.into(),
        };
        let mut split = call(Args::from(Encoded {
            bytes: vec![1, 2],
            tail: vec![9; 3],
        }));
        split.join_tail();
        assert_eq!((&split.args[..], split.tail()), (&[1u8, 2, 9, 9, 9][..], &[][..]));
        // Arguments without a tail are left as they are.
        for bytes in [vec![7u8; 3], vec![8u8; 40]] {
            let mut plain = call(Args::from(bytes.clone()));
            plain.join_tail();
            assert_eq!(&plain.args[..], &bytes[..]);
        }
    }
}
