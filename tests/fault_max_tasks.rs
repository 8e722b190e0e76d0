//! `max_tasks_per_child`: each worker exits cleanly after N tasks and is
//! replaced; no task is lost or run twice at the hand-over.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use procpool::{pool_task, Pool};
use support::{assert_no_children, children, serial};

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
