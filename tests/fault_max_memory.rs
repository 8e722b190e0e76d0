//! `max_memory_per_child`: a worker whose resident memory exceeds the limit
//! after a task is retired cleanly and replaced, on the queued path and on
//! `apply`'s direct path; no task is lost or run twice at the hand-over.

mod support;

use std::collections::HashMap;

use procpool::{pool_task, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

const MIB: usize = 1 << 20;

/// Allocates `mib` MiB, touches every page and keeps it (a leak): the
/// worker's resident memory grows by about that much. Returns `i` and the
/// worker's pid.
#[pool_task]
fn hog(i: u32, mib: usize) -> (u32, u32) {
    let mut block = vec![0u8; mib * MIB];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::mem::forget(block);
    (i, std::process::id())
}

/// Runs `tasks` hogs of 20 MiB one after another (queued, or through the
/// direct path) and returns how many each worker ran, in order.
fn runs(pool: &Pool, tasks: u32, direct: bool) -> Vec<(u32, usize)> {
    let mut order: Vec<(u32, usize)> = Vec::new();
    for i in 0..tasks {
        let (echo, pid) = if direct {
            apply_hog(pool, i, 20).unwrap()
        } else {
            apply_async_hog(pool, i, 20).get().unwrap()
        };
        assert_eq!(echo, i, "each task ran once, with its own argument");
        assert_ne!(pid, std::process::id());
        match order.last_mut() {
            Some((last, n)) if *last == pid => *n += 1,
            _ => order.push((pid, 1)),
        }
    }
    order
}

#[test]
fn a_worker_past_the_memory_limit_is_retired_after_its_task() {
    let _serial = serial();
    let (_, unclean_before) = procpool::__private::retirements();
    for direct in [false, true] {
        let pool = Pool::builder()
            .processes(1)
            .max_memory_per_child(70 * MIB as u64)
            .build()
            .unwrap();
        // A fresh worker holds a few MiB; each task adds 20: the limit is
        // passed after the 3rd or 4th task, never later.
        let order = runs(&pool, 12, direct);
        assert!(order.len() >= 3, "workers were not replaced: {order:?}");
        assert!(
            order.iter().all(|(_, n)| (1..=4).contains(n)),
            "a worker ran too many or too few tasks: {order:?}"
        );
        let distinct: HashMap<u32, usize> = order.iter().copied().collect();
        assert_eq!(distinct.len(), order.len(), "a pid came back: {order:?}");
        drop(pool);
    }
    let (_, unclean) = procpool::__private::retirements();
    assert_eq!(
        unclean, unclean_before,
        "a retired worker did not exit cleanly"
    );
    assert_no_children();
}

#[test]
fn without_a_limit_the_same_worker_keeps_serving() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let order = runs(&pool, 6, false);
    assert_eq!(order.len(), 1, "{order:?}");
    assert!(matches!(
        Pool::builder().max_memory_per_child(0).build(),
        Err(procpool::Error::Config { .. })
    ));
    drop(pool);
    assert_no_children();
}
