//! A node's errors on their way to the caller: [`RemoteFailure`] mirrors
//! every [`Error`] a node's local pool can report, without the task name
//! (the caller adds it back), so it crosses Redis and arrives as the same
//! variant it was on the node.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, ExitInfo};

/// An `Error` from a node's local pool, serializable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RemoteFailure {
    Panic {
        message: String,
        location: String,
        backtrace: Option<String>,
    },
    WorkerDied {
        pid: u32,
        status: Exit,
    },
    Timeout {
        limit_ms: u64,
    },
    UnknownTask {
        suggestions: Vec<String>,
    },
    DuplicateTask {
        first: String,
        second: String,
    },
    SignatureMismatch {
        worker: String,
    },
    Encode {
        what: String,
        message: String,
    },
    Decode {
        what: String,
        message: String,
    },
    FrameTooLarge {
        len: u64,
        max: u64,
    },
    Protocol {
        message: String,
    },
    /// The node's initializer failed: named, as it is not the call's task.
    InitializerFailed {
        initializer: String,
        message: String,
        location: Option<String>,
    },
    WorkerStart {
        message: String,
    },
    /// The node's local pool was closed or terminated under the call (the
    /// node is stopping).
    Terminated,
    /// The call was stopped on the node: its caller terminated or cancelled
    /// it.
    Cancelled,
    /// Any other error, as text.
    Other {
        message: String,
    },
    /// Redis refused to store the call's outcome (e.g. out of memory under
    /// `noeviction`): it ran, its result is lost.
    Refused {
        message: String,
    },
}

/// [`ExitInfo`], serializable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    Unknown,
}

impl RemoteFailure {
    /// What the node reports for `error`, one of its local pool's.
    pub(crate) fn of(error: &Error) -> RemoteFailure {
        use RemoteFailure as F;
        match error.clone() {
            Error::Panic {
                message,
                location,
                backtrace,
                ..
            } => F::Panic {
                message,
                location,
                backtrace,
            },
            Error::WorkerDied { pid, status, .. } => F::WorkerDied {
                pid,
                status: match status {
                    ExitInfo::Code(c) => Exit::Code(c),
                    ExitInfo::Signal(s) => Exit::Signal(s),
                    ExitInfo::Unknown => Exit::Unknown,
                },
            },
            Error::Timeout { limit, .. } => F::Timeout {
                limit_ms: limit.as_millis().try_into().unwrap_or(u64::MAX),
            },
            Error::UnknownTask { suggestions, .. } => F::UnknownTask { suggestions },
            Error::DuplicateTask { first, second, .. } => F::DuplicateTask { first, second },
            Error::SignatureMismatch { worker, .. } => F::SignatureMismatch { worker },
            Error::Encode { what, message, .. } => F::Encode {
                what: what.into(),
                message,
            },
            Error::Decode { what, message, .. } => F::Decode {
                what: what.into(),
                message,
            },
            Error::FrameTooLarge { len, max, .. } => F::FrameTooLarge { len, max },
            Error::Protocol { message, .. } => F::Protocol { message },
            Error::InitializerFailed {
                task,
                message,
                location,
            } => F::InitializerFailed {
                initializer: task,
                message,
                location,
            },
            Error::WorkerStart { message, .. } => F::WorkerStart { message },
            Error::PoolClosed { .. } | Error::Terminated { .. } => F::Terminated,
            Error::Cancelled { .. } => F::Cancelled,
            other => F::Other {
                message: other.to_string(),
            },
        }
    }

    /// The caller's error for this failure of its call of `task`, whose
    /// signature the caller knows as `signature` and whose time limit it
    /// set to `limit`: a `Timeout` names that limit, as a local pool's
    /// does, not the whole milliseconds the node was sent.
    pub(crate) fn into_error(self, task: &str, signature: &str, limit: Option<Duration>) -> Error {
        use RemoteFailure as F;
        let task = task.to_string();
        match self {
            F::Panic {
                message,
                location,
                backtrace,
            } => Error::Panic {
                task,
                message,
                location,
                backtrace,
            },
            F::WorkerDied { pid, status } => Error::WorkerDied {
                task,
                pid,
                status: match status {
                    Exit::Code(c) => ExitInfo::Code(c),
                    Exit::Signal(s) => ExitInfo::Signal(s),
                    Exit::Unknown => ExitInfo::Unknown,
                },
            },
            F::Timeout { limit_ms } => Error::Timeout {
                task,
                limit: limit.unwrap_or(Duration::from_millis(limit_ms)),
            },
            F::UnknownTask { suggestions } => Error::UnknownTask { task, suggestions },
            F::DuplicateTask { first, second } => Error::DuplicateTask {
                task,
                first,
                second,
            },
            F::SignatureMismatch { worker } => Error::SignatureMismatch {
                task,
                caller: signature.to_string(),
                worker,
            },
            F::Encode { what, message } => Error::Encode {
                task,
                what: static_what(&what),
                message,
            },
            F::Decode { what, message } => Error::Decode {
                task,
                what: static_what(&what),
                message,
            },
            F::FrameTooLarge { len, max } => Error::FrameTooLarge { task, len, max },
            F::Protocol { message } => Error::Protocol { task, message },
            F::InitializerFailed {
                initializer,
                message,
                location,
            } => Error::InitializerFailed {
                task: initializer,
                message,
                location,
            },
            F::WorkerStart { message } => Error::WorkerStart { task, message },
            F::Terminated => Error::Terminated { task },
            F::Cancelled => cancelled(task),
            F::Refused { message } => Error::Broker {
                task: task.to_string(),
                reason: crate::error::BrokerReason::Refused,
                message,
            },
            F::Other { message } => Error::Io {
                context: format!("task `{task}` on a node"),
                source: Arc::new(std::io::Error::other(message)),
            },
        }
    }

    /// This failure with its texts (a panic's message, location and
    /// backtrace, an error's message) cut until it encodes in `max` bytes,
    /// the longest first, each by half, as a local worker cuts a failure
    /// to fit its frame.
    pub(crate) fn fit(mut self, max: usize) -> RemoteFailure {
        let size = |failure: &RemoteFailure| failure.encode().len();
        crate::wire::fit_texts(&mut self, RemoteFailure::texts, size, max);
        self
    }

    /// The free-form texts of this failure.
    fn texts(&mut self) -> Vec<&mut String> {
        use RemoteFailure as F;
        match self {
            F::Panic {
                message,
                location,
                backtrace,
            } => {
                let mut texts = vec![message, location];
                texts.extend(backtrace.as_mut());
                texts
            }
            F::UnknownTask { suggestions } => suggestions.iter_mut().collect(),
            F::DuplicateTask { first, second } => vec![first, second],
            F::SignatureMismatch { worker } => vec![worker],
            F::Encode { message, .. }
            | F::Decode { message, .. }
            | F::Protocol { message }
            | F::WorkerStart { message }
            | F::Other { message }
            | F::Refused { message } => vec![message],
            F::InitializerFailed {
                initializer,
                message,
                location,
            } => {
                let mut texts = vec![initializer, message];
                texts.extend(location.as_mut());
                texts
            }
            F::WorkerDied { .. }
            | F::Timeout { .. }
            | F::FrameTooLarge { .. }
            | F::Terminated
            | F::Cancelled => Vec::new(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        codec::encode_meta(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<RemoteFailure, String> {
        codec::decode_meta(bytes)
    }
}

/// A call stopped on its node because its caller cancelled it (which has
/// settled it itself already; a result read after that is ignored).
fn cancelled(task: String) -> Error {
    Error::Cancelled { task }
}

/// The `what` of an encode or decode error as the local pool spells it.
fn static_what(what: &str) -> &'static str {
    match what {
        "arguments" => "arguments",
        "task name" => "task name",
        "result" => "result",
        _ => "value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_round_trips_as_the_same_variant() {
        let errors = [
            Error::Panic {
                task: "t".into(),
                message: "boom".into(),
                location: "a.rs:1:2".into(),
                backtrace: Some("bt".into()),
            },
            Error::WorkerDied {
                task: "t".into(),
                pid: 7,
                status: ExitInfo::Signal(9),
            },
            Error::Timeout {
                task: "t".into(),
                limit: Duration::from_millis(1500),
            },
            Error::UnknownTask {
                task: "t".into(),
                suggestions: vec!["u".into()],
            },
            Error::SignatureMismatch {
                task: "t".into(),
                caller: "on the node: unknown".into(),
                worker: "fn(u8) -> u8".into(),
            },
            Error::Decode {
                task: "t".into(),
                what: "arguments",
                message: "m".into(),
            },
            Error::FrameTooLarge {
                task: "t".into(),
                len: 11,
                max: 10,
            },
            // Named after the initializer, not the call's task.
            Error::InitializerFailed {
                task: "init".into(),
                message: "m".into(),
                location: Some("a.rs:3".into()),
            },
        ];
        for e in errors {
            let f = RemoteFailure::decode(&RemoteFailure::of(&e).encode()).unwrap();
            let back = f.into_error("t", "fn(u16) -> u8", None);
            assert_eq!(back.kind(), e.kind(), "{e:?} came back as {back:?}");
            if let Error::SignatureMismatch { caller, .. } = &back {
                assert_eq!(caller, "fn(u16) -> u8");
            } else {
                assert_eq!(back.to_string(), e.to_string());
            }
        }
    }

    #[test]
    fn a_timeout_names_the_callers_limit_not_the_nodes_milliseconds() {
        let sent = RemoteFailure::Timeout { limit_ms: 2 };
        let set = Duration::from_micros(1500);
        match sent.clone().into_error("t", "fn()", Some(set)) {
            Error::Timeout { limit, .. } => assert_eq!(limit, set),
            other => panic!("{other:?}"),
        }
        // A limit the caller did not set is the node's own.
        match sent.into_error("t", "fn()", None) {
            Error::Timeout { limit, .. } => assert_eq!(limit, Duration::from_millis(2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_too_large_is_cut_to_fit_its_texts_longest_first() {
        let big = RemoteFailure::Panic {
            message: "x".repeat(100_000),
            location: "a.rs:1:2".into(),
            backtrace: None,
        };
        let fitted = big.fit(10_000);
        assert!(fitted.encode().len() <= 10_000);
        match fitted {
            RemoteFailure::Panic {
                message, location, ..
            } => {
                assert!(message.starts_with("xxxx"), "{message}");
                assert!(message.ends_with("bytes cut to fit a frame)"), "{message}");
                // The note counts every byte cut, over all the rounds.
                let at = message.rfind("… (").unwrap();
                let cut = &message[at + "… (".len()..];
                let cut: usize = cut.split(' ').next().unwrap().parse().unwrap();
                assert_eq!(at + cut, 100_000, "{}", &message[at..]);
                assert_eq!(location, "a.rs:1:2");
            }
            other => panic!("{other:?}"),
        }
        let small = RemoteFailure::Protocol {
            message: "short".into(),
        };
        assert_eq!(small.clone().fit(10_000), small);
    }

    /// A failure of many texts over the caller's frame limit (a node's
    /// `UnknownTask` with thousands of suggestions: the result stream is
    /// anyone's who can write to Redis) is cut in a few rounds over all its
    /// texts. It was cut one text per round, each round encoding the whole
    /// failure again: 4,000 suggestions of 100 bytes took 22 s of the
    /// caller's reader thread, 16,000 took 250 s (found by `redis::fuzz`).
    #[test]
    fn a_failure_of_many_texts_is_cut_in_a_few_rounds() {
        let big = RemoteFailure::UnknownTask {
            suggestions: vec!["s".repeat(100); 4000],
        };
        let started = std::time::Instant::now();
        let fitted = big.fit(200_000);
        let took = started.elapsed();
        assert!(fitted.encode().len() <= 200_000);
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let RemoteFailure::UnknownTask { suggestions } = fitted else {
            panic!("{fitted:?}")
        };
        assert_eq!(suggestions.len(), 4000);
        assert!(
            suggestions.iter().all(|s| s.starts_with("sss")),
            "{suggestions:?}"
        );
    }

    /// A caller and a node meet on a stream only if their wire versions
    /// are the same (it is part of the build id), so a change of what a
    /// node sends raises it: `InitializerFailed` began to name the node's
    /// initializer (ad28dbd), and a caller reading a failure of the
    /// procpool before that (wire version 2) took it for another one, or
    /// for none (`Error::Protocol`, "undecodable failure"), and the reverse.
    #[test]
    fn a_failure_as_wire_version_2_sent_it_is_not_read_the_same() {
        // Wire version 2's variants, in their order (only the index of
        // those before `InitializerFailed` matters), and its fields.
        #[derive(Serialize)]
        #[allow(dead_code)]
        enum Version2 {
            Panic,
            WorkerDied,
            Timeout,
            UnknownTask,
            DuplicateTask,
            SignatureMismatch,
            Encode,
            Decode,
            FrameTooLarge,
            Protocol,
            InitializerFailed {
                message: String,
                location: Option<String>,
            },
        }
        let sent = codec::encode_meta(&Version2::InitializerFailed {
            message: "no config".into(),
            location: Some("a.rs:3".into()),
        });
        let read = RemoteFailure::decode(&sent);
        assert!(
            !matches!(&read, Ok(RemoteFailure::InitializerFailed { message, .. }) if message == "no config"),
            "{read:?}"
        );
        assert_ne!(
            crate::wire::VERSION,
            2,
            "a node of wire version 2 would share this build's queue: raise wire::VERSION"
        );
    }
}
