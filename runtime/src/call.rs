//! One call, from the generated code to the wire: which task, its encoded
//! arguments, whether it is a single call or a chunk of a map, and its time
//! limit. A queued call is a [`Job`]: the call and the [`Promise`] its
//! outcome settles.

use std::time::Duration;

use crate::error::Error;
use crate::result::Promise;
use crate::task::TaskInfo;
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
    /// The encoded arguments (for a chunk: its items).
    pub(crate) args: Vec<u8>,
    pub(crate) kind: Kind,
    /// How long the worker may run it (`None`: no limit).
    pub(crate) timeout: Option<Duration>,
}

impl Call {
    /// The registered name of the task.
    pub(crate) fn name(&self) -> &'static str {
        self.task.name
    }

    /// The frame header that goes before the arguments.
    pub(crate) fn header(&self) -> Vec<u8> {
        let (id, task) = (self.id, self.task);
        match self.kind {
            Kind::Single => wire::call_header(id, task.fingerprint, task.name),
            Kind::Chunk => wire::batch_header(id, task.fingerprint, task.name),
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
