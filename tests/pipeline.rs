//! Pipelining: a slot sends a busy worker several quick tasks in one batch.
//! A worker lost in the middle of a batch fails exactly the task it was
//! running; the tasks behind it (not started) run on its replacement; a
//! worker dropped alive (timeout, bad reply) may have started the next ones,
//! which then fail rather than run twice. A task
//! times out on its own run time, not on the time spent queued in a batch.
//! Only tasks seen to run quickly are batched: a slow task never holds up
//! quick ones while another worker could run them. Map chunks are batched
//! as calls are (a map with chunksize 1 is as many quick calls).

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use procpool::{pool_task, CancelOutcome, Error, MapOptions, Pool};

procpool::enable_test_support!();

/// `x + 1` with the worker's pid; exits the worker abruptly when `die`, and
/// sleeps first for `nap_ms`.
#[pool_task]
fn step(x: u64, die: bool, nap_ms: u64) -> (u32, u64) {
    if die {
        std::process::abort();
    }
    if nap_ms > 0 {
        std::thread::sleep(Duration::from_millis(nap_ms));
    }
    (std::process::id(), x + 1)
}

/// Counts every call of this process's pools as quick (a test hook, for
/// the whole binary): a pool batches only a task whose calls it measured
/// under 1 ms each, as a slow or loaded machine may never measure them,
/// and then these tests would batch nothing. Every test calls it with its
/// warm-up (so that none depends on which test ran first); none of them is
/// about that rule: the slow task of `quick_tasks_never_wait_behind_a_slow_one`
/// runs once, so it is unknown (never batched) however its calls count.
fn count_calls_as_quick() {
    procpool::__private::treat_pool_calls_as_quick();
}

/// Runs enough quick calls on every worker that each slot knows `step` as
/// a quick task (and will batch it).
fn warm_up(pool: &Pool) {
    count_calls_as_quick();
    let pending: Vec<_> = (0..400)
        .map(|x| apply_async_step(pool, x, false, 0))
        .collect();
    for (x, r) in pending.into_iter().enumerate() {
        assert_eq!(r.get().unwrap().1, x as u64 + 1);
    }
}

#[test]
fn many_quick_tasks_all_come_back_right_from_workers() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(2).unwrap();
    warm_up(&pool);
    let pending: Vec<_> = (0..20_000)
        .map(|x| apply_async_step(&pool, x, false, 0))
        .collect();
    let mut pids = HashSet::new();
    for (x, r) in pending.into_iter().enumerate() {
        let (pid, y) = r.get().unwrap();
        assert_eq!(y, x as u64 + 1);
        pids.insert(pid);
    }
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn a_worker_dying_mid_batch_fails_only_the_task_it_ran() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let (before, _) = apply_step(&pool, 0, false, 0).unwrap();
    let pending: Vec<_> = (0..300)
        .map(|x| apply_async_step(&pool, x, x == 150, 0))
        .collect();
    only_150_died_with(before, pending.into_iter().map(|r| r.get()));
}

/// Checks the outcomes of `step` over 0..300 where call 150 aborted its
/// worker `before`: only that call failed (`WorkerDied`), every other one
/// came back right, and those behind it ran on one replacement.
fn only_150_died_with(before: u32, outcomes: impl Iterator<Item = Result<(u32, u64), Error>>) {
    let mut after = HashSet::new();
    for (x, r) in outcomes.enumerate() {
        match r {
            Err(Error::WorkerDied { pid, .. }) => {
                assert_eq!(x, 150, "call {x} failed with the worker");
                assert_eq!(pid, before);
            }
            Ok((pid, y)) => {
                assert_ne!(x, 150, "the aborting call succeeded");
                assert_eq!(y, x as u64 + 1);
                if x > 150 {
                    after.insert(pid);
                }
            }
            Err(e) => panic!("call {x}: unexpected {e:?}"),
        }
    }
    assert_eq!(after.len(), 1);
    assert!(!after.contains(&before));
    assert!(!after.contains(&std::process::id()));
}

#[test]
fn a_timeout_in_a_batch_fails_only_the_slow_task() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    warm_up(&pool);
    // Each of these 200 tasks runs well within the limit, though together
    // they take longer than it: the limit is per task, from its start.
    let pending: Vec<_> = (0..200)
        .map(|x| apply_async_step(&pool, x, false, if x == 100 { 30_000 } else { 3 }))
        .collect();
    for (x, r) in pending.into_iter().enumerate() {
        match r.get() {
            Err(Error::Timeout { limit, .. }) => {
                assert_eq!(x, 100, "task {x} timed out");
                assert_eq!(limit, Duration::from_millis(500));
            }
            Ok((_, y)) => {
                assert_ne!(x, 100);
                assert_eq!(y, x as u64 + 1);
            }
            Err(e) => panic!("task {x}: unexpected {e:?}"),
        }
    }
}

/// Sleeps `ms`; never called quickly, so never batched.
#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[test]
fn quick_tasks_never_wait_behind_a_slow_one() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(2).unwrap();
    warm_up(&pool);
    // The quick calls submitted right after a slow task must all run on the
    // other worker meanwhile, none batched behind the slow one.
    let slow = apply_async_nap(&pool, 5_000);
    let quick: Vec<_> = (1..40)
        .map(|x| apply_async_step(&pool, x, false, 0))
        .collect();
    let mut pids = HashSet::new();
    for (x, r) in quick.into_iter().enumerate() {
        let (pid, y) = r.get().unwrap();
        assert_eq!(y, x as u64 + 2);
        pids.insert(pid);
    }
    assert!(
        !slow.ready(),
        "the quick tasks waited for the slow one to finish"
    );
    let slow_pid = slow.get().unwrap();
    assert!(
        !pids.contains(&slow_pid),
        "a quick task ran behind the slow one"
    );
}

/// Leaves a marker file `dir/x` as it starts (panicking if one is there: the
/// task ran before). With `garble`, it then writes a frame that is no reply
/// onto the worker's channel, so the parent drops the worker (while it goes
/// on with the next task, unless it naps). Then sleeps `nap_ms`.
#[pool_task]
fn mark(dir: String, x: u64, nap_ms: u64, garble: bool) -> u32 {
    let path = std::path::Path::new(&dir).join(x.to_string());
    if let Err(e) = std::fs::File::create_new(&path) {
        panic!("task {x} ran twice ({e})");
    }
    if garble {
        // One frame: length 1, an unknown tag.
        support::write_to_channel(&[1u8, 0, 0, 0, 0xff]);
    }
    if nap_ms > 0 {
        std::thread::sleep(Duration::from_millis(nap_ms));
    }
    std::process::id()
}

/// Runs tasks 0..200 on `pool` (one worker) after warming it up so that it
/// batches them; task 100 naps `nap` ms and garbles its reply if told.
/// Checks that no task ran twice, and returns each task's result.
fn run_round(
    pool: &Pool,
    dir: &std::path::Path,
    nap: u64,
    garble: bool,
) -> Vec<Result<u32, Error>> {
    std::fs::create_dir_all(dir).unwrap();
    let dir_text = dir.to_str().unwrap().to_string();
    // Known as a quick task, so the slot batches it.
    count_calls_as_quick();
    let warm: Vec<_> = (1000..1300)
        .map(|x| apply_async_mark(pool, dir_text.clone(), x, 0, false))
        .collect();
    for r in warm {
        r.get().unwrap();
    }
    // The worker is busy meanwhile, so that the tasks queue up and go out
    // in batches (with no time limit: a loaded machine may stretch it).
    let blocker = apply_async_nap(&pool.with_task_timeout(None), 300);
    let pending: Vec<_> = (0..200)
        .map(|x| {
            let slow = x == 100;
            apply_async_mark(
                pool,
                dir_text.clone(),
                x,
                if slow { nap } else { 0 },
                slow && garble,
            )
        })
        .collect();
    blocker.get().unwrap();
    let results: Vec<_> = pending.into_iter().map(|r| r.get()).collect();
    for (x, r) in results.iter().enumerate() {
        match r {
            Ok(pid) => {
                assert_ne!(*pid, std::process::id());
                assert!(dir.join(x.to_string()).exists(), "task {x} left no marker");
            }
            Err(Error::Panic { message, .. }) => panic!("task {x}: {message}"),
            Err(_) => {}
        }
    }
    results
}

#[test]
fn no_task_runs_twice_when_a_batch_hits_a_timeout() {
    let _serial = support::serial();
    procpool::init();
    let limit = Duration::from_millis(500);
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let root = support::marker_dir("pipeline", "twice");
    // The slow task finishes just before, at or just after its limit, so
    // that in some rounds the worker may have started the next task of the
    // batch when it is killed: that one must fail, not run again.
    for (round, nap) in [490, 497, 500, 503, 510, 520].into_iter().enumerate() {
        let results = run_round(&pool, &root.join(round.to_string()), nap, false);
        let mut failed_after = 0;
        for (x, r) in results.into_iter().enumerate() {
            match r {
                Ok(_) => {}
                Err(Error::Timeout { limit: l, .. }) => {
                    assert_eq!(x, 100, "task {x} timed out");
                    assert_eq!(l, limit);
                }
                // Started by the worker killed for task 100: it may have
                // run, so it fails rather than runs again.
                Err(Error::WorkerDied { .. }) if x > 100 => failed_after += 1,
                Err(e) => panic!("round {round}, task {x}: unexpected {e:?}"),
            }
        }
        assert!(
            failed_after <= 1,
            "{failed_after} tasks failed after the slow one"
        );
    }
}

#[test]
fn no_task_runs_twice_when_a_worker_breaks_the_protocol_mid_batch() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let root = support::marker_dir("pipeline", "garble");
    // Task 100 sends a bad frame and carries on with the next tasks of its
    // batch, which have started by the time the parent kills the worker:
    // they fail (or are settled by replies that arrived), never run twice.
    for round in 0..3 {
        let results = run_round(&pool, &root.join(round.to_string()), 0, true);
        for (x, r) in results.into_iter().enumerate() {
            match r {
                Ok(_) => assert_ne!(x, 100, "the garbled reply was taken"),
                Err(Error::Protocol { .. }) => assert_eq!(x, 100),
                Err(Error::WorkerDied { .. }) => assert!(x > 100, "task {x} failed"),
                Err(e) => panic!("round {round}, task {x}: unexpected {e:?}"),
            }
        }
        // The pool carries on.
        assert!(apply_mark(
            &pool,
            root.to_str().unwrap().into(),
            9_000 + round,
            0,
            false
        )
        .is_ok());
    }
}

#[test]
fn calls_behind_a_protocol_breaker_that_never_went_on_run_on_the_replacement() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let root = support::marker_dir("pipeline", "garble-nap");
    // Task 100 sends a bad frame and then sleeps: the worker is killed while
    // still in it, and says so (it never started task 101), so the calls
    // pipelined behind it had not started: they run on the replacement
    // instead of failing as "may have run".
    for round in 0..3 {
        let results = run_round(&pool, &root.join(round.to_string()), 20_000, true);
        for (x, r) in results.into_iter().enumerate() {
            match r {
                Ok(_) => assert_ne!(x, 100, "the garbled reply was taken"),
                Err(Error::Protocol { .. }) => assert_eq!(x, 100),
                Err(e) => panic!("round {round}, task {x}: unexpected {e:?}"),
            }
        }
    }
}

/// Leaves a marker file `dir/x` (panicking if one is there: the task ran
/// before); with `stall`, then writes the start of a frame announcing about
/// 4 GiB onto the worker's channel and sleeps: its reply stops arriving.
#[pool_task]
fn stall_mark(dir: String, x: u64, stall: bool) -> u32 {
    let path = std::path::Path::new(&dir).join(x.to_string());
    if let Err(e) = std::fs::File::create_new(&path) {
        panic!("task {x} ran twice ({e})");
    }
    if stall {
        support::write_to_channel(&[0xf0, 0xff, 0xff, 0xff, 1, 2, 3]);
        std::thread::sleep(Duration::from_secs(20));
    }
    std::process::id()
}

#[test]
fn calls_behind_a_stalled_reply_that_never_started_run_on_the_replacement() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::builder()
        .processes(1)
        .frame_stall_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let dir = support::marker_dir("pipeline", "stall");
    let dir_text = dir.to_str().unwrap().to_string();
    // Known as a quick task, so the slot batches it.
    count_calls_as_quick();
    for r in (1000..1300)
        .map(|x| apply_async_stall_mark(&pool, dir_text.clone(), x, false))
        .collect::<Vec<_>>()
    {
        r.get().unwrap();
    }
    // The worker is busy meanwhile, so that the calls queue up and go out
    // in batches. Call 100's reply stalls while the worker sleeps in it: the
    // calls pipelined behind it never started (the worker says so), so they
    // run on the replacement instead of failing as "may have run".
    let blocker = apply_async_nap(&pool, 300);
    let pending: Vec<_> = (0..200)
        .map(|x| apply_async_stall_mark(&pool, dir_text.clone(), x, x == 100))
        .collect();
    blocker.get().unwrap();
    for (x, r) in pending.into_iter().enumerate() {
        match r.get() {
            Ok(pid) => {
                assert_ne!(x, 100, "the stalled call succeeded");
                assert_ne!(pid, std::process::id());
            }
            Err(Error::Protocol { .. }) => assert_eq!(x, 100),
            Err(e) => panic!("call {x}: unexpected {e:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn small_map_chunks_of_a_quick_task_are_pipelined() {
    let _serial = support::serial();
    procpool::init();
    let log = support::capture_log();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let pipelined = || log.lines_with("calls pipelined to worker").len();
    let before = pipelined();
    let items: Vec<(u64, bool, u64)> = (0..2000).map(|x| (x, false, 0)).collect();
    let out = map_step_with(&pool, items, MapOptions::new().chunksize(1)).unwrap();
    assert!(out.iter().enumerate().all(|(x, &(_, y))| y == x as u64 + 1));
    assert!(
        pipelined() > before,
        "2000 chunks of one quick item were sent one at a time"
    );
}

#[test]
fn a_worker_dying_in_pipelined_map_chunks_fails_only_its_item() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let (before, _) = apply_step(&pool, 0, false, 0).unwrap();
    let items: Vec<(u64, bool, u64)> = (0..300).map(|x| (x, x == 150, 0)).collect();
    only_150_died_with(
        before,
        imap_step_with(&pool, items, MapOptions::new().chunksize(1)),
    );
}

/// A pool initializer: the first worker starts at once, the second fails
/// (its initializer panics), each later one makes `waiting` in `aside`,
/// then waits (a minute at most) for `gate`. Every start leaves
/// `start-<pid>` in `aside`.
#[pool_task]
fn fail_then_wait(aside: PathBuf, gate: PathBuf) {
    std::fs::write(aside.join(format!("start-{}", std::process::id())), b"").unwrap();
    let first = |name: &str| std::fs::File::create_new(aside.join(name)).is_ok();
    if first("first") {
        return;
    }
    if first("second") {
        panic!("the second worker's start fails");
    }
    std::fs::write(aside.join("waiting"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A batch taken by a slot with no worker (its last start failed) waits
/// while the slot starts one. A call of it cancelled meanwhile, the one in
/// front or one behind it, was never sent: its cancel answers
/// `NotStarted`, it never runs, and the worker being started is kept and
/// runs the others, in one batch. (A call behind the first was held on the
/// new worker, which was killed once the call in front of it returned and
/// replaced: the cancel answered `Stopped`, and the pool ran its
/// initializer again, for a call no worker had been sent.)
#[test]
fn calls_cancelled_in_a_batch_waiting_for_its_workers_start_never_start() {
    let _serial = support::serial();
    procpool::init();
    let log = support::capture_log();
    let aside = support::marker_dir("pipeline", "batch-waits-start");
    let gate = aside.join("gate");
    let pool = Pool::builder()
        .processes(1)
        .initializer(
            "pipeline::fail_then_wait",
            &(aside.to_path_buf(), gate.clone()),
        )
        .build()
        .unwrap();
    warm_up(&pool);
    // The worker dies in a call and its replacement fails to start: the
    // calls queued meanwhile go out as one batch from a slot with no
    // worker, which starts one for them (that start waits for the gate).
    let died = apply_async_step(&pool, 0, true, 0);
    let calls: Vec<_> = (1..=4)
        .map(|x| apply_async_step(&pool, x, false, 0))
        .collect();
    assert!(matches!(died.get(), Err(Error::WorkerDied { .. })));
    let waiting = aside.join("waiting");
    support::wait_for(Duration::from_secs(20), "the start that waits", || {
        waiting.exists()
    });
    // (Give the slot the moment it needs to take the batch, if it has not.)
    std::thread::sleep(Duration::from_millis(50));
    let pipelined = || log.lines_with("calls pipelined to worker");
    let before = pipelined().len();
    assert_eq!(calls[0].cancel(), CancelOutcome::NotStarted, "the first");
    assert_eq!(calls[2].cancel(), CancelOutcome::NotStarted, "one behind");
    for cancelled in [&calls[0], &calls[2]] {
        assert!(matches!(
            cancelled.get_timeout(Duration::from_secs(10)),
            Err(Error::Cancelled { .. })
        ));
    }
    std::fs::write(&gate, b"").unwrap();
    let (pid, two) = calls[1].get_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(two, 3);
    assert_eq!(
        calls[3].get_timeout(Duration::from_secs(60)).unwrap(),
        (pid, 5),
        "on the same worker"
    );
    let starts = std::fs::read_dir(&*aside)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("start-")
        })
        .count();
    assert_eq!(starts, 3, "the worker being started was kept");
    let sent = pipelined();
    assert!(
        sent[before..]
            .iter()
            .any(|line| line.contains(&format!("2 calls pipelined to worker {pid}"))),
        "calls 2 and 4 went out in one batch: {:?}",
        &sent[before..]
    );
}
