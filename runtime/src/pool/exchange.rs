//! One call on one worker: send it, read and check the reply, and when the
//! worker is lost (dead, timed out, or speaking nonsense) end it and turn
//! the loss into the caller's error. Also how the calls sent behind a lost
//! call in a pipelined batch are settled without any running twice.

use std::time::{Duration, Instant};

use super::queue::Queue;
use crate::call::{CallRef, Job, Kind};
use crate::error::{Error, ExitInfo};
use crate::link::Link;
use crate::result::Outcome;
use crate::wire::{self, Frame, FrameError, RemoteError, Reply};

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

/// What became of a batch of calls pipelined on one worker.
pub(crate) struct BatchEnd {
    /// The worker, if still usable.
    pub(crate) link: Option<Box<dyn Link>>,
    /// How many of the batch's jobs ran (were settled), counted from the
    /// first; the others went back to the queue.
    pub(crate) ran: usize,
}

/// Runs a batch of jobs pipelined on `link`, already sent: reads the
/// replies in order and settles the jobs. If the worker dies on one job,
/// that job fails and the jobs behind it, which had not started (a worker
/// runs its calls one by one, in order), go back to the front of the
/// queue. If it is dropped alive (timeout, bad reply), the jobs behind may
/// have started: see [`settle_after_loss`]. Each job's timeout counts from
/// the previous reply, that is from when the worker started it. A job
/// cancelled while pipelined behind another has the worker (slot `index`'s)
/// killed as soon as the one in front is answered, unless the worker went
/// past it (it finished: its outcome is kept).
pub(crate) fn receive_batch(
    queue: &Queue,
    index: usize,
    mut link: Box<dyn Link>,
    batch: &mut Vec<Job>,
) -> BatchEnd {
    let mut ran = 0;
    // Each call's followers, for `receive`'s check of a worker that seems
    // not to have started a call: one that went on to a later call did.
    let ids: Vec<u64> = batch.iter().map(|job| job.id()).collect();
    let mut jobs = batch.drain(..);
    // Set once the calls left behind went back to the queue.
    let mut given_back = false;
    while let Some(mut job) = jobs.next() {
        ran += 1;
        let behind = if given_back { &[][..] } else { &ids[ran..] };
        let received = {
            let wanted = || queue.has_idle_helper(index);
            let mut requeue = || {
                queue.requeue(&mut jobs);
                given_back = true;
            };
            let mut give_back = GiveBack {
                wanted: &wanted,
                requeue: &mut requeue,
            };
            receive(link.as_mut(), job.call(), behind, Some(&mut give_back))
        };
        let loss = match received {
            Exchange::Done(outcome) => {
                queue.settle_one(index, |call, behind| link.kill_unless_past(call, behind));
                job.complete(outcome);
                continue;
            }
            Exchange::Lost(loss) => loss,
            // (`receive` sends nothing, so it never reports these.) Whether
            // a timed-out call in a batch was read cannot be told from the
            // channel: the calls sent with it may have been read instead.
            Exchange::Undelivered => Loss::Died,
            // The worker did not start this call within its start limit (a
            // stopped worker), and was stopped: this call and those behind
            // it never started.
            Exchange::Unread(loss) => {
                let pid = link.pid();
                let status = link.finish(Duration::ZERO);
                if job.lost_unstarted() || queue.is_terminated() {
                    let error = lost(queue, job.call(), loss, pid, status);
                    job.complete(Err(error));
                    queue.requeue(jobs);
                    return BatchEnd { link: None, ran };
                }
                job.mark_lost_unstarted();
                queue.requeue(std::iter::once(job).chain(jobs));
                return BatchEnd {
                    link: None,
                    ran: ran - 1,
                };
            }
        };
        if let Loss::Died = loss {
            // The worker ended between two calls: this one never started.
            // Killed for a cancel of the call before (which had just
            // finished): it goes back to the queue. Dead by itself (the
            // OOM killer, a task's thread that ends the process after the
            // task returned): back to the queue once; a second worker lost
            // before starting it makes it fail, so that a call whose
            // workers keep dying before it starts does not go round for
            // ever.
            // (After a terminate, it fails as terminated, without a word.)
            let doomed = queue.is_doomed(index);
            if !link.started(job.id())
                && (doomed || !job.lost_unstarted())
                && !queue.is_terminated()
            {
                let pid = link.pid();
                let status = link.finish(DEATH_GRACE);
                if doomed {
                    log::debug!(
                        target: "procpool",
                        "worker {pid} ended between two calls ({status}); \
                         the calls it had not started go back to the queue"
                    );
                } else {
                    job.mark_lost_unstarted();
                    log::warn!(
                        target: "procpool",
                        "worker {pid} died between two calls ({status}); \
                         the calls it had not started go back to the queue"
                    );
                }
                queue.requeue(std::iter::once(job).chain(jobs));
                return BatchEnd {
                    link: None,
                    ran: ran - 1,
                };
            }
            // The worker died running this job: it runs its calls one by
            // one, so the ones behind it never started.
            let error = bury(queue, link, job.call(), loss);
            job.complete(Err(error));
            queue.requeue(jobs);
            return BatchEnd { link: None, ran };
        }
        let rest: Vec<Job> = jobs.collect();
        let settled = settle_after_loss(queue, link, job, loss, rest);
        return BatchEnd {
            link: None,
            ran: ran + settled,
        };
    }
    BatchEnd {
        link: Some(link),
        ran,
    }
}

/// Ends a worker lost on `failed` (timed out, or sent a bad or oversized
/// reply) in the middle of a batch, and settles the jobs sent behind it,
/// which the worker may have gone on to start: it is killed, and what it
/// wrote before it died is read to the end. Each job whose reply is there
/// is settled with it; the first one without a reply may have started, so
/// it fails (a task never runs twice), unless the worker says in shared
/// memory that it had not (killed while still on `failed`, or between the
/// two): then it goes back to the queue too; the jobs behind it certainly
/// never started, and they go back to the queue. If the replies cannot be
/// read to a clean end, the jobs behind fail (they may have run, their
/// replies unreadable), except those after the one the worker says it was
/// running, which go back to the queue. `failed` fails
/// as `loss` says. Returns how many of `rest` were settled (not requeued).
pub(crate) fn settle_after_loss(
    queue: &Queue,
    mut link: Box<dyn Link>,
    failed: Job,
    loss: Loss,
    rest: Vec<Job>,
) -> usize {
    let pid = link.pid();
    link.kill();
    let mut frames = Vec::new();
    // Whether the replies were read up to the end of the stream, or up to a
    // reply cut short by the kill (that job counts as one without a reply).
    let clean = loop {
        match link.recv(Some(DEATH_GRACE)) {
            Ok(frame) => frames.push(frame),
            Err(FrameError::Closed | FrameError::Truncated { .. }) => break true,
            Err(_) => break false,
        }
    };
    // The job of `rest` the worker was running when it was killed, if it
    // says so (its channel's shared memory names the call it started last):
    // those after it never started, nor did any job of `rest` if none is it.
    // (The last that may have started: a link that cannot tell says each
    // may have.)
    let running = rest.iter().rposition(|job| link.started(job.id()));
    let never_started = |i: usize| running.is_none_or(|r| r < i);
    let status = link.finish(Duration::ZERO);
    let mut frames = frames.into_iter();
    // Whether the worker went past `failed`, and so may have started the
    // next job: a job that timed out may have finished just after its limit
    // (its reply comes first); a bad or oversized reply was its last word
    // on it. A frame that is no reply to the job it should answer makes the
    // rest untrustworthy (`clean` false), and so does an oversized or
    // stalled reply: its body was not read whole, so the frames after it
    // cannot be found (a stalled one may even hold later replies).
    let (moved_on, mut clean) = match loss {
        Loss::TooLarge { .. } | Loss::Stalled(_) => (true, false),
        Loss::TimedOut(_) => match frames.next() {
            Some(frame) => {
                let replied = matches!(check_reply(frame, failed.call()), Exchange::Done(_));
                (replied, clean && replied)
            }
            None => (false, clean),
        },
        _ => (true, clean),
    };
    let error = lost(queue, failed.call(), loss, pid, status);
    failed.complete(Err(error));
    let mut settled = 0;
    let mut rest = rest.into_iter().enumerate().peekable();
    // (Only if it went past `failed`: else every job of `rest` goes below.)
    while let Some(&(i, _)) = rest.peek().filter(|_| moved_on) {
        let Some(frame) = frames.next() else {
            // No reply: it may have started, unless the worker says it had
            // not (killed while still on `failed`, or between the two):
            // then it and those behind go back to the queue.
            if !never_started(i) {
                let (_, job) = rest.next().expect("peeked");
                settled += 1;
                let error = lost(queue, job.call(), Loss::Died, pid, status);
                job.complete(Err(error));
            }
            break;
        };
        let (_, job) = rest.next().expect("peeked");
        settled += 1;
        if let Exchange::Done(outcome) = check_reply(frame, job.call()) {
            job.complete(outcome);
            continue;
        }
        clean = false;
        // Not its reply: it may have started.
        let error = lost(queue, job.call(), Loss::Died, pid, status);
        job.complete(Err(error));
        break;
    }
    // Those behind: back to the queue if the replies were read to a clean
    // end (the worker runs its calls in order, and stopped before these) or
    // the worker says it never started them; otherwise they fail, as they
    // may have run with their replies unreadable.
    let mut back = Vec::new();
    for (i, job) in rest {
        if clean || never_started(i) {
            back.push(job);
        } else {
            settled += 1;
            let error = lost(queue, job.call(), Loss::Died, pid, status);
            job.complete(Err(error));
        }
    }
    queue.requeue(back.into_iter());
    settled
}
