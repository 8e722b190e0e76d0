//! A batch of calls pipelined on one worker: its replies read in order,
//! and, when the worker is lost in the middle of it, the calls sent behind
//! the lost one settled or put back in the queue without any running twice.

use std::time::Duration;

use super::{bury, check_reply, lost, receive, Exchange, GiveBack, Loss, DEATH_GRACE};
use crate::call::Job;
use crate::link::Link;
use crate::pool::queue::Queue;
use crate::wire::{Frame, FrameError};

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
    while let Some(job) = jobs.next() {
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
            Exchange::Unread(loss) => return end_unread(queue, link, job, jobs, loss, ran),
        };
        if let Loss::Died = loss {
            return end_dead(queue, index, link, job, jobs, ran);
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

/// Ends the batch of [`receive_batch`] at `job`, its `ran`th, which its
/// stopped worker never started (nor those behind it, `jobs`): the worker
/// is ended, and `job` goes back to the queue with `jobs`, unless a worker
/// was lost before starting it already or the pool was terminated (then it
/// fails, and `jobs` go back alone).
fn end_unread(
    queue: &Queue,
    link: Box<dyn Link>,
    mut job: Job,
    jobs: std::vec::Drain<'_, Job>,
    loss: Loss,
    ran: usize,
) -> BatchEnd {
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
    BatchEnd {
        link: None,
        ran: ran - 1,
    }
}

/// Ends the batch of [`receive_batch`] at `job`, its `ran`th, whose worker
/// (slot `index`'s) died: between two calls, or running `job`. The jobs
/// behind it (`jobs`) never started.
fn end_dead(
    queue: &Queue,
    index: usize,
    mut link: Box<dyn Link>,
    mut job: Job,
    jobs: std::vec::Drain<'_, Job>,
    ran: usize,
) -> BatchEnd {
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
    if !link.started(job.id()) && (doomed || !job.lost_unstarted()) && !queue.is_terminated() {
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
    let error = bury(queue, link, job.call(), Loss::Died);
    job.complete(Err(error));
    queue.requeue(jobs);
    BatchEnd { link: None, ran }
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
fn settle_after_loss(
    queue: &Queue,
    mut link: Box<dyn Link>,
    failed: Job,
    loss: Loss,
    rest: Vec<Job>,
) -> usize {
    let pid = link.pid();
    link.kill();
    let (frames, clean) = read_to_end(link.as_mut());
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

/// The frames a killed worker wrote before it ended, read to the end of
/// its stream, and whether they were read to a clean end.
fn read_to_end(link: &mut dyn Link) -> (Vec<Frame>, bool) {
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
    (frames, clean)
}
