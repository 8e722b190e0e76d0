//! Pipelining: a slot sends a busy worker several quick tasks in one batch.
//! A worker lost in the middle of a batch fails exactly the task it was
//! running; the tasks behind it (not started) run on its replacement. A task
//! times out on its own run time, not on the time spent queued in a batch.
//! Only tasks seen to run quickly are batched: a slow task never holds up
//! quick ones while another worker could run them.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use procpool::{pool_task, Error, Pool};

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

/// Runs enough quick calls on every worker that each slot knows `step` as
/// a quick task (and will batch it).
fn warm_up(pool: &Pool) {
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
    let mut after = HashSet::new();
    for (x, r) in pending.into_iter().enumerate() {
        match r.get() {
            Err(Error::WorkerDied { pid, .. }) => {
                assert_eq!(x, 150, "task {x} failed with the worker");
                assert_eq!(pid, before);
            }
            Ok((pid, y)) => {
                assert_ne!(x, 150, "the aborting task succeeded");
                assert_eq!(y, x as u64 + 1);
                if x > 150 {
                    after.insert(pid);
                }
            }
            Err(e) => panic!("task {x}: unexpected {e:?}"),
        }
    }
    // The tasks behind the dead one ran on its replacement.
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
