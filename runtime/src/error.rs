//! The one error type every procpool operation returns.

mod exit;
mod wording;

use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use exit::ExitInfo;
pub(crate) use wording::by_name_hint;
use wording::{for_task, location_suffix, suggestion_suffix, task_prefix};

/// Everything that can go wrong when a task runs in a worker process.
///
/// Every variant that concerns one task names it (`task`), so a message read
/// in a log says which call failed. `Error` is `Clone` so that a result can
/// be handed both to an `error_callback` and to the caller of `get()`.
///
/// ```
/// use procpool::Error;
///
/// fn describe(e: &Error) -> &'static str {
///     match e {
///         Error::Panic { .. } => "the task panicked; the worker lives on",
///         Error::WorkerDied { .. } => "the worker process died running it",
///         Error::Timeout { .. } | Error::WaitTimeout { .. } => "too slow",
///         _ => "something else",
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked in its worker. The worker survives and stays usable.
    #[error("task `{task}` panicked at {location}: {message}")]
    Panic {
        /// Registered name of the task.
        task: String,
        /// The panic message.
        message: String,
        /// `file:line:col` of the panic.
        location: String,
        /// The worker's backtrace from the panic down to the task function,
        /// captured when `RUST_BACKTRACE` is set in the worker's environment.
        backtrace: Option<String>,
    },

    /// The worker process died while it held the task (killed, crashed or
    /// exited). A replacement worker is started; other tasks are unaffected.
    #[error("task `{task}`: worker process {pid} died ({status}) while running it")]
    WorkerDied {
        /// Registered name of the task.
        task: String,
        /// Process id of the worker that died.
        pid: u32,
        /// How it ended.
        status: ExitInfo,
    },

    /// The task ran past its time limit: its worker, if it had started it,
    /// was killed and replaced. (Under a zero limit, which only
    /// [`Pool::with_task_timeout`](crate::Pool::with_task_timeout) can set,
    /// the call fails at once and is never sent.)
    #[error("task `{task}` ran past its time limit of {limit:?}")]
    Timeout {
        /// Registered name of the task.
        task: String,
        /// The limit that was exceeded.
        limit: Duration,
    },

    /// [`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout) or an
    /// imap's `next_timeout` ([`Imap::next_timeout`](crate::Imap::next_timeout))
    /// stopped waiting. The task itself goes on and its result can still be
    /// collected.
    #[error("task `{task}` has not finished after {waited:?}; it goes on (queued or running), and its result can still be collected")]
    WaitTimeout {
        /// Registered name of the task.
        task: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// The task was submitted after [`Pool::close`](crate::Pool::close).
    #[error("task `{task}` was not run: the pool is closed")]
    PoolClosed {
        /// Registered name of the task.
        task: String,
    },

    /// The task was cancelled ([`AsyncResult::cancel`](crate::AsyncResult::cancel),
    /// [`Pool::close_and_cancel`](crate::Pool::close_and_cancel)) before it
    /// finished: it never ran, or its worker was stopped and replaced.
    #[error("task `{task}` was cancelled")]
    Cancelled {
        /// Registered name of the task.
        task: String,
    },

    /// [`Pool::terminate`](crate::Pool::terminate) stopped the pool before
    /// the task finished.
    #[error("task `{task}` did not finish: the pool was terminated")]
    Terminated {
        /// Registered name of the task.
        task: String,
    },

    /// No function is registered under this name in the worker's program.
    #[error(
        "no task is registered under the name `{task}`{}",
        suggestion_suffix(task, suggestions)
    )]
    UnknownTask {
        /// The name that was asked for.
        task: String,
        /// Registered names that look alike, nearest first.
        suggestions: Vec<String>,
    },

    /// Two functions were registered under the same name.
    #[error("two tasks are registered under the name `{task}`: one at {first}, one at {second}; give one of them `#[pool_task(name = \"...\")]`")]
    DuplicateTask {
        /// The contested name.
        task: String,
        /// `file:line` of one registration.
        first: String,
        /// `file:line` of the other.
        second: String,
    },

    /// The caller's and the worker's idea of the task's signature differ
    /// (for instance, the caller was built from other sources).
    #[error(
        "task `{task}`: the caller's signature `{caller}` differs from the worker's `{worker}`{}",
        by_name_hint(caller, worker)
    )]
    SignatureMismatch {
        /// Registered name of the task.
        task: String,
        /// Signature the caller was compiled with.
        caller: String,
        /// Signature the worker was compiled with.
        worker: String,
    },

    /// Serializing the task's arguments or result failed.
    #[error("task `{task}`: could not encode its {what}: {message}")]
    Encode {
        /// Registered name of the task.
        task: String,
        /// `"arguments"` or `"result"`.
        what: &'static str,
        /// What went wrong, in words: the encoder's, or the message of the
        /// type's own `Serialize` impl as written.
        message: String,
    },

    /// Deserializing the task's arguments or result failed.
    #[error("task `{task}`: could not decode its {what}: {message}")]
    Decode {
        /// Registered name of the task.
        task: String,
        /// `"arguments"` or `"result"`.
        what: &'static str,
        /// What went wrong, in words: the decoder's (bytes cut short, an
        /// integer or `bool` out of range, a variant that does not exist),
        /// or the message of the type's own `Deserialize` impl as written.
        message: String,
    },

    /// A frame on the task channel was larger than the configured maximum.
    #[error("task `{task}`: a frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Registered name of the task.
        task: String,
        /// Length announced or needed.
        len: u64,
        /// The configured limit ([`PoolBuilder::max_frame_bytes`](crate::PoolBuilder::max_frame_bytes)).
        max: u64,
    },

    /// The bytes on the task channel made no sense (cut short or corrupt).
    #[error("task `{task}`: protocol error on the task channel: {message}")]
    Protocol {
        /// Registered name of the task.
        task: String,
        /// What was wrong.
        message: String,
    },

    /// The pool's initializer
    /// ([`PoolBuilder::initializer`](crate::PoolBuilder::initializer)) panicked
    /// or could not run in a new worker. [`build`](crate::PoolBuilder::build)
    /// returns it, and so does a task whose replacement worker's initializer
    /// failed; the worker is not used.
    #[error(
        "the pool's initializer `{task}` failed{}: {message}",
        location_suffix(location)
    )]
    InitializerFailed {
        /// Registered name of the initializer task.
        task: String,
        /// What went wrong (the panic message, or why it could not run).
        message: String,
        /// `file:line:col` of its panic, if it panicked.
        location: Option<String>,
    },

    /// A worker process could not be started, or failed before its first task.
    /// (A start that failed fast, e.g. a worker killed while starting, is
    /// tried up to three times for a queued task before this is reported.)
    #[error("could not start a worker process{}: {message}", for_task(task))]
    WorkerStart {
        /// The task that needed the worker; empty when the pool itself was
        /// starting ([`PoolBuilder::build`](crate::PoolBuilder::build)).
        task: String,
        /// What went wrong, with a hint where one is known.
        message: String,
    },

    /// The pool was configured with values it cannot use.
    #[error("invalid pool configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },

    /// A pool was created before [`init`](crate::init) ran in this process.
    #[error("procpool::init() has not been called: call it first in main (or put #[procpool::main] on main; in test binaries use procpool::enable_test_support!())")]
    NotInitialized,

    /// The node that held the task was lost before it reported: it died, or
    /// it was cut off from Redis for longer than its heartbeat's time to
    /// live (pools built with [`PoolBuilder::redis`](crate::PoolBuilder),
    /// feature `redis`). By default the task is not run again (at most
    /// once, as locally); `PoolBuilder::redeliver(n)` runs it again up to
    /// `n` times first. Whatever the lost node reports later is ignored.
    #[error("task `{task}`: node {node} was lost (it died or was cut off from Redis) while it held the task")]
    NodeLost {
        /// Registered name of the task.
        task: String,
        /// The lost node's name in the cluster (`n<id>.<tag>@<host>:<pid>`); a
        /// node that comes back takes a new one.
        node: String,
    },

    /// Redis, the broker of a pool built with `PoolBuilder::redis`
    /// (feature `redis`), could not be used: see [`BrokerReason`]. Messages
    /// never show the password of the URL.
    #[error("{}Redis: {message}", task_prefix(task))]
    Broker {
        /// The task the error concerns; empty when it concerns none (e.g.
        /// [`build`](crate::PoolBuilder::build) could not connect).
        task: String,
        /// What went wrong, as a type.
        reason: BrokerReason,
        /// What went wrong, for a human (the URL shown without password).
        message: String,
    },

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What procpool was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Which kind of failure an [`Error`] is, without its details: handy to
/// count failures, or to match on when the fields do not matter.
///
/// ```
/// use procpool::{Error, ErrorKind};
///
/// let e = Error::PoolClosed { task: "my_crate::square".into() };
/// assert_eq!(e.kind(), ErrorKind::PoolClosed);
/// assert_eq!(e.task(), Some("my_crate::square"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Panic`]
    Panic,
    /// [`Error::WorkerDied`]
    WorkerDied,
    /// [`Error::Timeout`]
    Timeout,
    /// [`Error::WaitTimeout`]
    WaitTimeout,
    /// [`Error::PoolClosed`]
    PoolClosed,
    /// [`Error::Cancelled`]
    Cancelled,
    /// [`Error::Terminated`]
    Terminated,
    /// [`Error::UnknownTask`]
    UnknownTask,
    /// [`Error::DuplicateTask`]
    DuplicateTask,
    /// [`Error::SignatureMismatch`]
    SignatureMismatch,
    /// [`Error::Encode`]
    Encode,
    /// [`Error::Decode`]
    Decode,
    /// [`Error::FrameTooLarge`]
    FrameTooLarge,
    /// [`Error::Protocol`]
    Protocol,
    /// [`Error::InitializerFailed`]
    InitializerFailed,
    /// [`Error::WorkerStart`]
    WorkerStart,
    /// [`Error::Config`]
    Config,
    /// [`Error::NotInitialized`]
    NotInitialized,
    /// [`Error::Io`]
    Io,
    /// [`Error::NodeLost`]
    NodeLost,
    /// [`Error::Broker`]
    Broker,
}

/// Why Redis could not be used ([`Error::Broker`]).
///
/// ```
/// use procpool::{BrokerReason, Error, ErrorKind};
///
/// let e = Error::Broker {
///     task: "my_crate::square".into(),
///     reason: BrokerReason::Unreachable,
///     message: "redis://:***@10.0.0.5:6379/0 unreachable for 15s".into(),
/// };
/// assert_eq!(e.kind(), ErrorKind::Broker);
/// assert_eq!(e.task(), Some("my_crate::square"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BrokerReason {
    /// No connection could be made, or it kept failing, for the whole
    /// retry budget.
    Unreachable,
    /// Redis answered with an error retrying cannot change: a wrong
    /// password or ACL user, a command the ACL forbids, an invalid URL, a
    /// Redis too old for the commands used.
    Refused,
    /// Redis lost the call in a restart: it had acknowledged a write it had
    /// not yet persisted (`appendfsync everysec`); or the task stream that
    /// held it was deleted or evicted. Its outcome can never arrive; a
    /// node may have started it.
    Lost,
    /// The cluster forgot this caller: its registration is gone from
    /// Redis, because it sent no heartbeat for longer than its time to live
    /// (e.g. the process was stopped), so its queued calls and results were
    /// removed, or because Redis lost its data (a restart without
    /// persistence, a `FLUSHALL`). The pool fails every call from then on:
    /// build a new one.
    Forgotten,
    /// Redis's answer made no sense (a corrupt or foreign entry).
    Protocol,
    /// No node of this program's build served the queue for the pool's
    /// `node_wait` (nodes of another build may serve it: callers and nodes
    /// must be built from the same code). The call never ran: it was
    /// removed from Redis. (A call queued again after its node died
    /// running it, by `redeliver`, fails with [`Error::NodeLost`] instead:
    /// it may have run there.)
    NoNode,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// The registered name of the task the error concerns, if it concerns
    /// one (the initializer's, for [`Error::InitializerFailed`]).
    ///
    /// ```
    /// let e = procpool::Error::NotInitialized;
    /// assert_eq!(e.task(), None);
    /// ```
    pub fn task(&self) -> Option<&str> {
        match self {
            Error::Panic { task, .. }
            | Error::WorkerDied { task, .. }
            | Error::Timeout { task, .. }
            | Error::WaitTimeout { task, .. }
            | Error::PoolClosed { task }
            | Error::Cancelled { task }
            | Error::Terminated { task }
            | Error::UnknownTask { task, .. }
            | Error::DuplicateTask { task, .. }
            | Error::SignatureMismatch { task, .. }
            | Error::Encode { task, .. }
            | Error::Decode { task, .. }
            | Error::FrameTooLarge { task, .. }
            | Error::Protocol { task, .. }
            | Error::InitializerFailed { task, .. } => Some(task),
            Error::NodeLost { task, .. } => Some(task),
            Error::WorkerStart { task, .. } | Error::Broker { task, .. } => {
                (!task.is_empty()).then_some(task.as_str())
            }
            Error::Config { .. } | Error::NotInitialized | Error::Io { .. } => None,
        }
    }

    /// Which kind of failure this is (see [`ErrorKind`]).
    ///
    /// ```
    /// procpool::init();
    /// let error = procpool::Pool::builder().processes(0).build().unwrap_err();
    /// assert_eq!(error.kind(), procpool::ErrorKind::Config);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Panic { .. } => ErrorKind::Panic,
            Error::WorkerDied { .. } => ErrorKind::WorkerDied,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::WaitTimeout { .. } => ErrorKind::WaitTimeout,
            Error::PoolClosed { .. } => ErrorKind::PoolClosed,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Terminated { .. } => ErrorKind::Terminated,
            Error::UnknownTask { .. } => ErrorKind::UnknownTask,
            Error::DuplicateTask { .. } => ErrorKind::DuplicateTask,
            Error::SignatureMismatch { .. } => ErrorKind::SignatureMismatch,
            Error::Encode { .. } => ErrorKind::Encode,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::FrameTooLarge { .. } => ErrorKind::FrameTooLarge,
            Error::Protocol { .. } => ErrorKind::Protocol,
            Error::InitializerFailed { .. } => ErrorKind::InitializerFailed,
            Error::WorkerStart { .. } => ErrorKind::WorkerStart,
            Error::Config { .. } => ErrorKind::Config,
            Error::NotInitialized => ErrorKind::NotInitialized,
            Error::Io { .. } => ErrorKind::Io,
            Error::NodeLost { .. } => ErrorKind::NodeLost,
            Error::Broker { .. } => ErrorKind::Broker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// A name of another crate with no registered name alike says how to
    /// register that crate's tasks; a name with suggestions names them.
    #[test]
    fn an_unknown_task_of_another_crate_says_how_to_register_it() {
        let unknown = |task: &str, suggestions: &[&str]| {
            Error::UnknownTask {
                task: task.into(),
                suggestions: suggestions.iter().map(|s| s.to_string()).collect(),
            }
            .to_string()
        };
        let text = unknown("imaging::thumbnail", &[]);
        assert!(text.contains("add `use imaging as _;`"), "{text}");
        assert_eq!(
            unknown("app::sqare", &["app::square"]),
            "no task is registered under the name `app::sqare`; did you mean app::square?"
        );
        assert_eq!(
            unknown("ports/parse", &[]),
            "no task is registered under the name `ports/parse`"
        );
        // A task's name never begins with `crate`, `self` or `super` (it is
        // `module_path!()`'s), nor with a package name's `-`: no `use` of
        // those would register anything.
        let text = unknown("crate::thumbnail", &[]);
        assert!(!text.contains("use crate"), "{text}");
        assert!(text.contains("its crate's name"), "{text}");
        let text = unknown("super::thumbnail", &[]);
        assert!(!text.contains("use super"), "{text}");
        let text = unknown("image-tools::thumbnail", &[]);
        assert!(!text.contains("use image-tools"), "{text}");
        assert!(text.contains("`image_tools::thumbnail`"), "{text}");
    }

    /// The hint that arguments by name are owned is for a call by name
    /// (whose task's signature by name has no reference), not for a
    /// generated call of another build (a Redis node's mismatch).
    #[test]
    fn the_owned_arguments_hint_is_for_calls_by_name_only() {
        let mismatch = |caller: &str, worker: &str| {
            Error::SignatureMismatch {
                task: "app::f".into(),
                caller: caller.into(),
                worker: worker.into(),
            }
            .to_string()
        };
        let by_name = mismatch(
            "fn(&str, usize) -> u8",
            "fn(alloc::string::String, usize) -> u8",
        );
        assert!(by_name.contains("`String` for `&str`"), "{by_name}");
        let generated = mismatch("fn(&str) -> u8", "fn(&[u8]) -> u8");
        assert!(!generated.contains("owned"), "{generated}");
    }
}
