//! The pool's initializer (Python's `initializer` / `initargs`): a registered
//! task run once in each new worker before it counts as ready.
//!
//! It travels as an ordinary call (id 0, which no job uses), so the worker
//! needs no special mode: its panic is caught and reported like any task's.

use std::sync::Arc;
use std::time::Duration;

use super::exchange::{remote_error, DEATH_GRACE};
use crate::error::Error;
use crate::link::Link;
use crate::wire::{self, Body, FrameError, Reply};

/// The call id of the initializer; jobs are numbered from 1.
const INIT_ID: u64 = 0;

/// Which task to run in each new worker, and its encoded arguments.
#[derive(Debug, Clone)]
pub(crate) struct Initializer {
    task: Arc<str>,
    args: Arc<[u8]>,
    /// The arguments' types as the caller wrote them, `fn(u64,)`: checked
    /// against the registration before any worker starts.
    arg_types: String,
}

impl Initializer {
    pub(crate) fn new(task: &str, args: Vec<u8>, arg_types: String) -> Self {
        Initializer {
            task: Arc::from(task),
            args: Arc::from(args),
            arg_types,
        }
    }

    /// Why the registered task cannot take these arguments, if it cannot.
    pub(crate) fn type_mismatch(&self, registered: &str) -> Option<String> {
        let theirs = registered.split_once(" -> ").map_or(registered, |(a, _)| a);
        (theirs != self.arg_types).then(|| {
            format!(
                "the initializer was given arguments `{}` but `{}` takes `{theirs}`{}",
                self.arg_types,
                self.task,
                crate::error::by_name_hint(&self.arg_types, theirs)
            )
        })
    }

    pub(crate) fn task(&self) -> &str {
        &self.task
    }

    /// Why its call cannot be sent under a frame limit of `max` bytes, if
    /// it cannot (its arguments, with the call's header, are larger).
    pub(crate) fn too_large_for(&self, max: usize) -> Option<String> {
        let len = wire::call_header(INIT_ID, 0, &self.task).len() + self.args.len();
        (len > max).then(|| too_large(len, max))
    }
}

/// What a call of the initializer over the frame limit is told.
fn too_large(len: usize, max: usize) -> String {
    format!(
        "its arguments, {len} bytes as they travel, exceed the frame limit of {max} bytes \
         (max_frame_bytes)"
    )
}

/// What the value `init` returned says of a failure (an `Err`), and where
/// the initializer is defined.
fn returned_err(init: &Initializer, bytes: &Body) -> Option<(String, String)> {
    let registration = crate::registry::lookup(&init.task).ok()?;
    let message = (registration.returned_err)(&bytes.contiguous())?;
    Some((message, registration.location()))
}

/// Runs `init` on the freshly started worker behind `link`. Returns the link
/// once the initializer returned; otherwise the worker is killed and reaped
/// and the error says why.
pub(crate) fn run(
    mut link: Box<dyn Link>,
    init: &Initializer,
    limit: Duration,
) -> Result<Box<dyn Link>, Error> {
    let failed = |message: String, location: Option<String>| Error::InitializerFailed {
        task: init.task.to_string(),
        message,
        location,
    };
    // Zero fingerprint: called by name, like Python's initializer.
    let header = wire::call_header(INIT_ID, 0, &init.task);
    let answer = match link.send(&[&header, &init.args], &[]) {
        Ok(()) => link.recv(Some(limit)),
        // (`validate` refuses such arguments before any worker starts.)
        Err(FrameError::TooLarge { len, max }) => {
            link.kill();
            link.finish(Duration::ZERO);
            return Err(failed(too_large(len, max), None));
        }
        Err(e) => Err(e),
    };
    let why = match answer.map(wire::parse_reply) {
        // An `Err` it returned is a failure, as a panic is (Python's
        // initializer fails by raising).
        Ok(Ok(Reply::Value { id: INIT_ID, bytes })) => match returned_err(init, &bytes) {
            None => return Ok(link),
            Some((message, location)) => failed(message, Some(location)),
        },
        Ok(Ok(Reply::Panic { report, .. })) => failed(
            format!("it panicked: {}", report.message),
            Some(report.location),
        ),
        Ok(Ok(Reply::Failed { error, .. })) => {
            let error = remote_error(&init.task, "", error);
            failed(error.to_string(), None)
        }
        Ok(Ok(other)) => failed(format!("unexpected reply {other:?}"), None),
        Ok(Err(message)) => failed(format!("corrupt reply: {message}"), None),
        Err(FrameError::TimedOut) => failed(format!("it did not return within {limit:?}"), None),
        Err(FrameError::TooLarge { len, max }) => failed(
            format!("its reply of {len} bytes exceeds the frame limit of {max} bytes"),
            None,
        ),
        Err(FrameError::Broken(why)) => failed(format!("it broke the protocol: {why}"), None),
        Err(_) => {
            let pid = link.pid();
            let status = link.finish(DEATH_GRACE);
            return Err(failed(
                format!("worker process {pid} died ({status}) while running it"),
                None,
            ));
        }
    };
    link.kill();
    link.finish(Duration::ZERO);
    Err(why)
}
