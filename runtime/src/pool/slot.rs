//! A slot of a local pool: one thread that owns one worker at a time. It
//! takes the oldest queued job (and, when pipelining, the quick ones behind
//! it), runs it on its worker and settles its promise whatever happens to
//! the worker; starts, replaces and retires its workers; and checks on its
//! idle worker so one that dies idle is reaped and replaced at once. Every
//! wait ends when the worker dies. A job waits behind a busy worker only
//! when pipelined, and not while another worker waits for work (see
//! [`super::pipeline`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Config;
use super::exchange::{self, Exchange, Loss, DEATH_GRACE};
use super::initializer;
use super::pipeline::Durations;
use super::queue::{Next, Queue};
use super::retire::{over_memory, retire};
use crate::call::{CallRef, Job};
use crate::error::Error;
use crate::link::{Backend, KillSwitch, Link};
use crate::result::Outcome;
use crate::wire::FrameError;

/// How often an idle slot checks that its worker is still alive, so that a
/// worker killed while idle is reaped (no zombie) and replaced at once rather
/// than at the next job.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// How many times a job's worker start is tried (see `start_for`).
const START_ATTEMPTS: u32 = 3;

/// What the slots of one local pool share.
pub(crate) struct Shared {
    pub(crate) queue: Queue,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) config: Arc<Config>,
    /// One per slot: stops whichever worker the slot runs.
    pub(crate) switches: Vec<Arc<KillSwitch>>,
}

impl Shared {
    /// Starts a worker for slot `index` and runs the pool's initializer in
    /// it, if any: the worker is ready only once that returned.
    pub(crate) fn start_worker(&self, index: usize) -> Result<Box<dyn Link>, Error> {
        let begun = Instant::now();
        let started = self
            .backend
            .start(&self.switches[index], self.config.limits(), index)
            .and_then(|link| match &self.config.initializer {
                Some(init) => initializer::run(link, init, self.config.start_timeout),
                None => Ok(link),
            });
        match &started {
            Ok(link) => {
                // Calls may be sent to it now: a cancel kills it for them.
                self.switches[index].mark_ready();
                log::debug!(
                    target: "procpool",
                    "slot {index}: worker {} ready in {:?}",
                    link.pid(),
                    begun.elapsed()
                )
            }
            // A start cut short by `terminate` is part of it, not a failure.
            Err(e) if self.switches[index].is_closed() => log::debug!(
                target: "procpool",
                "slot {index}: worker start stopped by terminate: {e}"
            ),
            Err(e) => log::warn!(target: "procpool", "slot {index}: worker start failed: {e}"),
        }
        started
    }
}

/// Runs slot `index` until the pool is closed and drained, or terminated.
pub(crate) fn run(shared: Arc<Shared>, index: usize, first: Box<dyn Link>) {
    let queue = &shared.queue;
    let mut worker = Some(first);
    let mut durations = Durations::default();
    let mut batch = Vec::new();
    // The names of a batch's calls, kept for `durations` (reused).
    let mut tasks: Vec<&'static str> = Vec::new();
    // Whether the slot lost its worker since it last tried to start one.
    let mut lost_worker = false;
    loop {
        match queue.next_jobs(index, &mut worker, &durations, &mut batch, IDLE_CHECK) {
            Next::Jobs => {}
            Next::Idle { lost } => {
                check_idle(&shared, index, &mut worker, lost_worker || lost);
                lost_worker = false;
                continue;
            }
            Next::Stop => break,
            Next::Doomed => {
                worker = replace_doomed(&shared, index, worker.take());
                continue;
            }
        }
        let before = worker.as_ref().map(|link| link.pid());
        let started = Instant::now();
        tasks.clear();
        tasks.extend(batch.iter().map(|job| job.call().name()));
        let ran = run_jobs(&shared, index, &mut worker, &mut batch);
        let elapsed = started.elapsed();
        let after = worker.as_ref().map(|link| link.pid());
        // Only a batch run start to end by the worker it began with says
        // how long its tasks run: one that started a worker took the start's
        // time too (a cold start of a large program: hundreds of
        // milliseconds), one whose worker died ended early.
        if before.is_some() && after == before {
            durations.observe_batch(&tasks[..ran], elapsed);
        }
        if let Some(link) = &mut worker {
            if after != before {
                queue.reset_served(index);
            }
            if queue.served(index, ran) || over_memory(&shared.config, link.as_mut()) {
                retire(queue, worker.take());
            }
        }
        if worker.is_none() {
            queue.reset_served(index);
            // A cancel's kill dooms the worker it killed, which is gone:
            // the one started now is not to be replaced for it. The batch
            // is over too (each call of it settled or back in the queue):
            // while the next worker starts, no cancel may take one of its
            // calls for one waiting for that start.
            queue.end_batch_worker_gone(index);
            // Staff the slot again at once, before it waits for work (one
            // try per loss: if it fails, the next job tries again and says
            // why).
            if queue.wants_workers() {
                worker = shared.start_worker(index).ok();
            }
            lost_worker = false;
        }
    }
    if queue.is_terminated() {
        if let Some(mut link) = worker {
            link.kill();
            link.finish(Duration::ZERO);
        }
    } else {
        retire(queue, worker);
    }
}

/// Slot `index` is idle (`lost`: it lost its worker since it last tried
/// to start one).
fn check_idle(shared: &Shared, index: usize, worker: &mut Option<Box<dyn Link>>, lost: bool) {
    // Idle: reap a worker that died meanwhile (no zombie), and
    // keep the slot staffed, so the next job need not wait for a
    // start. One try per loss: if it fails, the next job tries
    // again and reports why, so a failing start never loops.
    let mut lost_worker = lost;
    if worker.as_mut().is_some_and(|w| w.has_exited()) {
        if let Some(dead) = worker.take() {
            let pid = dead.pid();
            let status = dead.finish(Duration::ZERO);
            if shared.queue.is_terminated() {
                log::debug!(target: "procpool", "slot {index}: worker {pid} ended");
            } else {
                log::warn!(
                    target: "procpool",
                    "slot {index}: idle worker {pid} died ({status}); replacing it"
                );
            }
        }
        lost_worker = true;
    }
    if lost_worker && worker.is_none() {
        *worker = shared.start_worker(index).ok();
        shared.queue.reset_served(index);
    }
}

/// Runs the jobs of `batch` (one alone, or several pipelined) on slot
/// `index`'s `worker`, left there if still usable; returns how many ran
/// (see [`run_batch`]).
#[inline]
fn run_jobs(
    shared: &Shared,
    index: usize,
    worker: &mut Option<Box<dyn Link>>,
    batch: &mut Vec<Job>,
) -> usize {
    if batch.len() == 1 {
        let job = batch.pop().expect("a batch has a job");
        let (outcome, link) = run_job(shared, index, worker.take(), job.call());
        // Settled before its result is (as a batch's calls are, in
        // `exchange::receive_batch`): a cancel that comes once the
        // result is there (a `map_async`'s chunks are cancelled even
        // when the map's result is there, an imap's until it read
        // them) finds the call finished, not running, and kills no
        // worker that already ran it.
        shared.queue.settle_one(index, |_, _| false);
        job.complete(outcome);
        *worker = link;
        1
    } else {
        let (link, ran) = run_batch(shared, index, worker.take(), batch);
        *worker = link;
        ran
    }
}

/// Ends a worker a cancel killed (possibly just after its last call
/// finished) and starts the slot's next one.
fn replace_doomed(
    shared: &Shared,
    index: usize,
    dead: Option<Box<dyn Link>>,
) -> Option<Box<dyn Link>> {
    if let Some(dead) = dead {
        dead.finish(DEATH_GRACE);
    }
    shared.queue.reset_served(index);
    if shared.queue.wants_workers() {
        shared.start_worker(index).ok()
    } else {
        None
    }
}

/// Runs a batch of jobs pipelined on one worker (starting one if the slot
/// has none): all calls go out in one write, and the replies are read in
/// order (see [`exchange::receive_batch`]). Returns the worker (if still
/// usable) and how many jobs ran; the others went back to the queue, or
/// were cancelled while the slot started the worker (never sent).
fn run_batch(
    shared: &Shared,
    index: usize,
    mut worker: Option<Box<dyn Link>>,
    batch: &mut Vec<Job>,
) -> (Option<Box<dyn Link>>, usize) {
    let queue = &shared.queue;
    // Every header in one buffer, not one allocation per call.
    let mut headers = Vec::with_capacity(batch.len() * 48);
    let mut ends = Vec::with_capacity(batch.len());
    let mut retried = false;
    let link = loop {
        let mut link = match worker.take() {
            Some(link) => link,
            None => {
                // As in `run_job`: nothing starts after terminate, and a
                // start that failed fast is retried.
                let started = match batch.first() {
                    Some(first) if queue.is_cancelled(first.id()) => Err(first.call().cancelled()),
                    Some(first) if queue.is_terminated() => Err(first.call().terminated()),
                    Some(first) => start_for(shared, index, first.call()),
                    None => return (None, 0),
                };
                match started {
                    Ok(link) => {
                        // The calls cancelled while the worker started
                        // never run: they leave the batch (the worker is
                        // kept for the others, or for the next batch).
                        queue.drop_cancelled(index, batch);
                        if batch.is_empty() {
                            return (Some(link), 0);
                        }
                        link
                    }
                    Err(e) => {
                        let mut jobs = batch.drain(..);
                        if let Some(first) = jobs.next() {
                            first.complete(Err(e));
                        }
                        queue.requeue(jobs);
                        return (None, 1);
                    }
                }
            }
        };
        let sent = send_all(link.as_mut(), batch, &mut headers, &mut ends);
        match sent {
            Ok(()) => {
                log::trace!(
                    target: "procpool",
                    "slot {index}: {} calls pipelined to worker {}",
                    batch.len(),
                    link.pid()
                );
                break link;
            }
            Err(FrameError::TooLarge { .. }) => {
                // Some call is over the frame limit: run them one by one,
                // so that only that one fails.
                let mut jobs = batch.drain(..);
                let first = jobs.next().expect("a batch has jobs");
                queue.requeue(jobs);
                let (outcome, link) = run_job(shared, index, Some(link), first.call());
                first.complete(outcome);
                return (link, 1);
            }
            Err(_) if !retried => {
                retried = true;
                link.finish(DEATH_GRACE);
            }
            Err(_) => {
                let mut jobs = batch.drain(..);
                let first = jobs.next().expect("a batch has jobs");
                let error = exchange::bury(queue, link, first.call(), Loss::Died);
                first.complete(Err(error));
                queue.requeue(jobs);
                return (None, 1);
            }
        }
    };
    let end = exchange::receive_batch(queue, index, link, batch);
    (end.link, end.ran)
}

/// Sends every call of `batch` to `link` in one write, their headers put
/// in `headers` one after the other (where each ends in `ends`).
#[inline]
fn send_all(
    link: &mut dyn Link,
    batch: &[Job],
    headers: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), FrameError> {
    headers.clear();
    ends.clear();
    for job in batch.iter() {
        job.call().append_header(headers);
        ends.push(headers.len());
    }
    let frames: Vec<[&[u8]; 2]> = batch
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            [&headers[start..ends[i]], &job.call().args[..]]
        })
        .collect();
    link.send_batch(&frames)
}

/// Runs `call`, starting a worker if the slot has none, and replacing one
/// that turns out to have died while idle. Returns the outcome and the
/// worker, if it is still usable.
fn run_job(
    shared: &Shared,
    index: usize,
    mut worker: Option<Box<dyn Link>>,
    call: CallRef<'_>,
) -> (Outcome, Option<Box<dyn Link>>) {
    // Two tries: a worker that died idle (or is stopped and never reads the
    // call) is replaced without anyone noticing; a fresh one that cannot
    // even take a job is a real failure.
    let mut retried = false;
    loop {
        let mut link = match worker.take() {
            Some(link) => link,
            None => {
                // A cancel that found no worker to kill (the slot was
                // between two) must still stop the call, as cancelled even
                // if the pool was terminated since (the cancel answered
                // first).
                if shared.queue.is_cancelled(call.id) {
                    return (Err(call.cancelled()), None);
                }
                // After terminate no worker is started (the backend refuses
                // too): the job fails as terminated instead of running.
                if shared.queue.is_terminated() {
                    return (Err(call.terminated()), None);
                }
                match start_for(shared, index, call) {
                    Ok(link) if shared.queue.is_cancelled(call.id) => {
                        return (Err(call.cancelled()), Some(link))
                    }
                    Ok(link) => link,
                    Err(e) => return (Err(e), None),
                }
            }
        };
        let loss = match exchange::exchange(link.as_mut(), call) {
            Exchange::Done(outcome) => return (outcome, Some(link)),
            Exchange::Undelivered if !retried => {
                retried = true;
                link.finish(DEATH_GRACE);
                continue;
            }
            Exchange::Unread(_) if !retried => {
                retried = true;
                link.kill();
                link.finish(Duration::ZERO);
                continue;
            }
            Exchange::Undelivered => Loss::Died,
            Exchange::Unread(loss) => loss,
            Exchange::Lost(loss) => loss,
        };
        return (Err(exchange::bury(&shared.queue, link, call, loss)), None);
    }
}

/// Starts a worker to run `call`. A start that failed fast (e.g. a worker
/// killed while starting, by the OOM killer) is tried again, since the call
/// never ran: at most [`START_ATTEMPTS`] times, and not once the pool's start
/// timeout has been used up, so a start that times out is not retried and an
/// initializer failure ([`Error::InitializerFailed`]) never is.
fn start_for(shared: &Shared, index: usize, call: CallRef<'_>) -> Result<Box<dyn Link>, Error> {
    match start_retrying(shared, index, || shared.queue.is_cancelled(call.id)) {
        Ok(link) => Ok(link),
        // A cancel that came during the start killed the new worker:
        // the call is not tried again.
        Err(_) if shared.queue.is_cancelled(call.id) => Err(call.cancelled()),
        Err(_) if shared.queue.is_terminated() => Err(call.terminated()),
        Err(Error::WorkerStart { message, .. }) => Err(Error::WorkerStart {
            task: call.name().to_string(),
            message,
        }),
        Err(e) => Err(e),
    }
}

/// Starts slot `index`'s worker, trying a start that failed fast again
/// (a worker killed while starting: by the OOM killer, or with the fork
/// server that forked it) as [`start_for`] says, unless the pool was
/// terminated or `stop()`. For the pool's first workers too, so that
/// `build` does not fail for such a loss.
pub(crate) fn start_retrying(
    shared: &Shared,
    index: usize,
    stop: impl Fn() -> bool,
) -> Result<Box<dyn Link>, Error> {
    let begun = Instant::now();
    let mut attempt = 1;
    loop {
        match shared.start_worker(index) {
            Ok(link) => return Ok(link),
            Err(e) if shared.queue.is_terminated() || stop() => return Err(e),
            Err(Error::WorkerStart { .. })
                if attempt < START_ATTEMPTS && begun.elapsed() < shared.config.start_timeout =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
