//! `apply_<fn>` runs on the calling thread when the queue is empty and a
//! worker is idle (no hand-off to a pool thread): it must keep every
//! guarantee of the queued path — results from another process, no
//! overtaking of queued jobs, worker replacement, `max_tasks_per_child`,
//! timeouts, `close` and `terminate` — and workers must still be started
//! only by the pool's own threads.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task]
fn pid_plus(x: u64) -> (u32, u64) {
    (std::process::id(), x + 1)
}

#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Creates the file `path`, then sleeps `ms`.
#[pool_task]
fn mark_and_nap(path: String, ms: u64) -> u32 {
    std::fs::write(&path, b"started").unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[test]
fn apply_from_many_threads_mixes_with_apply_async() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(2).unwrap();
    let me = std::process::id();
    let pids = std::thread::scope(|s| {
        let callers: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    let mut pids = HashSet::new();
                    for i in 0..200 {
                        let x = t * 1000 + i;
                        let (pid, y) = apply_pid_plus(pool, x).unwrap();
                        assert_eq!(y, x + 1);
                        pids.insert(pid);
                    }
                    pids
                })
            })
            .collect();
        let pending: Vec<_> = (0..500u64)
            .map(|x| (x, apply_async_pid_plus(&pool, x)))
            .collect();
        let mut pids = HashSet::new();
        for (x, r) in pending {
            let (pid, y) = r.get().unwrap();
            assert_eq!(y, x + 1);
            pids.insert(pid);
        }
        for c in callers {
            pids.extend(c.join().unwrap());
        }
        pids
    });
    assert!(!pids.contains(&me));
    assert!(pids.len() <= 2, "more workers than the pool has: {pids:?}");
}

#[test]
fn apply_waits_behind_queued_jobs() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let first = apply_async_nap(&pool, 300);
    let queued = apply_async_pid_plus(&pool, 1);
    // The worker is busy and a job is queued: this call queues behind it.
    let (_, y) = apply_pid_plus(&pool, 2).unwrap();
    assert_eq!(y, 3);
    assert!(
        first.ready() && queued.ready(),
        "apply overtook queued jobs"
    );
}

#[test]
fn apply_replaces_a_worker_killed_while_idle() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let (old, _) = apply_pid_plus(&pool, 0).unwrap();
    // SAFETY: kill(2) on our own worker's pid.
    unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::alive(old) {
        assert!(Instant::now() < deadline, "worker {old} did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (new, y) = apply_pid_plus(&pool, 41).unwrap();
    assert_eq!(y, 42);
    assert_ne!(new, old);
    assert_ne!(new, std::process::id());
}

#[test]
fn a_worker_dying_idle_after_direct_applies_is_reaped_and_replaced_at_once() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    let begun = Instant::now();
    let mut old = 0;
    while begun.elapsed() < Duration::from_millis(300) {
        old = apply_pid_plus(&pool, 1).unwrap().0;
    }
    assert_ne!(old, std::process::id());
    // SAFETY: kill(2) on our own worker's pid.
    unsafe { libc::kill(old as libc::pid_t, libc::SIGKILL) };
    // No job comes: the slot notices on its own, in milliseconds. The limit
    // is loose, for a loaded machine; without the slot's own check, the
    // zombie would stay until the next job, which here is never.
    let killed = Instant::now();
    while support::children().contains(&old) {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "worker {old} not reaped within 10 s of its death"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A start may take a while on a loaded machine: a generous limit.
    loop {
        let now = support::children();
        if now.iter().any(|&pid| pid != old) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "worker {old} not replaced"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (new, y) = apply_pid_plus(&pool, 41).unwrap();
    assert_eq!(y, 42);
    assert_ne!(new, old);
}

#[test]
fn apply_counts_towards_max_tasks_per_child() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let mut runs: HashMap<u32, usize> = HashMap::new();
    for i in 0..9 {
        let (pid, _) = apply_pid_plus(&pool, i).unwrap();
        *runs.entry(pid).or_default() += 1;
    }
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.values().all(|&n| n == 3), "{runs:?}");
}

#[test]
fn apply_timeout_kills_the_worker_and_the_pool_goes_on() {
    let _serial = support::serial();
    procpool::init();
    // (Also what the calls around the timeout must finish within: room for
    // a loaded machine.)
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (before, _) = apply_pid_plus(&pool, 0).unwrap();
    match apply_nap(&pool, 30_000) {
        Err(Error::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_secs(2)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let (after, y) = apply_pid_plus(&pool, 1).unwrap();
    assert_eq!(y, 2);
    assert_ne!(after, before);
    assert!(!support::alive(before));
}

#[test]
fn apply_after_close_is_refused() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    pool.close();
    assert!(matches!(
        apply_pid_plus(&pool, 1),
        Err(Error::PoolClosed { .. })
    ));
}

#[test]
fn terminate_fails_an_apply_in_flight() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    apply_pid_plus(&pool, 0).unwrap();
    let marker = support::Scratch::temp("inflight");
    std::thread::scope(|s| {
        let caller = s.spawn(|| apply_mark_and_nap(&pool, marker.to_str().unwrap().into(), 30_000));
        // Terminate once the call runs in the worker (no timing assumption).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the call never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(&marker);
        let started = Instant::now();
        pool.terminate();
        assert!(matches!(
            caller.join().unwrap(),
            Err(Error::Terminated { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(20));
    });
    support::assert_no_children();
}

#[test]
fn workers_started_during_an_apply_outlive_the_calling_thread() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    // The caller's second call retires the first worker; its third needs a
    // new one, which a pool thread must start, not the caller.
    let replacement = std::thread::scope(|s| {
        s.spawn(|| {
            let (a, _) = apply_pid_plus(&pool, 0).unwrap();
            let (b, _) = apply_pid_plus(&pool, 0).unwrap();
            assert_eq!(a, b);
            let (c, _) = apply_pid_plus(&pool, 0).unwrap();
            assert_ne!(c, a);
            c
        })
        .join()
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        support::alive(replacement),
        "the worker died with the caller's thread"
    );
    let (pid, _) = apply_pid_plus(&pool, 0).unwrap();
    assert_eq!(pid, replacement);
}

/// Stops worker `pid` (SIGSTOP) and waits until it is stopped.
fn stop(pid: u32) {
    // SAFETY: kill(2) on a worker of this test's pool.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('T'))
        {
            return;
        }
        assert!(Instant::now() < deadline, "worker {pid} never stopped");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// An `apply` taken before `close()` runs, on a new worker, even if the
/// idle worker it was given had stopped and never read it (the fault
/// table's "runs on a new worker"): it used to be queued anew after the
/// close, and refused with `PoolClosed`.
#[test]
fn an_apply_taken_before_close_runs_even_if_its_idle_worker_had_stopped() {
    // A worker that has not started a call within this is stopped, and the
    // call goes to a new one: an apply taken waits at least this long.
    let stall = Duration::from_millis(800);
    for round in 1..=3 {
        let pool = Pool::builder()
            .processes(1)
            .frame_stall_timeout(stall)
            .build()
            .unwrap();
        let (first, _) = apply_pid_plus(&pool, 0).unwrap();
        stop(first);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pool = pool.clone();
            std::thread::spawn(move || {
                ready_tx.send(()).unwrap();
                let begun = Instant::now();
                let outcome = apply_pid_plus(&pool, 1);
                tx.send((outcome, begun.elapsed())).unwrap();
            });
        }
        // The apply borrows the stopped idle worker and waits for it to read
        // the call; close meanwhile.
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the thread did not start");
        std::thread::sleep(Duration::from_millis(200));
        pool.close();
        let (outcome, took) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("apply hung");
        match outcome {
            Ok((pid, x)) => {
                pool.join();
                assert_ne!(pid, first, "on a new worker");
                assert_eq!(x, 2);
                return;
            }
            // Refused sooner than a call taken can end: the apply had not
            // reached the pool before the close (its thread stalled 200 ms
            // on a loaded machine), so this round tested nothing. Again.
            Err(Error::PoolClosed { .. }) if took < stall && round < 3 => {
                // SAFETY: kill(2) on this test's own stopped worker (so that
                // `join` need not wait for it).
                unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) };
                pool.join();
            }
            other => {
                panic!("an apply taken before close did not run: {other:?} after {took:?}")
            }
        }
    }
}
