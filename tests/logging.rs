//! procpool's diagnostics are `log` events (target `procpool`), silent until
//! the program installs a logger: worker starts, deaths, timeout kills and
//! retirements can all be observed.

use std::path::PathBuf;
use std::time::Duration;

use procpool::{pool_task, Error, Pool};

mod support;

use support::{capture_log, wait_for};

procpool::enable_test_support!();

#[pool_task]
fn pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Announces that it runs by creating `marker`, then sleeps.
#[pool_task]
fn announce_then_nap(marker: PathBuf, ms: u64) {
    std::fs::write(&marker, b"").unwrap();
    std::thread::sleep(Duration::from_millis(ms));
}

fn lines_with(what: &str) -> Vec<String> {
    capture_log().lines_with(what)
}

#[test]
fn worker_starts_deaths_timeouts_and_retirements_are_log_events() {
    capture_log();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let first = apply_pid(&pool).unwrap();
    assert!(
        !lines_with(&format!("worker {first} ready")).is_empty(),
        "no start event for {first}"
    );
    // A worker killed mid-task: once the task runs (a task killed before it
    // started would run again on a replacement, and succeed).
    let marker = support::Scratch::temp("logging");
    let r = apply_async_announce_then_nap(&pool, marker.clone(), 10_000);
    wait_for(Duration::from_secs(30), "the task to start", || {
        marker.exists()
    });
    let _ = std::fs::remove_file(&marker);
    unsafe_kill(first);
    assert!(matches!(r.get(), Err(Error::WorkerDied { .. })));
    let died = lines_with(&format!("worker {first} died"));
    assert!(died.iter().any(|l| l.starts_with("WARN")), "{died:?}");
    // A timeout kill.
    let impatient = pool.with_task_timeout(Some(Duration::from_millis(100)));
    assert!(matches!(
        apply_nap(&impatient, 10_000),
        Err(Error::Timeout { .. })
    ));
    assert!(!lines_with("ran past its time limit").is_empty());
    // Retirement after max_tasks_per_child.
    let retired = apply_pid(&pool).unwrap();
    apply_pid(&pool).unwrap();
    pool.join();
    assert!(
        !lines_with(&format!("worker {retired} retired")).is_empty(),
        "{:?}",
        capture_log().lines()
    );
}

fn unsafe_kill(pid: u32) {
    // SAFETY: kill(2) with integer arguments; `pid` is this test's own
    // worker, alive until killed here.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

#[pool_task]
fn fail(x: u64) -> u64 {
    panic!("task {x} fails")
}

/// A panic in a user's callback or error callback is caught: it is a `log`
/// warning naming the task and quoting the panic, the result still
/// completes, later callbacks still run and `join` returns.
#[test]
fn a_panicking_callback_is_a_log_event_and_the_pool_carries_on() {
    capture_log();
    let pool = Pool::new(1).unwrap();
    let r = apply_async_pid(&pool).callback(|_| panic!("callback bug 17"));
    r.wait();
    assert_eq!(r.successful(), Some(true));
    let r = apply_async_fail(&pool, 3).error_callback(|_| panic!("error callback bug 18"));
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    let r = map_async_pid(&pool, vec![(); 4]).callback(|_| panic!("callback bug 19"));
    assert_eq!(r.get().unwrap().len(), 4);
    let (tx, rx) = std::sync::mpsc::channel();
    let later: Vec<_> = (0..4)
        .map(|_| {
            let tx = tx.clone();
            apply_async_pid(&pool).callback(move |pid| tx.send(pid).unwrap())
        })
        .collect();
    drop(tx);
    pool.close();
    pool.join();
    assert_eq!(rx.try_iter().count(), 4, "every later callback ran");
    drop(later);
    for (bug, task) in [
        (17, "logging::pid"),
        (18, "logging::fail"),
        (19, "logging::pid"),
    ] {
        let lines = lines_with(&format!("bug {bug}"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("WARN") && l.contains(&format!("`{task}`"))),
            "no warning for callback bug {bug}: {:?}",
            capture_log().lines()
        );
    }
}
