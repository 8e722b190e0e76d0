//! One call, from the generated code to the wire: which task, its encoded
//! arguments, whether it is a single call or a chunk of a map, and its time
//! limit. A queued call is a [`Job`]: the call and the [`Promise`] its
//! outcome settles.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::result::Promise;
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
    /// The registered name.
    pub(crate) task: Arc<str>,
    /// The caller's signature fingerprint (0: unchecked), checked by the worker.
    pub(crate) fingerprint: u64,
    /// The caller's signature, for the message of a mismatch.
    pub(crate) signature: &'static str,
    /// The encoded arguments (for a chunk: its items).
    pub(crate) args: Vec<u8>,
    /// The arguments' tail: a large last `Vec<u8>` argument, sent as it is
    /// after `args` (see `crate::task::Encoded`); usually none. (A boxed
    /// slice: a queued job stays small.)
    pub(crate) tail: Option<Box<[u8]>>,
    pub(crate) kind: Kind,
    /// How long the worker may run it (`None`: no limit).
    pub(crate) timeout: Option<Duration>,
}

impl Call {
    /// The frame header that goes before the arguments.
    pub(crate) fn header(&self) -> Vec<u8> {
        match self.kind {
            Kind::Single => wire::call_header(self.id, self.fingerprint, &self.task),
            Kind::Chunk => wire::batch_header(self.id, self.fingerprint, &self.task),
        }
    }

    /// The arguments' tail (empty if none).
    pub(crate) fn tail(&self) -> &[u8] {
        self.tail.as_deref().unwrap_or(&[])
    }

    /// The length of the encoded arguments, tail included.
    #[cfg(feature = "redis")]
    pub(crate) fn args_len(&self) -> usize {
        self.args.len() + self.tail().len()
    }

    /// Moves the tail to the end of `args`, so `args` alone is the whole
    /// encoding (for a dispatcher that sends calls as one blob: Redis).
    #[cfg(feature = "redis")]
    pub(crate) fn join_tail(&mut self) {
        if let Some(tail) = self.tail.take() {
            self.args.extend_from_slice(&tail);
        }
    }

    /// [`Error::Cancelled`] for this call.
    pub(crate) fn cancelled(&self) -> Error {
        Error::Cancelled {
            task: self.task.to_string(),
        }
    }

    /// [`Error::Terminated`] for this call.
    pub(crate) fn terminated(&self) -> Error {
        Error::Terminated {
            task: self.task.to_string(),
        }
    }
}

impl Drop for Call {
    /// Large argument buffers are kept for reuse by the thread done with
    /// the call: the next large result it reads goes there instead of into
    /// fresh memory (a page fault per 4 KiB).
    fn drop(&mut self) {
        crate::buffers::recycle(std::mem::take(&mut self.args));
        if let Some(tail) = self.tail.take() {
            crate::buffers::recycle(tail.into_vec());
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
