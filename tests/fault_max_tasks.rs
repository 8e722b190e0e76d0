//! `max_tasks_per_child`: each worker exits cleanly after N tasks and is
//! replaced; no task is lost or run twice at the hand-over.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use procpool::{pool_task, Pool};
use support::{alive, assert_no_children, children, serial};

procpool::enable_test_support!();

#[pool_task]
fn tagged(i: u32) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(1));
    (i, std::process::id())
}

#[test]
fn workers_are_replaced_after_n_tasks_without_losing_any() {
    let _serial = serial();
    const N: usize = 3;
    const TASKS: u32 = 60;
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(N)
        .build()
        .unwrap();
    let results: Vec<_> = (0..TASKS).map(|i| apply_async_tagged(&pool, i)).collect();
    let mut per_pid: HashMap<u32, usize> = HashMap::new();
    for (i, r) in results.into_iter().enumerate() {
        let (echo, pid) = r.get().unwrap();
        assert_eq!(echo, i as u32, "each task ran once, with its own argument");
        assert_ne!(pid, std::process::id());
        *per_pid.entry(pid).or_default() += 1;
    }
    assert_eq!(per_pid.values().sum::<usize>(), TASKS as usize);
    assert!(
        per_pid.values().all(|&n| n <= N),
        "a worker ran more than {N} tasks: {per_pid:?}"
    );
    assert!(
        per_pid.len() >= TASKS as usize / N,
        "too few workers: {per_pid:?}"
    );
    assert!(children().len() <= 2, "retired workers were reaped");
    drop(pool);
    assert_no_children();
}

/// With one worker at a time, each of `TASKS / N` workers serves exactly `N`
/// tasks and then exits with code 0 when asked (the hand-over is clean).
#[test]
fn each_worker_serves_exactly_n_tasks_and_exits_cleanly() {
    let _serial = serial();
    const N: usize = 3;
    const TASKS: u32 = 30;
    let (retired_before, unclean_before) = procpool::__private::retirements();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(N)
        .build()
        .unwrap();
    let results: Vec<_> = (0..TASKS).map(|i| apply_async_tagged(&pool, i)).collect();
    let mut order = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let (echo, pid) = r.get().unwrap();
        assert_eq!(echo, i as u32);
        assert_ne!(pid, std::process::id());
        order.push(pid);
    }
    drop(pool);
    // Consecutive runs of one pid, each exactly N long, all pids distinct.
    let runs: Vec<&[u32]> = order.chunk_by(|a, b| a == b).collect();
    assert_eq!(runs.len(), TASKS as usize / N, "{order:?}");
    assert!(runs.iter().all(|run| run.len() == N), "{order:?}");
    let distinct: std::collections::HashSet<_> = order.iter().collect();
    assert_eq!(
        distinct.len(),
        TASKS as usize / N,
        "a pid came back: {order:?}"
    );
    let (retired, unclean) = procpool::__private::retirements();
    assert!(
        retired - retired_before >= TASKS as usize / N,
        "every worker was asked to exit"
    );
    assert_eq!(
        unclean, unclean_before,
        "a retired worker did not exit with code 0"
    );
    assert_no_children();
}

/// Touches `mb` MiB and keeps them (the worker's exit has to tear them
/// down, which takes a while), then writes its pid to `marker`.
#[pool_task]
fn heavy_then_mark(mb: usize, marker: std::path::PathBuf) -> u32 {
    let mut v = vec![0u8; mb << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::mem::forget(v);
    let pid = std::process::id();
    std::fs::write(&marker, pid.to_string()).unwrap();
    pid
}

/// A worker retired by `max_tasks_per_child` after a direct `apply` has
/// exited when a `join` on another thread returns ("every worker has
/// exited"): it used to be ended by the calling thread after the slot got
/// it back, so `join` returned while it still ran.
#[test]
fn join_returns_after_a_worker_retired_after_a_direct_apply_exited() {
    let _serial = serial();
    let mut failures = Vec::new();
    for round in 0..5 {
        let pool = Pool::builder()
            .processes(1)
            .max_tasks_per_child(1)
            .build()
            .unwrap();
        let marker = support::Scratch::temp(&format!("retire-{round}"));
        let caller = {
            let pool = pool.clone();
            let marker = marker.to_path_buf();
            std::thread::spawn(move || apply_heavy_then_mark(&pool, 1024, marker))
        };
        while !marker.exists() {
            std::thread::sleep(Duration::from_micros(100));
        }
        pool.join();
        let left = children();
        let worker: u32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
        if !left.is_empty() {
            let alive: Vec<u32> = left.iter().copied().filter(|&p| alive(p)).collect();
            failures.push(format!(
                "round {round}: after join: children {left:?}, alive {alive:?} (the retired worker: {worker})"
            ));
        }
        assert_eq!(caller.join().unwrap().unwrap(), worker);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
