//! The dispatcher: one thread per pool slot takes the oldest queued job, runs
//! it on the slot's worker and settles its promise, whatever happens to the
//! worker. Every wait ends when the worker dies. A job waits behind a busy
//! worker only when pipelined: quick jobs are batched to a busy worker only
//! when no worker is idle, and a batched job that turns out slow delays the
//! ones behind it by at most its own run time (see [`crate::pipeline`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Link;
use crate::error::{Error, ExitInfo};
use crate::pipeline::Durations;
use crate::pool::{Job, Next, Shared};
use crate::result::Outcome;
use crate::wire::{self, FrameError, RemoteError, Reply};

/// How long a worker told to shut down may take to exit before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a worker whose channel closed may take to be reaped.
const DEATH_GRACE: Duration = Duration::from_millis(500);
/// How often an idle slot checks that its worker is still alive, so that a
/// worker killed while idle is reaped (no zombie) and replaced at once rather
/// than at the next job.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// How many times a job's worker start is tried (see `start_for`).
const START_ATTEMPTS: u32 = 3;

/// What became of one job on one worker.
enum Exchange {
    /// The job has its outcome; the worker is fine.
    Done(Outcome),
    /// The worker was already gone; the job never reached it.
    Undelivered,
    /// The worker is unusable; the job failed as described.
    Lost(Loss),
}

enum Loss {
    Died,
    TimedOut(Duration),
    Protocol(String),
    TooLarge { len: usize, max: usize },
}

/// One call as the dispatcher sends it, whether it came from the queue or
/// straight from a caller of `apply`.
pub(crate) struct Call<'a> {
    pub(crate) id: u64,
    pub(crate) task: &'a str,
    pub(crate) fingerprint: u64,
    pub(crate) signature: &'a str,
    pub(crate) args: &'a [u8],
    pub(crate) timeout: Option<Duration>,
    /// A chunk of a map (CALL_BATCH), answered with RESULTS.
    pub(crate) batch: bool,
}

impl Job {
    fn call(&self) -> Call<'_> {
        Call {
            batch: self.batch,
            id: self.id,
            task: &self.task,
            fingerprint: self.fingerprint,
            signature: self.signature,
            args: &self.args,
            timeout: self.timeout,
        }
    }
}

/// Runs slot `index` until the pool is closed and drained, or terminated.
pub(crate) fn run_slot(shared: Arc<Shared>, index: usize, first: Box<dyn Link>) {
    let mut worker = Some(first);
    let mut durations = Durations::default();
    let mut batch = Vec::new();
    // Whether the slot lost its worker since it last tried to start one.
    let mut lost_worker = false;
    loop {
        match shared.next_jobs(index, &mut worker, &durations, &mut batch, IDLE_CHECK) {
            Next::Jobs => {}
            Next::Idle { lost } => {
                // Idle: reap a worker that died meanwhile (no zombie), and
                // keep the slot staffed, so the next job need not wait for a
                // start. One try per loss: if it fails, the next job tries
                // again and reports why, so a failing start never loops.
                lost_worker |= lost;
                if worker.as_mut().is_some_and(|w| w.has_exited()) {
                    if let Some(dead) = worker.take() {
                        dead.finish(Duration::ZERO);
                    }
                    lost_worker = true;
                }
                if lost_worker && worker.is_none() {
                    worker = shared.start_worker(index).ok();
                    shared.reset_served(index);
                }
                lost_worker = false;
                continue;
            }
            Next::Stop => break,
        }
        let before = worker.as_ref().map(|link| link.pid());
        let started = Instant::now();
        let tasks: Vec<Arc<str>> = batch.iter().map(|job| job.task.clone()).collect();
        let ran = if batch.len() == 1 {
            let job = batch.pop().expect("a batch has a job");
            let (outcome, link) = run_job(&shared, index, worker.take(), &job.call());
            job.promise.complete(outcome);
            worker = link;
            1
        } else {
            let (link, ran) = run_batch(&shared, index, worker.take(), &mut batch);
            worker = link;
            ran
        };
        let elapsed = started.elapsed();
        for task in &tasks[..ran] {
            durations.observe(task, ran, elapsed);
        }
        if let Some(link) = &worker {
            if before != Some(link.pid()) {
                shared.reset_served(index);
            }
            if shared.served(index, ran) {
                retire(worker.take());
            }
        }
        if worker.is_none() {
            shared.reset_served(index);
            // Staff the slot again at once, before it waits for work (one
            // try per loss: if it fails, the next job tries again and says
            // why).
            if shared.wants_workers() {
                worker = shared.start_worker(index).ok();
            }
            lost_worker = false;
        }
    }
    if shared.is_terminated() {
        if let Some(mut link) = worker {
            link.kill();
            link.finish(Duration::ZERO);
        }
    } else {
        retire(worker);
    }
}

/// Runs a batch of jobs pipelined on one worker: all calls go out in one
/// write, and the replies are read in order. Settles the jobs it ran and
/// returns the worker (if still usable) and how many ran. If the worker dies
/// on one job, that job fails and the jobs behind it, which had not started
/// (a worker runs its calls one by one, in order), go back to the front of
/// the queue. If it is dropped alive (timeout, bad reply), the jobs behind
/// may have started: see [`settle_after_loss`]. Each job's timeout counts
/// from the previous reply, that is from when the worker started it.
fn run_batch(
    shared: &Shared,
    index: usize,
    mut worker: Option<Box<dyn Link>>,
    batch: &mut Vec<Job>,
) -> (Option<Box<dyn Link>>, usize) {
    let headers: Vec<Vec<u8>> = batch
        .iter()
        .map(|job| {
            if job.batch {
                wire::batch_header(job.id, job.fingerprint, &job.task)
            } else {
                wire::call_header(job.id, job.fingerprint, &job.task)
            }
        })
        .collect();
    let frames: Vec<[&[u8]; 2]> = headers
        .iter()
        .zip(batch.iter())
        .map(|(header, job)| [&header[..], &job.args[..]])
        .collect();
    let mut retried = false;
    let mut link = loop {
        let mut link = match worker.take() {
            Some(link) => link,
            None => {
                // As in `run_job`: nothing starts after terminate, and a
                // start that failed fast is retried.
                let started = match batch.first().map(Job::call) {
                    Some(first) if shared.is_terminated() => Err(terminated(&first)),
                    Some(first) => start_for(shared, index, &first),
                    None => return (None, 0),
                };
                match started {
                    Ok(link) => link,
                    Err(e) => {
                        drop(frames);
                        let mut jobs = batch.drain(..);
                        if let Some(first) = jobs.next() {
                            first.promise.complete(Err(e));
                        }
                        shared.requeue(jobs);
                        return (None, 1);
                    }
                }
            }
        };
        match link.send_batch(&frames) {
            Ok(()) => break link,
            Err(FrameError::TooLarge { .. }) => {
                // Some call is over the frame limit: run them one by one,
                // so that only that one fails.
                drop(frames);
                let mut jobs = batch.drain(..);
                let first = jobs.next().expect("a batch has jobs");
                shared.requeue(jobs);
                let (outcome, link) = run_job(shared, index, Some(link), &first.call());
                first.promise.complete(outcome);
                return (link, 1);
            }
            Err(_) if !retried => {
                retried = true;
                link.finish(DEATH_GRACE);
            }
            Err(_) => {
                drop(frames);
                let mut jobs = batch.drain(..);
                let first = jobs.next().expect("a batch has jobs");
                let error = bury(shared, link, &first.call(), Loss::Died);
                first.promise.complete(Err(error));
                shared.requeue(jobs);
                return (None, 1);
            }
        }
    };
    drop(frames);
    let mut ran = 0;
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        ran += 1;
        let loss = match receive(link.as_mut(), &job.call()) {
            Exchange::Done(outcome) => {
                job.promise.complete(outcome);
                continue;
            }
            Exchange::Lost(loss) => loss,
            Exchange::Undelivered => Loss::Died,
        };
        if let Loss::Died = loss {
            // The worker died running this job: it runs its calls one by
            // one, so the ones behind it never started.
            let error = bury(shared, link, &job.call(), loss);
            job.promise.complete(Err(error));
            shared.requeue(jobs);
            return (None, ran);
        }
        let rest: Vec<Job> = jobs.collect();
        return (None, ran + settle_after_loss(shared, link, job, loss, rest));
    }
    (Some(link), ran)
}

/// Ends a worker lost on `failed` (timed out, or sent a bad or oversized
/// reply) in the middle of a batch, and settles the jobs sent behind it,
/// which the worker may have gone on to start: it is killed, and what it
/// wrote before it died is read to the end. Each job whose reply is there
/// is settled with it; the first one without a reply may have started, so
/// it fails (a task never runs twice); only the jobs behind that one
/// certainly never started, and they go back to the queue. If the replies
/// cannot be read to a clean end, every job behind fails. `failed` fails
/// as `loss` says. Returns how many of `rest` were settled (not requeued).
fn settle_after_loss(
    shared: &Shared,
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
    let status = link.finish(Duration::ZERO);
    let mut frames = frames.into_iter();
    // Whether the worker went past `failed`, and so may have started the
    // next job: a job that timed out may have finished just after its limit
    // (its reply comes first); a bad or oversized reply was its last word
    // on it. A frame that is no reply to the job it should answer makes the
    // rest untrustworthy (`clean` false), and so does an oversized reply:
    // its body was not read, so the frames after it cannot be found.
    let (mut moved_on, mut clean) = match loss {
        Loss::TooLarge { .. } => (true, false),
        Loss::TimedOut(_) => match frames.next() {
            Some(frame) => {
                let replied = matches!(check_reply(frame, &failed.call()), Exchange::Done(_));
                (replied, clean && replied)
            }
            None => (false, clean),
        },
        _ => (true, clean),
    };
    let error = lost(shared, &failed.call(), loss, pid, status);
    failed.promise.complete(Err(error));
    let mut settled = 0;
    let mut rest = rest.into_iter();
    while moved_on {
        let Some(job) = rest.next() else { break };
        settled += 1;
        if let Some(frame) = frames.next() {
            if let Exchange::Done(outcome) = check_reply(frame, &job.call()) {
                job.promise.complete(outcome);
                continue;
            }
            clean = false;
        }
        // No reply (or no trustworthy one): it may have started.
        let error = lost(shared, &job.call(), Loss::Died, pid, status);
        job.promise.complete(Err(error));
        moved_on = false;
    }
    if clean {
        shared.requeue(rest);
    } else {
        for job in rest {
            settled += 1;
            let error = lost(shared, &job.call(), Loss::Died, pid, status);
            job.promise.complete(Err(error));
        }
    }
    settled
}

/// What became of a direct call on a borrowed worker.
pub(crate) enum Direct {
    /// The call has its outcome; the worker comes back if still usable.
    Done(Outcome, Option<Box<dyn Link>>),
    /// The worker had died while idle (it is reaped); the call never
    /// reached it and can be queued instead.
    Undelivered,
}

/// Runs `call` on a worker a caller borrowed. Never starts a worker: only
/// slot threads do (the parent-death signal is tied to the forking thread).
pub(crate) fn run_direct(shared: &Shared, mut link: Box<dyn Link>, call: &Call<'_>) -> Direct {
    let loss = match exchange(link.as_mut(), call) {
        Exchange::Done(outcome) => return Direct::Done(outcome, Some(link)),
        Exchange::Undelivered => {
            link.finish(DEATH_GRACE);
            return Direct::Undelivered;
        }
        Exchange::Lost(loss) => loss,
    };
    Direct::Done(Err(bury(shared, link, call, loss)), None)
}

/// Runs `call`, starting a worker if the slot has none, and replacing one
/// that turns out to have died while idle. Returns the outcome and the
/// worker, if it is still usable.
fn run_job(
    shared: &Shared,
    index: usize,
    mut worker: Option<Box<dyn Link>>,
    call: &Call<'_>,
) -> (Outcome, Option<Box<dyn Link>>) {
    // Two tries: a worker that died idle is replaced without anyone noticing;
    // a fresh one that cannot even take a job is a real failure.
    let mut retried = false;
    loop {
        let mut link = match worker.take() {
            Some(link) => link,
            None => {
                // After terminate no worker is started (the backend refuses
                // too): the job fails as terminated instead of running.
                if shared.is_terminated() {
                    return (Err(terminated(call)), None);
                }
                match start_for(shared, index, call) {
                    Ok(link) => link,
                    Err(e) => return (Err(e), None),
                }
            }
        };
        let loss = match exchange(link.as_mut(), call) {
            Exchange::Done(outcome) => return (outcome, Some(link)),
            Exchange::Undelivered if !retried => {
                retried = true;
                link.finish(DEATH_GRACE);
                continue;
            }
            Exchange::Undelivered => Loss::Died,
            Exchange::Lost(loss) => loss,
        };
        return (Err(bury(shared, link, call, loss)), None);
    }
}

/// Ends a worker that failed `call` as `loss` described, and says how the
/// call failed.
fn bury(shared: &Shared, mut link: Box<dyn Link>, call: &Call<'_>, loss: Loss) -> Error {
    let pid = link.pid();
    let grace = match loss {
        Loss::Died => DEATH_GRACE,
        _ => {
            link.kill();
            Duration::ZERO
        }
    };
    let status = link.finish(grace);
    lost(shared, call, loss, pid, status)
}

/// Starts a worker to run `job`. A start that failed fast (e.g. a worker
/// killed while starting, by the OOM killer) is tried again, since the job
/// never ran: at most [`START_ATTEMPTS`] times, and not once the pool's start
/// timeout has been used up, so a start that times out is not retried and an
/// initializer failure ([`Error::InitializerFailed`]) never is.
fn start_for(shared: &Shared, index: usize, job: &Call<'_>) -> Result<Box<dyn Link>, Error> {
    let begun = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        match shared.start_worker(index) {
            Ok(link) => return Ok(link),
            Err(_) if shared.is_terminated() => return Err(terminated(job)),
            Err(Error::WorkerStart { .. })
                if attempt < START_ATTEMPTS && begun.elapsed() < shared.config.start_timeout =>
            {
                attempt += 1;
            }
            Err(Error::WorkerStart { message, .. }) => {
                return Err(Error::WorkerStart {
                    task: Some(job.task.to_string()),
                    message,
                })
            }
            Err(e) => return Err(e),
        }
    }
}

fn exchange(link: &mut dyn Link, job: &Call<'_>) -> Exchange {
    let header = if job.batch {
        wire::batch_header(job.id, job.fingerprint, job.task)
    } else {
        wire::call_header(job.id, job.fingerprint, job.task)
    };
    match link.send(&[&header, job.args]) {
        Ok(()) => {}
        Err(FrameError::TooLarge { len, max }) => {
            return Exchange::Done(Err(Error::FrameTooLarge {
                task: job.task.to_string(),
                len: len as u64,
                max: max as u64,
            }))
        }
        Err(_) => return Exchange::Undelivered,
    }
    receive(link, job)
}

/// Reads and checks the reply to `job`, already sent.
fn receive(link: &mut dyn Link, job: &Call<'_>) -> Exchange {
    let frame = match link.recv(job.timeout) {
        Ok(frame) => frame,
        Err(FrameError::TimedOut) => {
            return Exchange::Lost(Loss::TimedOut(job.timeout.unwrap_or_default()))
        }
        Err(FrameError::TooLarge { len, max }) => {
            return Exchange::Lost(Loss::TooLarge { len, max })
        }
        // End of file, a frame cut short by the death, a reset: the worker is gone.
        Err(FrameError::Closed | FrameError::Truncated { .. } | FrameError::Io(_)) => {
            return Exchange::Lost(Loss::Died)
        }
    };
    check_reply(frame, job)
}

/// Checks that `frame` is the reply to `job`, and reads it.
fn check_reply(frame: Vec<u8>, job: &Call<'_>) -> Exchange {
    let task = || job.task.to_string();
    match wire::parse_reply(frame) {
        Ok(Reply::Value { id, bytes }) if id == job.id && !job.batch => Exchange::Done(Ok(bytes)),
        // The caller decodes the records (see `crate::batch`).
        Ok(Reply::Results { id, bytes }) if id == job.id && job.batch => {
            Exchange::Done(Ok(bytes.into()))
        }
        Ok(Reply::Panic { id, report }) if id == job.id => Exchange::Done(Err(Error::Panic {
            task: task(),
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        })),
        Ok(Reply::Failed { id, error }) if id == job.id => {
            Exchange::Done(Err(remote_error(job.task, job.signature, error)))
        }
        Ok(Reply::Fatal { message }) => Exchange::Lost(Loss::Protocol(message)),
        Ok(other) => Exchange::Lost(Loss::Protocol(format!(
            "expected the reply to call {}, got {}",
            job.id,
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

fn terminated(job: &Call<'_>) -> Error {
    Error::Terminated {
        task: job.task.to_string(),
    }
}

fn lost(shared: &Shared, job: &Call<'_>, loss: Loss, pid: u32, status: ExitInfo) -> Error {
    let task = job.task.to_string();
    if shared.is_terminated() {
        return Error::Terminated { task };
    }
    match loss {
        Loss::Died => Error::WorkerDied { task, pid, status },
        Loss::TimedOut(limit) => Error::Timeout { task, limit },
        Loss::Protocol(message) => Error::Protocol { task, message },
        Loss::TooLarge { len, max } => Error::FrameTooLarge {
            task,
            len: len as u64,
            max: max as u64,
        },
    }
}

/// Workers asked to exit so far (this process), and how many of them did
/// not exit with code 0; read by tests through `__private`.
pub(crate) static RETIRED: [std::sync::atomic::AtomicUsize; 2] =
    [const { std::sync::atomic::AtomicUsize::new(0) }; 2];

/// Asks a worker to exit and reaps it. A worker that does not exit with code
/// 0 is reported on stderr (and counted): the hand-over was not clean.
pub(crate) fn retire(worker: Option<Box<dyn Link>>) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(mut link) = worker {
        let pid = link.pid();
        let _ = link.send(&[&wire::shutdown_message()]);
        let status = link.finish(SHUTDOWN_GRACE);
        RETIRED[0].fetch_add(1, Relaxed);
        if status != ExitInfo::Code(0) {
            RETIRED[1].fetch_add(1, Relaxed);
            eprintln!("procpool: retired worker {pid} ended with {status}, not exit code 0");
        }
    }
}
