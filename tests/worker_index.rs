//! `procpool::worker_index()` and `procpool::is_worker()`: each task sees
//! the number of the pool slot that runs it (`0..processes`), a worker that
//! replaces another keeps its slot's number, the initializer sees it too,
//! and the caller (and programs a task starts) see `None`.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

/// This worker's slot and pid, once `together` calls of one round are
/// running at once (each leaves a file in `round`; a minute at most): so
/// each call of a round runs on its own slot, however slow the machine.
#[pool_task]
fn whoami(round: std::path::PathBuf, together: usize) -> (Option<usize>, bool, u32) {
    let pid = std::process::id();
    std::fs::write(round.join(pid.to_string()), b"").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&round).unwrap().count() < together
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    (procpool::worker_index(), procpool::is_worker(), pid)
}

static SEEN_BY_INITIALIZER: AtomicUsize = AtomicUsize::new(usize::MAX);

#[pool_task(name = "worker_index/init")]
fn init() {
    let index = procpool::worker_index().expect("the initializer runs in a worker");
    SEEN_BY_INITIALIZER.store(index, Ordering::SeqCst);
}

#[pool_task]
fn initializer_saw() -> (usize, Option<usize>) {
    (
        SEEN_BY_INITIALIZER.load(Ordering::SeqCst),
        procpool::worker_index(),
    )
}

/// Whether a program this worker starts believes it is a worker.
#[pool_task]
fn child_env() -> Option<String> {
    std::env::var("PROCPOOL_WORKER_INDEX").ok()
}

/// One round of `processes` simultaneous tasks: each runs on its own slot.
fn one_round(pool: &Pool, processes: usize) -> Vec<(usize, u32)> {
    static ROUNDS: AtomicUsize = AtomicUsize::new(0);
    let round = support::Scratch::temp_dir(&format!(
        "worker-index-{}",
        ROUNDS.fetch_add(1, Ordering::SeqCst)
    ));
    let pending: Vec<_> = (0..processes)
        .map(|_| apply_async_whoami(pool, round.clone(), processes))
        .collect();
    // The tasks are done before `round` (their directory) goes.
    pending
        .into_iter()
        .map(|r| {
            let (index, is_worker, pid) = r.get().unwrap();
            assert!(is_worker);
            assert_ne!(pid, std::process::id());
            (index.expect("a task runs in a worker"), pid)
        })
        .collect()
}

#[test]
fn each_slot_has_its_number_and_the_caller_none() {
    let _serial = support::serial();
    assert_eq!(procpool::worker_index(), None);
    assert!(!procpool::is_worker());
    let pool = Pool::new(3).unwrap();
    let round = one_round(&pool, 3);
    let indices: BTreeSet<usize> = round.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, BTreeSet::from([0, 1, 2]), "{round:?}");
    // Kill the worker of slot 1: its replacement is slot 1 again.
    let (_, victim) = *round.iter().find(|(i, _)| *i == 1).unwrap();
    // SAFETY: kill(2) on this test's own worker process.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let round = one_round(&pool, 3);
    let indices: BTreeSet<usize> = round.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, BTreeSet::from([0, 1, 2]), "{round:?}");
    let (_, replacement) = *round.iter().find(|(i, _)| *i == 1).unwrap();
    assert_ne!(replacement, victim, "slot 1 has a new worker");
    assert_eq!(apply_child_env(&pool).unwrap(), None);
    assert_eq!(procpool::worker_index(), None);
}

#[test]
fn the_initializer_sees_its_workers_index() {
    let _serial = support::serial();
    let pool = Pool::builder()
        .processes(2)
        .initializer("worker_index/init", &())
        .build()
        .unwrap();
    for _ in 0..10 {
        let (seen, now) = apply_initializer_saw(&pool).unwrap();
        assert_eq!(Some(seen), now);
        assert!(seen < 2);
    }
}
