//! The dispatcher: one thread per pool slot takes the oldest queued job, runs
//! it on the slot's worker and settles its promise, whatever happens to the
//! worker. A job never waits behind a busy worker while another is free, and
//! every wait ends when the worker dies.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::Link;
use crate::error::{Error, ExitInfo};
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

/// Runs slot `index` until the pool is closed and drained, or terminated.
pub(crate) fn run_slot(shared: Arc<Shared>, index: usize, first: Box<dyn Link>) {
    let mut worker = Some(first);
    let mut served = 0usize;
    // Whether the slot lost its worker since it last tried to start one.
    let mut lost_worker = false;
    loop {
        let job = match shared.next_job(IDLE_CHECK) {
            Next::Job(job) => job,
            Next::Idle => {
                // Idle: reap a worker that died meanwhile (no zombie), and
                // keep the slot staffed, so the next job need not wait for a
                // start. One try per loss: if it fails, the next job tries
                // again and reports why, so a failing start never loops.
                if worker.as_mut().is_some_and(|w| w.has_exited()) {
                    if let Some(dead) = worker.take() {
                        dead.finish(Duration::ZERO);
                    }
                    lost_worker = true;
                }
                if lost_worker && worker.is_none() {
                    worker = shared.start_worker(index).ok();
                    served = 0;
                }
                lost_worker = false;
                continue;
            }
            Next::Stop => break,
        };
        let (outcome, link) = run_job(&shared, index, worker.take(), &job);
        job.promise.complete(outcome);
        worker = link;
        if worker.is_some() {
            served += 1;
            if shared
                .config
                .max_tasks_per_child
                .is_some_and(|max| served >= max)
            {
                retire(worker.take());
            }
        }
        if worker.is_none() {
            served = 0;
            lost_worker = true;
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

/// Runs `job`, starting a worker if the slot has none, and replacing one that
/// turns out to have died while idle. Returns the outcome and the worker, if
/// it is still usable.
fn run_job(
    shared: &Shared,
    index: usize,
    mut worker: Option<Box<dyn Link>>,
    job: &Job,
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
                    return (Err(terminated(job)), None);
                }
                match start_for(shared, index, job) {
                    Ok(link) => link,
                    Err(e) => return (Err(e), None),
                }
            }
        };
        let loss = match exchange(link.as_mut(), job) {
            Exchange::Done(outcome) => return (outcome, Some(link)),
            Exchange::Undelivered if !retried => {
                retried = true;
                link.finish(DEATH_GRACE);
                continue;
            }
            Exchange::Undelivered => Loss::Died,
            Exchange::Lost(loss) => loss,
        };
        let pid = link.pid();
        let grace = match loss {
            Loss::Died => DEATH_GRACE,
            _ => {
                link.kill();
                Duration::ZERO
            }
        };
        let status = link.finish(grace);
        return (Err(lost(shared, job, loss, pid, status)), None);
    }
}

/// Starts a worker to run `job`. A start that failed fast (e.g. a worker
/// killed while starting, by the OOM killer) is tried again, since the job
/// never ran: at most [`START_ATTEMPTS`] times, and not once the pool's start
/// timeout has been used up, so a start that times out is not retried and an
/// initializer failure ([`Error::InitializerFailed`]) never is.
fn start_for(shared: &Shared, index: usize, job: &Job) -> Result<Box<dyn Link>, Error> {
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

fn exchange(link: &mut dyn Link, job: &Job) -> Exchange {
    let header = if job.batch {
        wire::batch_header(job.id, job.fingerprint, &job.task)
    } else {
        wire::call_header(job.id, job.fingerprint, &job.task)
    };
    match link.send(&[&header, &job.args]) {
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
    let task = || job.task.to_string();
    match wire::parse_reply(&frame) {
        Ok(Reply::Value { id, bytes }) if id == job.id && !job.batch => Exchange::Done(Ok(bytes)),
        // The caller decodes the records (see `crate::batch`).
        Ok(Reply::Results { id, bytes }) if id == job.id && job.batch => Exchange::Done(Ok(bytes)),
        Ok(Reply::Panic { id, report }) if id == job.id => Exchange::Done(Err(Error::Panic {
            task: task(),
            message: report.message,
            location: report.location,
            backtrace: report.backtrace,
        })),
        Ok(Reply::Failed { id, error }) if id == job.id => {
            Exchange::Done(Err(remote_error(&job.task, job.signature, error)))
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

fn terminated(job: &Job) -> Error {
    Error::Terminated {
        task: job.task.to_string(),
    }
}

fn lost(shared: &Shared, job: &Job, loss: Loss, pid: u32, status: ExitInfo) -> Error {
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
fn retire(worker: Option<Box<dyn Link>>) {
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
