//! Tasks queue FIFO and go to whichever worker is free: a slow task never
//! holds up the tasks queued behind it while another worker is idle.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Sleeps, then reports when it started and finished and where it ran.
#[pool_task]
fn timed_nap(ms: u64) -> (u128, u128, u32) {
    let start = now_micros();
    std::thread::sleep(Duration::from_millis(ms));
    (start, now_micros(), std::process::id())
}

#[test]
fn one_slow_task_does_not_block_the_queue() {
    let pool = Pool::new(2).unwrap();
    let slow = apply_async_timed_nap(&pool, 1500);
    std::thread::sleep(Duration::from_millis(50));
    let quick: Vec<_> = (0..10).map(|_| apply_async_timed_nap(&pool, 10)).collect();
    let quick: Vec<_> = quick.into_iter().map(|r| r.get().unwrap()).collect();
    let (_, slow_end, slow_pid) = slow.get().unwrap();
    for (_, end, pid) in &quick {
        assert!(*end < slow_end, "a quick task finished after the slow one");
        assert_ne!(*pid, slow_pid, "a quick task waited for the busy worker");
        assert_ne!(*pid, std::process::id());
    }
}

#[test]
fn tasks_start_in_submission_order() {
    let pool = Pool::new(1).unwrap();
    let results: Vec<_> = (0..20).map(|_| apply_async_timed_nap(&pool, 1)).collect();
    let starts: Vec<u128> = results.into_iter().map(|r| r.get().unwrap().0).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

#[test]
fn work_spreads_over_all_workers() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = (0..4).map(|_| apply_async_timed_nap(&pool, 400)).collect();
    let runs: Vec<(u128, u128, u32)> = results.into_iter().map(|r| r.get().unwrap()).collect();
    let pids: std::collections::HashSet<u32> = runs.iter().map(|r| r.2).collect();
    assert_eq!(pids.len(), 2, "both workers ran tasks: {pids:?}");
    // The two workers ran at the same time: some two tasks on different
    // workers overlap (each started before the other ended).
    let overlap = runs
        .iter()
        .any(|a| runs.iter().any(|b| a.2 != b.2 && a.0 < b.1 && b.0 < a.1));
    assert!(overlap, "the workers never ran at once: {runs:?}");
}
