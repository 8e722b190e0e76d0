//! A program that drops root after start-up (a service binding a port,
//! then turning into its own user) gets workers it can still stop: a pool
//! made after the drop runs its workers as the new user (not forked as
//! root by the fork server launched before it), so `task_timeout`,
//! `cancel` and `terminate` stop a running task at once. Needs root: it
//! drops it (for the whole test binary, so this file holds one test).

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{assert_no_children, fork_server};

procpool::enable_test_support!();

/// Sleeps `ms`, then says who it ran as.
#[pool_task]
fn nap(ms: u64) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(ms));
    // SAFETY: geteuid and getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

const NOBODY: u32 = 65534;

/// How long the stopped tasks would run, and how soon they must stop: a
/// worker that could not be killed would be waited for, far past the
/// bound, while a loaded machine takes seconds at most to kill and reap.
const LONG: u64 = 60_000;
const AT_ONCE: Duration = Duration::from_secs(20);

#[test]
fn workers_of_a_caller_that_dropped_root_run_as_it_and_can_be_stopped() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test drops root, so it must run as root (CI does)"
    );
    assert!(
        fork_server().is_some(),
        "a fork server was launched as root"
    );
    // SAFETY: plain system calls on this process's credentials.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(NOBODY), 0);
        assert_eq!(libc::setuid(NOBODY), 0);
    }

    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert_eq!(apply_nap(&pool, 0).unwrap(), (NOBODY, NOBODY));
    let started = Instant::now();
    let got = apply_nap(&pool, LONG);
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    drop(pool);

    let pool = Pool::new(1).unwrap();
    let call = apply_async_nap(&pool, LONG);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    call.cancel();
    let got = call.get();
    assert!(matches!(got, Err(Error::Cancelled { .. })), "{got:?}");
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());

    let call = apply_async_nap(&pool, LONG);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    pool.terminate();
    assert!(started.elapsed() < AT_ONCE, "{:?}", started.elapsed());
    assert!(call.get().is_err());
    drop(pool);
    assert_no_children();
}
