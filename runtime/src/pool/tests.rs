//! Unit tests of the scheduler and the slot loop on fake workers
//! (`crate::link::fake`): FIFO order, the direct path, pipelining limits,
//! a worker lost in the middle of a batch, retirement, and terminate racing
//! a start. No process is started; each runs in milliseconds, but for one
//! that waits out a 2 s time limit.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Config;
use super::dispatcher::Dispatcher;
use super::local::LocalPool;
use super::pipeline::{self, Durations, BYTE_BUDGET, MAX_WINDOW};
use crate::call::{Call, Job, Kind};
use crate::error::Error;
use crate::link::fake::{Action, FakeBackend, Log};
use crate::result::{self, AsyncResult, CancelOutcome};

fn config(processes: usize, max_tasks_per_child: Option<usize>) -> Arc<Config> {
    Arc::new(Config {
        processes,
        max_frame: 1 << 20,
        task_timeout: None,
        max_tasks_per_child,
        max_memory_per_child: None,
        start_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(5),
        initializer: None,
        #[cfg(feature = "redis")]
        remote: None,
    })
}

/// The script most tests use: `slow` answers after 30 ms, `slower` after
/// 150 ms, `die` dies, `hang` never answers, any other task echoes its
/// arguments, except that an argument `[0xDD]` dies, `[0xEE]` hangs,
/// `[0x5A]` stalls (its reply begins and stops), `[0xDB]` kills its worker
/// before it starts and `[0xD1]` does so the first time only.
fn script(task: &str, args: &[u8]) -> Action {
    static D1_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match (task, args) {
        ("slow", _) => Action::ReplyAfter(Duration::from_millis(30), args.to_vec()),
        ("slower", _) => Action::ReplyAfter(Duration::from_millis(150), args.to_vec()),
        (_, [0xDB]) => Action::DieBeforeStart,
        (_, [0xD1]) if !D1_SEEN.swap(true, Ordering::SeqCst) => Action::DieBeforeStart,
        ("die", _) | (_, [0xDD]) => Action::Die,
        ("hang", _) | (_, [0xEE]) => Action::Hang,
        (_, [0x5A]) => Action::Stall,
        _ => Action::Reply(args.to_vec()),
    }
}

struct Fixture {
    pool: LocalPool,
    backend: Arc<FakeBackend>,
    log: Arc<Log>,
    next_id: u64,
}

impl Fixture {
    fn new(processes: usize, max_tasks_per_child: Option<usize>) -> Fixture {
        let backend = Arc::new(FakeBackend::new(script));
        let log = backend.log.clone();
        let pool = LocalPool::start(
            config(processes, max_tasks_per_child),
            Box::new(backend.clone()),
        )
        .unwrap();
        Fixture {
            pool,
            backend,
            log,
            next_id: 1,
        }
    }

    fn call(&mut self, task: &str, args: &[u8], timeout: Option<Duration>) -> Call {
        let id = self.next_id;
        self.next_id += 1;
        Call {
            id,
            task: crate::task::intern(task, "", 0),
            args: args.to_vec().into(),
            kind: Kind::Single,
            timeout: timeout.into(),
        }
    }

    fn submit(&mut self, task: &str, args: &[u8]) -> AsyncResult<()> {
        self.submit_with(task, args, None)
    }

    fn submit_with(
        &mut self,
        task: &str,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> AsyncResult<()> {
        let call = self.call(task, args, timeout);
        let (promise, result) = result::pending(call.task, crate::result::Hub::default(), call.id);
        self.pool.submit(Job::new(call, promise));
        result
    }

    /// Runs `quick` (argument `[0xAB]`) until the slot knows it is quick
    /// and pipelines it. The slot batches only a task whose mean run time is
    /// under 1 ms (`pipeline.rs`), and on a loaded machine one late wake-up
    /// can lift a fresh mean past that: so rounds run, each a `slow` call
    /// (argument `[0xAB]` too) that holds the worker while a round of calls
    /// queues behind it, until some calls of a round were sent in one batch.
    /// That round ends with a batch of several calls, so the mean the test
    /// goes on with is one a single slow call would not lift past 1 ms.
    fn prime(&mut self, quick: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.log.received().len();
            let busy = self.submit("slow", &[0xAB]);
            let round: Vec<_> = (0..32).map(|_| self.submit(quick, &[0xAB])).collect();
            value(&busy).unwrap();
            round.iter().for_each(|r| drop(value(r).unwrap()));
            let batched = self.log.received()[seen..]
                .iter()
                .any(|r| r.task == quick && r.batch > 1);
            if batched {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{quick}` was still not pipelined after 20 s of warm-up"
            );
        }
    }
}

/// The outcome's bytes, or its error.
fn value(result: &AsyncResult<()>) -> Result<Vec<u8>, Error> {
    match &*result.wait_outcome() {
        Ok(body) => Ok(body.contiguous().to_vec()),
        Err(e) => Err(e.clone()),
    }
}

/// Waits until `done` holds (at most 5 s).
fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn queued_jobs_run_in_fifo_order() {
    let mut f = Fixture::new(1, None);
    let busy = f.submit("slow", &[0]);
    let results: Vec<_> = (0..40u8).map(|i| f.submit("t", &[i])).collect();
    value(&busy).unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(value(r).unwrap(), [i as u8]);
    }
    let order: Vec<u8> = f
        .log
        .ran()
        .iter()
        .filter(|r| r.task == "t")
        .map(|r| r.args[0])
        .collect();
    assert_eq!(order, (0..40).collect::<Vec<u8>>());
}

#[test]
fn a_direct_call_borrows_an_idle_worker_and_never_overtakes_the_queue() {
    let mut f = Fixture::new(1, None);
    // Idle worker, empty queue: the call runs on the calling thread (once
    // the slot thread has parked its first worker).
    let mut outcome = None;
    until(|| {
        let call = f.call("t", &[7], None);
        outcome = f.pool.run_here(call).ok();
        outcome.is_some()
    });
    assert_eq!(outcome.unwrap().unwrap().contiguous().to_vec(), [7]);
    // The worker is busy and a job waits behind it: the direct call queues.
    let busy = f.submit("slow", &[1]);
    until(|| f.log.received().iter().any(|r| r.task == "slow"));
    let queued = f.submit("t", &[2]);
    let call = f.call("t", &[3], None);
    assert!(f.pool.run_here(call).is_err(), "overtook a queued job");
    value(&busy).unwrap();
    value(&queued).unwrap();
    // Idle again: the worker is lent once more.
    until(|| {
        let call = f.call("t", &[4], None);
        f.pool.run_here(call).is_ok()
    });
    // Everything ran on the one worker, in order.
    let args: Vec<u8> = f.log.ran().iter().map(|r| r.args[0]).collect();
    assert_eq!(args, [7, 1, 2, 4]);
}

#[test]
fn a_job_queued_just_after_a_direct_call_wakes_the_slot_at_once() {
    // A direct call longer than the slot's idle check (`IDLE_CHECK`,
    // 100 ms): the slot thread, done waiting for work, waits for its lent
    // worker, which comes back idle with nothing queued (no wake-up). The
    // job queued next must wake the slot, not wait out the rest of that
    // wait (about 50 ms here). The quickest of five rounds tells.
    let mut f = Fixture::new(1, None);
    let mut quickest = Duration::MAX;
    for i in 1..=5u8 {
        let mut call = f.call("slower", &[i], None);
        // Lent as soon as the slot parks its worker again.
        let lent = loop {
            match f.pool.run_here(call) {
                Ok(outcome) => break outcome,
                Err(back) => call = back,
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        assert_eq!(lent.unwrap().contiguous().to_vec(), [i]);
        let begun = Instant::now();
        assert_eq!(value(&f.submit("t", &[i])).unwrap(), [i]);
        quickest = quickest.min(begun.elapsed());
    }
    assert!(
        quickest < Duration::from_millis(25),
        "the quickest round took {quickest:?}"
    );
}

#[test]
fn pipelined_batches_respect_the_window_and_the_byte_budget() {
    let mut f = Fixture::new(1, None);
    f.prime("t");
    // Small calls: batched, at most MAX_WINDOW per write.
    let busy = f.submit("slow", &[0]);
    let small: Vec<_> = (0..300u32)
        .map(|i| f.submit("t", &i.to_le_bytes()))
        .collect();
    value(&busy).unwrap();
    small.iter().for_each(|r| drop(value(r).unwrap()));
    // (Only these calls: the warm-up's were batched too.)
    let batches: Vec<usize> = f
        .log
        .ran()
        .iter()
        .filter(|r| r.args != [0xAB])
        .map(|r| r.batch)
        .collect();
    assert!(
        batches.iter().any(|&b| b > 1),
        "never pipelined: {batches:?}"
    );
    assert!(batches.iter().all(|&b| b <= MAX_WINDOW), "{batches:?}");
    // Large calls: a batch holds at most BYTE_BUDGET bytes of arguments.
    let big = vec![1u8; 10 << 10];
    let busy = f.submit("slow", &[0]);
    let large: Vec<_> = (0..40).map(|_| f.submit("t", &big)).collect();
    value(&busy).unwrap();
    large.iter().for_each(|r| drop(value(r).unwrap()));
    let widest = f
        .log
        .ran()
        .iter()
        .filter(|r| r.args.len() == big.len())
        .map(|r| r.batch)
        .max()
        .unwrap();
    assert!(widest > 1, "large calls were never pipelined");
    assert!(widest * big.len() <= BYTE_BUDGET, "a batch of {widest}");
}

#[test]
fn a_batch_stops_at_max_tasks_per_child() {
    let mut f = Fixture::new(1, Some(5));
    f.prime("t");
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (0..40u8).map(|i| f.submit("t", &[i])).collect();
    value(&busy).unwrap();
    jobs.iter().for_each(|r| drop(value(r).unwrap()));
    let mut per_worker: HashMap<u32, usize> = HashMap::new();
    for r in f.log.ran() {
        *per_worker.entry(r.worker).or_default() += 1;
        assert!(r.batch <= 5, "a batch of {} past the limit", r.batch);
    }
    assert!(per_worker.values().all(|&n| n <= 5), "{per_worker:?}");
}

#[test]
fn workers_retire_after_max_tasks_per_child() {
    let mut f = Fixture::new(1, Some(3));
    for i in 0..10u8 {
        assert_eq!(value(&f.submit("t", &[i])).unwrap(), [i]);
    }
    let mut per_worker: HashMap<u32, usize> = HashMap::new();
    for r in f.log.ran() {
        *per_worker.entry(r.worker).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_worker.values().copied().collect();
    counts.sort();
    assert_eq!(counts, [1, 3, 3, 3]);
    // Each full worker was asked to exit, not killed.
    until(|| f.log.shutdowns().len() == 3);
}

#[test]
fn a_worker_that_dies_mid_batch_fails_only_its_call_and_the_rest_run_once() {
    let mut f = Fixture::new(1, None);
    f.prime("t");
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (0..20u8)
        .map(|i| f.submit("t", &[if i == 10 { 0xDD } else { i }]))
        .collect();
    value(&busy).unwrap();
    for (i, r) in jobs.iter().enumerate() {
        match value(r) {
            Ok(bytes) => assert_eq!(bytes, [i as u8]),
            Err(Error::WorkerDied { .. }) => assert_eq!(i, 10),
            Err(e) => panic!("job {i}: {e}"),
        }
    }
    let mut runs: HashMap<u8, usize> = HashMap::new();
    for r in f.log.ran().iter().filter(|r| r.task == "t") {
        *runs.entry(r.args[0]).or_default() += 1;
    }
    for i in (0..20u8).filter(|&i| i != 10) {
        assert_eq!(
            runs.get(&i),
            Some(&1),
            "job {i} ran {:?} times",
            runs.get(&i)
        );
    }
    // The call the worker died in had started: it is not run again.
    assert_eq!(runs.get(&0xDD), Some(&1), "the fatal call ran again");
    // The worker died inside a batch: the calls behind it were written to
    // it but never started, and ran on its replacement.
    assert!(
        f.log.received().iter().any(|r| !r.ran && r.batch > 1),
        "the death did not happen inside a batch"
    );
}

/// Each job's outcome, and how many times each argument ran.
type BatchEnd = (Vec<Result<Vec<u8>, Error>>, HashMap<u8, usize>);

/// Jobs 0..20 of task `t` pipelined on one primed worker, job 10 with
/// argument `arg`.
fn batch_around(f: &mut Fixture, arg: u8) -> BatchEnd {
    f.prime("t");
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (0..20u8)
        .map(|i| f.submit("t", &[if i == 10 { arg } else { i }]))
        .collect();
    value(&busy).unwrap();
    let outcomes = jobs.iter().map(value).collect();
    let mut runs: HashMap<u8, usize> = HashMap::new();
    for r in f.log.ran().iter().filter(|r| r.task == "t") {
        *runs.entry(r.args[0]).or_default() += 1;
    }
    (outcomes, runs)
}

#[test]
fn a_call_whose_worker_dies_before_starting_it_runs_on_the_next_one() {
    let mut f = Fixture::new(1, None);
    let (outcomes, runs) = batch_around(&mut f, 0xD1);
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let arg = if i == 10 { 0xD1 } else { i as u8 };
        assert_eq!(outcome.unwrap(), [arg], "job {i}");
        assert_eq!(
            runs.get(&arg),
            Some(&1),
            "job {i} ran {:?} times",
            runs.get(&arg)
        );
    }
    // It was taken by the worker that died, inside a batch, and never ran there.
    let taken: Vec<_> = f
        .log
        .received()
        .into_iter()
        .filter(|r| r.args == [0xD1])
        .collect();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert!(!taken[0].ran && taken[0].batch > 1 && taken[1].ran);
    assert_ne!(taken[0].worker, taken[1].worker);
}

#[test]
fn a_call_whose_workers_keep_dying_before_starting_it_fails_after_two() {
    let mut f = Fixture::new(1, None);
    let (outcomes, runs) = batch_around(&mut f, 0xDB);
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(bytes) => assert_eq!(bytes, [i as u8]),
            Err(Error::WorkerDied { .. }) => assert_eq!(i, 10),
            Err(e) => panic!("job {i}: {e}"),
        }
        if i != 10 {
            assert_eq!(runs.get(&(i as u8)), Some(&1), "job {i}");
        }
    }
    let taken = f
        .log
        .received()
        .into_iter()
        .filter(|r| r.args == [0xDB])
        .count();
    assert_eq!(taken, 2, "taken by two workers, then failed");
}

#[test]
fn a_call_that_times_out_mid_batch_fails_alone_and_the_calls_behind_run_once() {
    let mut f = Fixture::new(1, None);
    f.prime("t");
    // The hung call fails only once its limit is up, but so would any other
    // call whose reply came later than that: the limit is generous, so a
    // stall of the machine cannot time out a call that answers.
    let limit = Some(Duration::from_secs(2));
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (0..20u8)
        .map(|i| f.submit_with("t", &[if i == 10 { 0xEE } else { i }], limit))
        .collect();
    value(&busy).unwrap();
    for (i, r) in jobs.iter().enumerate() {
        match value(r) {
            Ok(bytes) => assert_eq!(bytes, [i as u8]),
            Err(Error::Timeout { .. }) => assert_eq!(i, 10),
            Err(e) => panic!("job {i}: {e}"),
        }
    }
    let ran: Vec<u8> = f
        .log
        .ran()
        .iter()
        .filter(|r| r.task == "t")
        .map(|r| r.args[0])
        .collect();
    for i in (0..20u8).filter(|&i| i != 10) {
        assert_eq!(ran.iter().filter(|&&a| a == i).count(), 1, "job {i}");
    }
}

/// A reply that begins and stops in the middle of a batch: where the next
/// frame starts is lost, so the calls behind it (which may have run, their
/// replies swallowed by the stalled frame) fail rather than run twice.
#[test]
fn a_stalled_reply_mid_batch_fails_its_call_and_no_call_behind_runs_twice() {
    let mut f = Fixture::new(1, None);
    f.prime("t");
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (0..20u8)
        .map(|i| f.submit("t", &[if i == 10 { 0x5A } else { i }]))
        .collect();
    value(&busy).unwrap();
    for (i, r) in jobs.iter().enumerate() {
        match value(r) {
            Ok(bytes) => assert_eq!(bytes, [i as u8]),
            Err(Error::Protocol { message, .. }) => {
                assert_eq!(i, 10);
                assert!(message.contains("stopped sending"), "{message}");
            }
            Err(Error::WorkerDied { .. }) => assert!(i > 10, "job {i}"),
            Err(e) => panic!("job {i}: {e}"),
        }
    }
    assert!(matches!(value(&jobs[10]), Err(Error::Protocol { .. })));
    let mut runs: HashMap<u8, usize> = HashMap::new();
    for r in f
        .log
        .ran()
        .iter()
        .filter(|r| r.task == "t" && r.args[0] < 20)
    {
        *runs.entry(r.args[0]).or_default() += 1;
    }
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    assert!(
        f.log
            .received()
            .iter()
            .any(|r| r.args == [0x5A] && r.batch > 1),
        "the stall did not happen inside a batch"
    );
    assert_eq!(value(&f.submit("t", &[7])).unwrap(), [7], "replaced");
}

#[test]
fn a_bad_reply_fails_its_call_and_the_worker_is_replaced() {
    let backend = Arc::new(FakeBackend::new(|task, args| match task {
        "bad" => Action::Garbage,
        _ => Action::Reply(args.to_vec()),
    }));
    let pool = LocalPool::start(config(1, None), Box::new(backend.clone())).unwrap();
    let mut f = Fixture {
        log: backend.log.clone(),
        pool,
        backend,
        next_id: 1,
    };
    assert!(matches!(
        value(&f.submit("bad", &[1])),
        Err(Error::Protocol { .. })
    ));
    assert_eq!(value(&f.submit("t", &[2])).unwrap(), [2]);
    assert_eq!(f.backend.starts.load(Ordering::SeqCst), 2);
}

#[test]
fn terminate_racing_a_start_starts_nothing_after_it() {
    let mut f = Fixture::new(1, None);
    *f.backend.start_delay.lock().unwrap() = Duration::from_millis(200);
    // The worker dies; its slot begins a (slow) start of a replacement.
    assert!(matches!(
        value(&f.submit("die", &[0])),
        Err(Error::WorkerDied { .. })
    ));
    let waiting: Vec<_> = (0..5u8).map(|i| f.submit("t", &[i])).collect();
    std::thread::sleep(Duration::from_millis(50));
    let starts = f.backend.starts.load(Ordering::SeqCst);
    f.pool.terminate();
    assert_eq!(
        f.backend.starts.load(Ordering::SeqCst),
        starts,
        "a worker started after terminate"
    );
    for r in &waiting {
        assert!(matches!(value(r), Err(Error::Terminated { .. })));
    }
    assert!(f.log.ran().iter().all(|r| r.task != "t"));
}

#[test]
fn a_failed_start_is_retried_for_a_job_that_never_ran() {
    let mut f = Fixture::new(1, None);
    // The next two starts fail: the slot's own restart after the death, and
    // the first start for the job; the job's second start succeeds.
    f.backend.fail_starts.store(2, Ordering::SeqCst);
    assert!(matches!(
        value(&f.submit("die", &[0])),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(value(&f.submit("t", &[9])).unwrap(), [9]);
    assert_eq!(f.backend.starts.load(Ordering::SeqCst), 4);
}

#[test]
fn the_pipelining_window_follows_observed_run_times() {
    let mut d = Durations::default();
    let (quick, slow) = ("quick", "slow");
    assert_eq!(d.window("quick"), 1, "an unknown task is never batched");
    d.observe_batch(&[quick], Duration::from_micros(1));
    assert_eq!(d.window("quick"), MAX_WINDOW);
    d.observe_batch(&[slow], Duration::from_millis(5));
    assert_eq!(d.window("slow"), 1);
    // A batch's time is shared among its calls (1 ms each here), and the
    // mean moves one step per call: 1 µs -> 0.25 ms -> 0.44 ms, a window
    // of 2 ms / 0.44 ms = 4...
    d.observe_batch(&[quick, quick, slow], Duration::from_millis(3));
    assert_eq!(d.window("quick"), 4);
    // ... and a long run of calls takes it to their time: 10 µs each.
    d.observe_batch(&[quick; 200], Duration::from_millis(2));
    let window = d.window("quick");
    assert!(
        (195..=200).contains(&window),
        "2 ms / about 10 µs: {window}"
    );
    // (Names are told apart by content too, not only by address.)
    let other = String::from("slow").leak();
    d.observe_batch(&[other], Duration::from_millis(5));
    assert_eq!(d.window("slow"), 1);
    // No batching while another slot is idle; never past the tasks left.
    assert_eq!(pipeline::extra_jobs(100, 1, None), 0);
    assert_eq!(pipeline::extra_jobs(5000, 0, None), MAX_WINDOW - 1);
    assert_eq!(pipeline::extra_jobs(100, 0, Some(4)), 3);
    assert_eq!(pipeline::extra_jobs(2, 0, None), 2);
}

#[test]
fn a_cancelled_queued_job_never_reaches_a_worker() {
    let mut f = Fixture::new(1, None);
    let busy = f.submit("slow", &[0]);
    let jobs: Vec<_> = (1..6u8).map(|i| f.submit("t", &[i])).collect();
    // Ids count from 1: `busy` is 1, the job of argument `a` is `a + 1`.
    let id = |arg: u64| arg + 1;
    assert_eq!(f.pool.cancel(id(3)), CancelOutcome::NotStarted);
    assert_eq!(f.pool.cancel(id(3)), CancelOutcome::Finished, "only once");
    value(&busy).unwrap();
    for (i, r) in jobs.iter().enumerate() {
        match value(r) {
            Ok(bytes) => assert_eq!(bytes, [i as u8 + 1]),
            Err(Error::Cancelled { .. }) => assert_eq!(i, 2),
            Err(e) => panic!("job {i}: {e}"),
        }
    }
    let ran: Vec<u8> = f.log.received().iter().map(|r| r.args[0]).collect();
    assert_eq!(ran, [0, 1, 2, 4, 5]);
}

#[test]
fn cancel_queued_settles_every_waiting_job_and_spares_the_running_one() {
    let mut f = Fixture::new(1, None);
    let busy = f.submit("slow", &[0]);
    until(|| f.log.received().iter().any(|r| r.task == "slow"));
    let jobs: Vec<_> = (1..8u8).map(|i| f.submit("t", &[i])).collect();
    assert_eq!(f.pool.cancel_queued(), 7);
    assert_eq!(value(&busy).unwrap(), [0]);
    for r in &jobs {
        assert!(matches!(value(r), Err(Error::Cancelled { .. })));
    }
    assert_eq!(f.log.received().len(), 1);
}

#[test]
fn a_burst_of_jobs_spreads_over_the_idle_workers() {
    // As many jobs as idle workers, submitted at once: each worker runs one,
    // even though the first to answer is free again long before the others
    // have woken (a pool's first tasks reach every worker it started).
    let mut f = Fixture::new(8, None);
    for burst in 0..30u8 {
        until(|| f.pool.queue().idle_workers() == 8);
        let results: Vec<_> = (0..8u8).map(|i| f.submit("t", &[burst, i])).collect();
        for r in &results {
            value(r).unwrap();
        }
        let workers: std::collections::HashSet<u32> = f
            .log
            .ran()
            .iter()
            .filter(|r| r.args[0] == burst)
            .map(|r| r.worker)
            .collect();
        assert_eq!(workers.len(), 8, "burst {burst} ran on {workers:?}");
    }
}

/// A closed start gate holds queued jobs (the one running finishes);
/// opened, they run in order; jobs cancelled while held never run; and a
/// closed pool drains its queue whatever the gate says.
#[cfg(feature = "redis")]
#[test]
fn a_closed_start_gate_holds_queued_jobs_until_it_opens() {
    use std::sync::atomic::AtomicBool;
    let mut f = Fixture::new(1, None);
    let open = Arc::new(AtomicBool::new(true));
    let gate = open.clone();
    f.pool
        .set_start_gate(Box::new(move || gate.load(Ordering::SeqCst)));
    let busy = f.submit("slow", &[0]);
    until(|| f.log.received().iter().any(|r| r.task == "slow"));
    open.store(false, Ordering::SeqCst);
    let held: Vec<_> = (1..6u8).map(|i| f.submit("t", &[i])).collect();
    assert_eq!(value(&busy).unwrap(), [0], "the running job finishes");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(f.log.received().len(), 1, "nothing starts while held");
    assert!(held.iter().all(|r| !r.ready()));
    // Cancelled while held: never runs.
    assert_eq!(f.pool.cancel(3), CancelOutcome::NotStarted);
    open.store(true, Ordering::SeqCst);
    for (i, r) in held.iter().enumerate() {
        match value(r) {
            Ok(bytes) => assert_eq!(bytes, [i as u8 + 1]),
            Err(Error::Cancelled { .. }) => assert_eq!(i, 1),
            Err(e) => panic!("job {i}: {e}"),
        }
    }
    let ran: Vec<u8> = f.log.received().iter().map(|r| r.args[0]).collect();
    assert_eq!(ran, [0, 1, 3, 4, 5]);
    // Closed: the queue drains even with the gate shut.
    open.store(false, Ordering::SeqCst);
    let late = f.submit("t", &[9]);
    f.pool.close();
    assert_eq!(value(&late).unwrap(), [9]);
    f.pool.join();
}
