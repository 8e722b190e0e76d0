//! How a [`Pool`] handle makes calls and hands them to its dispatcher:
//! queued ([`Pool::submit`], or for a running map holding an
//! [`Admission`]), run at once from the calling thread when a worker is
//! idle ([`Pool::call`]), or started for a node from a call read from Redis.

use std::sync::atomic::Ordering;
#[cfg(feature = "redis")]
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::closing::{Lazy, Ticket};
use super::Pool;
use crate::call::{Args, Call, Job, Kind};
use crate::error::Error;
#[cfg(feature = "redis")]
use crate::result::CancelOutcome;
use crate::result::{self, AsyncResult, Hub};
use crate::task::{Encoded, TaskInfo};
use crate::wire::{self, Body};

/// A running `map`'s or `imap`'s leave to queue its chunks after
/// [`Pool::close`] (see `closing`). Dropping it gives it back; the last one
/// given back after `close` closes the dispatcher. It holds a handle of
/// its pool: an `imap` may outlive the caller's.
pub(crate) struct Admission {
    pool: Pool,
    ticket: Option<Ticket>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        // (In a copy made by `fork`, the closing state is the parent's.)
        if let Some(ticket) = self.ticket.take().filter(|_| !self.pool.in_copy()) {
            if self.pool.inner.closing.release(ticket) {
                self.pool.inner.dispatcher.close();
            }
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Admission").field(&self.ticket).finish()
    }
}

impl Pool {
    /// A call of `task` through this handle, or why it cannot be sent.
    fn make_call(
        &self,
        task: &'static TaskInfo,
        kind: Kind,
        args: Result<Encoded, String>,
    ) -> Result<Call, Error> {
        // A name the wire cannot carry whole is refused, not cut short.
        if task.name.len() > wire::MAX_NAME_LEN {
            return Err(Error::Encode {
                message: format!(
                    "the task name is {} bytes; at most {} fit in a call",
                    task.name.len(),
                    wire::MAX_NAME_LEN
                ),
                task: task.name.to_string(),
                what: "task name",
            });
        }
        let args = args.map_err(|message| Error::Encode {
            task: task.name.to_string(),
            what: "arguments",
            message,
        })?;
        self.new_call(task, kind, args, self.task_timeout())
    }

    /// A call with the next id, unless its time limit is zero.
    fn new_call(
        &self,
        task: &'static TaskInfo,
        kind: Kind,
        args: impl Into<Args>,
        timeout: Option<Duration>,
    ) -> Result<Call, Error> {
        zero_limit(task, timeout)?;
        Ok(Call {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            task,
            args: args.into(),
            kind,
            timeout: timeout.into(),
        })
    }

    /// A call that came from elsewhere (a node's call read from Redis), with
    /// this pool's time limit unless it brings its own; `UnknownTask` for a
    /// name this program does not register and `SignatureMismatch` for a
    /// fingerprint its task does not accept (as its worker would say), so
    /// only registered names and accepted fingerprints ever become calls
    /// (and are interned: anyone who can write the stream could otherwise
    /// grow the table with made-up fingerprints).
    #[cfg(feature = "redis")]
    pub(crate) fn foreign_call(
        &self,
        task: &str,
        fingerprint: u64,
        kind: Kind,
        args: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Call, Error> {
        let registration = crate::registry::lookup(task)?;
        let signature = "<the signature of a remote caller>";
        if !registration.accepts(fingerprint) {
            return Err(Error::SignatureMismatch {
                task: registration.info.name.to_string(),
                caller: signature.to_string(),
                worker: registration.info.signature.to_string(),
            });
        }
        let task = crate::task::intern(registration.info.name, signature, fingerprint);
        self.new_call(task, kind, args, timeout.or(self.inner.config.task_timeout))
    }

    /// Queues `call` and calls `done` with its outcome, on the thread that
    /// settles it (it must be quick). Always through the queue, not
    /// `apply`'s direct path: a queued or running call can be cancelled by
    /// id ([`cancel_call`](Self::cancel_call)), one on the direct path
    /// cannot; and quick calls queued together are pipelined.
    #[cfg(feature = "redis")]
    pub(crate) fn start_call(
        &self,
        call: Call,
        done: impl FnOnce(Arc<result::Outcome>) + Send + 'static,
    ) {
        let (promise, result) = result::pending::<()>(call.task, Hub::default(), call.id);
        result.listen_outcome(Box::new(done));
        self.inner.dispatcher.submit(Job::new(call, promise));
    }

    /// Cancels the call `id` made by [`foreign_call`](Self::foreign_call).
    #[cfg(feature = "redis")]
    pub(crate) fn cancel_call(&self, id: u64) -> CancelOutcome {
        self.inner.dispatcher.cancel(id)
    }

    /// Holds the calls started by [`start_call`](Self::start_call) that
    /// have not reached a worker while `gate` says no (a node's local pool,
    /// while the node cannot confirm it is still a member).
    #[cfg(feature = "redis")]
    pub(crate) fn set_start_gate(&self, gate: impl Fn() -> bool + Send + Sync + 'static) {
        self.inner.dispatcher.set_start_gate(Box::new(gate));
    }

    /// Queues a call of `task` with encoded `args`; its outcome decodes as `R`.
    pub(crate) fn submit<R: DeserializeOwned>(
        &self,
        task: &'static TaskInfo,
        kind: Kind,
        args: Result<Encoded, String>,
    ) -> AsyncResult<R> {
        if let Err(e) = self.foreign(task.name) {
            // (A hub of its own: the pool's callback thread is the parent's.)
            return result::ready(task, Hub::default(), Err(e));
        }
        if self.inner.closing.is_closing() {
            return result::ready(task, self.hub(), Err(closed(task)));
        }
        self.submit_now(task, kind, args)
    }

    /// A ticket for a `map` or `imap` starting now, which lets it queue its
    /// chunks after [`close`](Self::close) (Python's `map` queues them all
    /// before `close` can come); `None` once the pool is closing.
    pub(crate) fn admit(&self, kind: Lazy) -> Option<Admission> {
        // (Never in a copy made by `fork`: see `in_copy`.)
        if self.in_copy() {
            return None;
        }
        let ticket = self.inner.closing.admit(kind)?;
        Some(Admission {
            pool: self.clone(),
            ticket: Some(ticket),
        })
    }

    /// [`submit`](Self::submit) for a map holding `admission`: taken even
    /// once the pool is closing (not once its dispatcher is closed).
    pub(crate) fn submit_admitted<R: DeserializeOwned>(
        &self,
        admission: &Admission,
        task: &'static TaskInfo,
        kind: Kind,
        args: Result<Encoded, String>,
    ) -> AsyncResult<R> {
        debug_assert!(std::ptr::eq(
            admission.pool.inner.as_ref(),
            self.inner.as_ref()
        ));
        self.submit_now(task, kind, args)
    }

    fn submit_now<R: DeserializeOwned>(
        &self,
        task: &'static TaskInfo,
        kind: Kind,
        args: Result<Encoded, String>,
    ) -> AsyncResult<R> {
        let hub = self.hub();
        match self.make_call(task, kind, args) {
            Ok(call) => {
                let (promise, result) = result::pending(task, hub, call.id);
                self.inner.dispatcher.submit(Job::new(call, promise));
                result
            }
            Err(error) => result::ready(task, hub, Err(error)),
        }
    }

    /// Runs a call and waits for its result; used by the generated
    /// `apply_<fn>`. When the dispatcher can run it from the calling thread
    /// at once (a local pool with an idle worker and nothing queued), it
    /// does; otherwise the call queues like `apply_async`.
    pub(crate) fn call<R: DeserializeOwned + 'static>(
        &self,
        task: &'static TaskInfo,
        args: Result<Encoded, String>,
        decode: fn(Body) -> Result<R, String>,
    ) -> Result<R, Error> {
        self.foreign(task.name)?;
        if self.inner.closing.is_closing() {
            return Err(closed(task));
        }
        let call = self.make_call(task, Kind::Single, args)?;
        let call = match self.inner.dispatcher.run_here(call) {
            Ok(outcome) => {
                return decode(outcome?).map_err(|message| Error::Decode {
                    task: task.name.to_string(),
                    what: "result",
                    message,
                });
            }
            Err(call) => call,
        };
        let (promise, result) = result::pending(task, self.hub(), call.id);
        self.inner.dispatcher.submit(Job::new(call, promise));
        result.get()
    }
}

/// The error of a call refused because the pool is closed.
fn closed(task: &TaskInfo) -> Error {
    Error::PoolClosed {
        task: task.name.to_string(),
    }
}

/// A zero time limit (a handle's, or a remote caller's: the builder refuses
/// one) is past before any call can start: `Timeout` at once, so that none
/// is sent and no worker is killed (a quick call would race the limit).
fn zero_limit(task: &TaskInfo, timeout: Option<Duration>) -> Result<(), Error> {
    match timeout.filter(Duration::is_zero) {
        Some(limit) => Err(Error::Timeout {
            task: task.name.to_string(),
            limit,
        }),
        None => Ok(()),
    }
}
