//! One call on one worker: send it, read and check the reply, and when the
//! worker is lost (dead, timed out, or speaking nonsense) end it and turn
//! the loss into the caller's error. Also how the calls sent behind a lost
//! call in a pipelined batch are settled without any running twice (in
//! `batch`).

use std::time::{Duration, Instant};

use super::queue::Queue;
use crate::call::{CallRef, Kind};
use crate::error::{Error, ExitInfo};
use crate::link::Link;
use crate::result::Outcome;
use crate::wire::{self, Frame, FrameError, RemoteError, Reply};

mod batch;

pub(crate) use batch::receive_batch;

/// How long a worker whose channel closed may take to be reaped.
pub(crate) const DEATH_GRACE: Duration = Duration::from_millis(500);

/// What became of one call on one worker.
pub(crate) enum Exchange {
    /// The call has its outcome; the worker is fine.
    Done(Outcome),
    /// The worker was already gone; the call never reached it.
    Undelivered,
    /// The worker never started the call (a stopped worker: it timed out
    /// unread, or was not started within the start limit): it can run on
    /// another worker; this one is unusable. If it is not retried, it
    /// fails as the loss says.
    Unread(Loss),
    /// The worker is unusable; the call failed as described.
    Lost(Loss),
}

/// Why a worker became unusable during a call.
pub(crate) enum Loss {
    Died,
    TimedOut(Duration),
    Protocol(String),
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A reply began and stopped arriving for this long: where the next
    /// frame starts is lost.
    Stalled(Duration),
    /// The worker did not start the call within this long (it was stopped
    /// for it; so was the one before, which never started it either).
    Unstarted(Duration),
}

/// Sends `call` and reads its reply.
pub(crate) fn exchange(link: &mut dyn Link, call: CallRef<'_>) -> Exchange {
    // The header goes in this thread's small buffer: no allocation per call.
    let mut header = crate::buffers::small_buffer();
    call.append_header(&mut header);
    let sent = link.send(&[&header, &call.args[..]], call.tail());
    crate::buffers::recycle(header);
    match sent {
        Ok(()) => {}
        Err(FrameError::TooLarge { len, max }) => {
            return Exchange::Done(Err(Error::FrameTooLarge {
                task: call.name().to_string(),
                len: len as u64,
                max: max as u64,
            }))
        }
        Err(_) => return Exchange::Undelivered,
    }
    match receive(link, call, &[], None) {
        // Dead before it read the whole call: the call never started.
        Exchange::Lost(Loss::Died) if link.unread_requests() => Exchange::Undelivered,
        // The worker reads a call whole before it starts it, and every call
        // before this one was answered: bytes still unread mean this call
        // had not started. It is stopped only if it still has not, in one
        // step with the kill (a worker resumed in between and running it
        // would otherwise run it twice: here, and on its replacement);
        // if it has, it has run past its limit: `TimedOut`.
        Exchange::Lost(Loss::TimedOut(_))
            if link.unread_requests() && link.kill_unless_started(call.id, &[]) =>
        {
            log::warn!(
                target: "procpool",
                "worker {} never read call `{}` within its time limit (stopped?); \
                 it is killed and the call goes to a new worker",
                link.pid(),
                call.name()
            );
            Exchange::Unread(Loss::TimedOut(call.timeout.get().unwrap_or_default()))
        }
        other => other,
    }
}

/// Reads and checks the reply to `call`, already sent, and next in line
/// on its worker (`behind`: the calls pipelined after it). A worker that
/// has not even started it within its start limit (a stopped worker takes
/// nothing in) is stopped: `Unread`, and the call, which never ran (nor
/// any behind it), can go to another worker.
pub(crate) fn receive(
    link: &mut dyn Link,
    call: CallRef<'_>,
    behind: &[u64],
    give_back: Option<&mut GiveBack<'_>>,
) -> Exchange {
    let frame = match recv_reply(link, call, behind, give_back) {
        Ok(frame) => frame,
        Err(None) => {
            return Exchange::Unread(Loss::Unstarted(link.start_limit().unwrap_or_default()))
        }
        Err(Some(FrameError::TimedOut)) => {
            return Exchange::Lost(Loss::TimedOut(call.timeout.get().unwrap_or_default()))
        }
        Err(Some(FrameError::TooLarge { len, max })) => {
            return Exchange::Lost(Loss::TooLarge { len, max })
        }
        Err(Some(FrameError::Stalled(after))) => return Exchange::Lost(Loss::Stalled(after)),
        Err(Some(FrameError::Broken(why))) => return Exchange::Lost(Loss::Protocol(why)),
        // End of file, a frame cut short by the death, a reset: the worker is gone.
        Err(Some(FrameError::Closed | FrameError::Truncated { .. })) => {
            return Exchange::Lost(Loss::Died)
        }
    };
    check_reply(frame, call)
}

/// How often a slot waiting for a reply with calls pipelined behind it
/// looks whether another worker waits for work with nothing queued.
const HELP_LOOK: Duration = Duration::from_millis(5);

/// What a slot waiting for the reply to one call of a pipelined batch does
/// with the calls behind it when another worker waits for work with
/// nothing queued: a call thought quick that runs long must not hold them
/// while that worker could run them (the pool's promise: no task waits
/// behind another while a worker is free). The worker is asked to skip
/// them (see `crate::shm::Halter::give_back`), and they go back to the
/// front of the queue.
pub(crate) struct GiveBack<'a> {
    /// Whether another worker waits for work with nothing queued.
    pub(crate) wanted: &'a dyn Fn() -> bool,
    /// Puts the calls behind back in the queue, once the worker will skip
    /// them.
    pub(crate) requeue: &'a mut dyn FnMut(),
}

/// The reply to `call` within its time limit; `Err(None)` if its worker,
/// alive, has not started it (nor any call in `behind`) within the link's
/// start limit, and has been stopped for it. With `give_back`, the calls
/// in `behind` may go back to the queue meanwhile (see [`GiveBack`]).
///
/// A map chunk's time limit is for each of its items: the clock restarts
/// whenever the worker's count of items started moves. The count is looked
/// at every eighth of the limit, so an item is stopped between 1 and 1⅛
/// times the limit after it started.
fn recv_reply(
    link: &mut dyn Link,
    call: CallRef<'_>,
    mut behind: &[u64],
    mut give_back: Option<&mut GiveBack<'_>>,
) -> Result<Frame, Option<FrameError>> {
    let limit = call.timeout.get();
    let start_limit = link.start_limit();
    let per_item = limit.filter(|_| call.kind != Kind::Single);
    if behind.is_empty() {
        give_back = None;
    }
    // A reply already arriving (the common case behind a pipelined batch)
    // has started, and its items are done: no start limit or clock to keep.
    if (start_limit.is_none() && per_item.is_none() && give_back.is_none()) || link.reply_waiting()
    {
        return link.recv(limit).map_err(Some);
    }
    let look = per_item.map(|l| (l / 8).max(Duration::from_millis(1)));
    let begun = Instant::now();
    // When the item running now (or the call) began, as far as is known.
    let mut clock = begun;
    let mut items = look.and_then(|_| link.items_started());
    // The worker was seen to have started the call (or gone past it):
    // from then on only the call's own limit applies.
    let mut started = start_limit.is_none();
    loop {
        let now = Instant::now();
        let left = limit.map(|l| l.saturating_sub(now - clock));
        started = started || link.started(call.id);
        let to_start = start_limit
            .filter(|_| !started)
            .map(|s| s.saturating_sub(now - begun));
        let help = give_back.as_ref().map(|_| HELP_LOOK);
        let wait = [left, to_start, look, help].into_iter().flatten().min();
        match link.recv(wait) {
            Err(FrameError::TimedOut) => {
                if let Some(g) = give_back.as_mut() {
                    if (g.wanted)() && link.give_back(call.id, behind) {
                        log::trace!(
                            target: "procpool",
                            "worker {} still runs call `{}`: the {} calls pipelined \
                             behind it go back to the queue for an idle worker",
                            link.pid(),
                            call.name(),
                            behind.len()
                        );
                        (g.requeue)();
                        behind = &[];
                        give_back = None;
                    }
                }
                let now = Instant::now();
                if look.is_some() {
                    let seen = link.items_started();
                    if seen != items {
                        items = seen;
                        clock = now;
                        continue;
                    }
                }
                if limit.is_some_and(|l| now - clock >= l) {
                    return Err(Some(FrameError::TimedOut));
                }
                if let Some(start_limit) = start_limit.filter(|_| !started) {
                    if now - begun >= start_limit {
                        if link.kill_unless_started(call.id, behind) {
                            log::warn!(
                                target: "procpool",
                                "worker {} did not start call `{}` within {start_limit:?} \
                                 (stopped?); it is stopped and the call goes to another worker",
                                link.pid(),
                                call.name()
                            );
                            return Err(None);
                        }
                        // It started meanwhile (or went past it, its reply
                        // on the way): wait on, within the call's limit.
                        started = true;
                    }
                }
            }
            other => return other.map_err(Some),
        }
    }
}

/// Checks that `frame` is the reply to `call`, and reads it.
pub(crate) fn check_reply(frame: Frame, call: CallRef<'_>) -> Exchange {
    let task = || call.name().to_string();
    let single = call.kind == Kind::Single;
    match wire::parse_reply(frame) {
        Ok(Reply::Value { id, bytes }) if id == call.id && single => Exchange::Done(Ok(bytes)),
        // The caller decodes the records (see `crate::chunk`).
        Ok(Reply::Results { id, bytes }) if id == call.id && !single => Exchange::Done(Ok(bytes)),
        Ok(Reply::Panic { id, report }) if id == call.id => Exchange::Done(Err(Error::Panic {
            task: task(),
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        })),
        Ok(Reply::Failed { id, error }) if id == call.id => Exchange::Done(Err(remote_error(
            call.task.name,
            call.task.signature,
            error,
        ))),
        Ok(Reply::Fatal { message }) => Exchange::Lost(Loss::Protocol(message)),
        Ok(other) => Exchange::Lost(Loss::Protocol(format!(
            "expected the reply to call {}, got {}",
            call.id,
            describe(&other)
        ))),
        Err(message) => Exchange::Lost(Loss::Protocol(message)),
    }
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Hello { pid } => format!("a hello from {pid}"),
        Reply::Value { id, .. }
        | Reply::Panic { id, .. }
        | Reply::Failed { id, .. }
        | Reply::Results { id, .. } => format!("a reply to call {id}"),
        Reply::Fatal { .. } => "a fatal error".into(),
    }
}

/// The caller's error for a failure the worker reported for `task`, whose
/// caller-side signature is `signature`.
pub(crate) fn remote_error(task: &str, signature: &str, error: RemoteError) -> Error {
    let task = task.to_string();
    match error {
        RemoteError::UnknownTask { suggestions } => Error::UnknownTask { task, suggestions },
        RemoteError::DuplicateTask { first, second } => Error::DuplicateTask {
            task,
            first,
            second,
        },
        RemoteError::SignatureMismatch { worker_signature } => Error::SignatureMismatch {
            task,
            caller: signature.to_string(),
            worker: worker_signature,
        },
        RemoteError::DecodeArgs(message) => Error::Decode {
            task,
            what: "arguments",
            message,
        },
        RemoteError::EncodeResult(message) => Error::Encode {
            task,
            what: "result",
            message,
        },
        RemoteError::ResultTooLarge { len, max } => Error::FrameTooLarge { task, len, max },
    }
}

/// The caller's error for `call`, whose worker `pid` was lost as `loss`
/// and ended as `status`: [`Error::Cancelled`] if the call was cancelled
/// (its worker was killed for it, or held before it), also when the pool
/// was terminated since (the cancel answered first, and counted it);
/// else [`Error::Terminated`] if the pool was terminated.
pub(crate) fn lost(
    queue: &Queue,
    call: CallRef<'_>,
    loss: Loss,
    pid: u32,
    status: ExitInfo,
) -> Error {
    let task = call.name().to_string();
    if queue.is_cancelled(call.id) {
        log::debug!(target: "procpool", "worker {pid} stopped: task `{task}` was cancelled; it will be replaced");
        return call.cancelled();
    }
    if queue.is_terminated() {
        return call.terminated();
    }
    let why = match &loss {
        Loss::Died => format!("died ({status})"),
        Loss::TimedOut(limit) => format!("ran past its time limit of {limit:?}: killed ({status})"),
        Loss::Protocol(message) => format!("broke the protocol ({message}): killed"),
        Loss::TooLarge { len, max } => {
            format!("sent a {len}-byte frame over the {max} limit: killed")
        }
        Loss::Stalled(after) => format!("{}: killed", stalled(*after)),
        Loss::Unstarted(after) => format!("{}: killed", unstarted(*after)),
    };
    log::warn!(target: "procpool", "worker {pid} {why} running task `{task}`; it will be replaced");
    match loss {
        Loss::Died => Error::WorkerDied { task, pid, status },
        Loss::TimedOut(limit) => Error::Timeout { task, limit },
        Loss::Protocol(message) => Error::Protocol { task, message },
        Loss::TooLarge { len, max } => Error::FrameTooLarge {
            task,
            len: len as u64,
            max: max as u64,
        },
        Loss::Stalled(after) => Error::Protocol {
            task,
            message: stalled(after),
        },
        Loss::Unstarted(after) => Error::Protocol {
            task,
            message: unstarted(after),
        },
    }
}

fn unstarted(after: Duration) -> String {
    format!("two workers in turn did not start the call within {after:?} (stopped?)")
}

fn stalled(after: Duration) -> String {
    format!("the worker stopped sending in the middle of a frame for {after:?}")
}

/// Ends a worker that failed `call` as `loss` described, and says how the
/// call failed.
pub(crate) fn bury(queue: &Queue, mut link: Box<dyn Link>, call: CallRef<'_>, loss: Loss) -> Error {
    let pid = link.pid();
    let grace = match loss {
        Loss::Died => DEATH_GRACE,
        _ => {
            link.kill();
            Duration::ZERO
        }
    };
    let status = link.finish(grace);
    lost(queue, call, loss, pid, status)
}
