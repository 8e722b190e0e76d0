//! A worker that dies (SIGKILL, abort, SIGSEGV, exit) fails exactly the task
//! it held with `Error::WorkerDied`, promptly; a replacement takes over; an
//! idle worker that dies is reaped and replaced without anyone noticing; no
//! child process is left behind.
//!
//! `std::process::exit` in a task is tested here (a test binary's workers
//! serve from the harness's entry test) and in `fault_parent.rs`, through a
//! real program.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, ExitInfo, Pool};
use support::{alive, assert_no_children, children, is_fork_server, serial, wait_for, Scratch};

procpool::enable_test_support!();

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Announces that it runs by creating `marker`, then sleeps.
#[pool_task]
fn announce_then_sleep(marker: PathBuf, ms: u64) -> u32 {
    std::fs::write(&marker, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[pool_task]
fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

#[pool_task]
fn abort_now() -> u32 {
    std::process::abort()
}

#[pool_task]
fn segfault() -> u32 {
    // SAFETY: plain libc calls; restoring the default action first, since the
    // Rust runtime's own SIGSEGV handler ignores a raised (not faulting) one.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    0
}

fn marker(name: &str) -> Scratch {
    Scratch::temp(&format!("fault-crash-{name}"))
}

/// Waits until the task behind `marker` runs; returns its worker's pid.
fn wait_started(marker: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(marker) {
            if let Ok(pid) = text.parse() {
                let _ = std::fs::remove_file(marker);
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "the task never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) on a pid that is our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
}

/// The pool still serves, from a process other than `dead`, with one live
/// child per worker and no zombie.
fn assert_pool_recovered(pool: &Pool, dead: u32) {
    for _ in 0..3 {
        let pid = apply_worker_pid(pool).unwrap();
        assert_ne!(pid, dead);
        assert_ne!(pid, std::process::id());
    }
    assert!(
        !children().contains(&dead),
        "the dead worker was not reaped"
    );
    // A replacement may still be starting: poll rather than read once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while children().len() != pool.processes() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(children().len(), pool.processes());
}

#[test]
fn sigkill_mid_task_fails_that_task_promptly_and_the_pool_carries_on() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let marker = marker("kill");
    let doomed = apply_async_announce_then_sleep(&pool, marker.to_path_buf(), 30_000);
    let others: Vec<_> = (0..6).map(|_| apply_async_worker_pid(&pool)).collect();
    let pid = wait_started(&marker);
    let killed_at = Instant::now();
    sigkill(pid);
    let outcome = doomed.get();
    let latency = killed_at.elapsed();
    println!("WorkerDied arrived {latency:?} after SIGKILL");
    match outcome {
        Err(Error::WorkerDied {
            task,
            pid: p,
            status,
        }) => {
            assert_eq!(task, "fault_crash::announce_then_sleep");
            assert_eq!(p, pid);
            assert_eq!(status, ExitInfo::Signal(libc::SIGKILL));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // Milliseconds in fact (printed above); the bound leaves room for a
    // heavily loaded machine and still rules out waiting on a timeout.
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    for r in others {
        assert_ne!(
            r.get().unwrap(),
            std::process::id(),
            "no other task is lost"
        );
    }
    assert_pool_recovered(&pool, pid);
    drop(pool);
    assert_no_children();
}

fn expect_death(result: Result<u32, Error>, task: &str, expected: ExitInfo) -> u32 {
    match result {
        Err(Error::WorkerDied {
            task: t,
            pid,
            status,
        }) => {
            assert_eq!(t, task);
            assert_eq!(status, expected);
            assert_ne!(pid, std::process::id());
            pid
        }
        other => panic!("expected WorkerDied for {task}, got {other:?}"),
    }
}

#[test]
fn abort_is_reported_as_sigabrt() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let begun = Instant::now();
    let pid = expect_death(
        apply_abort_now(&pool),
        "fault_crash::abort_now",
        ExitInfo::Signal(libc::SIGABRT),
    );
    assert!(begun.elapsed() < Duration::from_secs(5));
    // A replacement starts without waiting for the next task.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = children();
        if now.len() == 1 && now[0] != pid && alive(now[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement started: {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_pool_recovered(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn std_process_exit_in_a_task_is_reported_with_its_code() {
    let _serial = serial();
    // (Workers forked by the fork server; `fork_server_gone.rs` checks a
    // spawned one.)
    let pool = Pool::new(1).unwrap();
    for code in [3, 0, 1] {
        let pid = expect_death(
            apply_exit_with(&pool, code),
            "fault_crash::exit_with",
            ExitInfo::Code(code),
        );
        assert_pool_recovered(&pool, pid);
    }
    drop(pool);
    assert_no_children();
}

#[test]
fn a_segfault_is_reported_as_sigsegv() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = expect_death(
        apply_segfault(&pool),
        "fault_crash::segfault",
        ExitInfo::Signal(libc::SIGSEGV),
    );
    assert_pool_recovered(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn an_idle_worker_that_dies_is_reaped_and_replaced_at_once() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let before = children();
    assert_eq!(before.len(), 2);
    let victim = before[0];
    sigkill(victim);
    // Reaped (no zombie) and replaced, without any task being submitted.
    // It takes milliseconds; the limits are loose, for a busy machine (which
    // may also take a while to exec a debug binary), and still rule out a
    // zombie left until the next task comes, which here is never.
    let killed_at = Instant::now();
    while children().contains(&victim) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the dead worker lingers as a zombie"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("idle worker reaped {:?} after SIGKILL", killed_at.elapsed());
    loop {
        let now = children();
        if now.len() == 2 && now.iter().all(|&p| alive(p)) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "not replaced: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pids: Vec<u32> = (0..4).map(|_| apply_worker_pid(&pool).unwrap()).collect();
    assert!(!pids.contains(&victim));
    drop(pool);
    assert_no_children();
}

#[test]
fn a_job_sent_to_a_worker_that_just_died_idle_runs_on_a_new_one() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    for _ in 0..5 {
        let victim = apply_worker_pid(&pool).unwrap();
        sigkill(victim);
        while alive(victim) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Dead but maybe not yet noticed: the job must not fail for it.
        let pid = apply_worker_pid(&pool).unwrap();
        assert_ne!(pid, victim);
    }
    drop(pool);
    assert_no_children();
}

#[test]
fn many_deaths_in_a_row_leave_no_zombie() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = (0..6)
        .map(|i| match i % 3 {
            0 => apply_async_abort_now(&pool),
            1 => apply_async_abort_now(&pool),
            _ => apply_async_segfault(&pool),
        })
        .collect();
    for r in results {
        assert!(matches!(r.get(), Err(Error::WorkerDied { .. })));
    }
    let text = apply_abort_now(&pool).unwrap_err().to_string();
    assert!(text.contains("SIGABRT"), "{text}");
    // The last death is reaped a moment after its error is reported.
    wait_for(Duration::from_secs(10), "no zombie to be left", || {
        children().iter().all(|&p| alive(p))
    });
    drop(pool);
    assert_no_children();
}

#[test]
fn a_panicking_parent_thread_still_reaps_its_workers() {
    let _serial = serial();
    let outcome = std::thread::spawn(|| {
        let pool = Pool::new(2).unwrap();
        // Held (not awaited) while the thread panics.
        let _pending = apply_async_worker_pid(&pool);
        assert_eq!(children().len(), 2);
        panic!("the caller panics while its pool is open");
    })
    .join();
    assert!(outcome.is_err());
    assert_no_children();
}

/// This process's children, from each thread's `children` file (much faster
/// than scanning all of /proc, so a starting worker is seen in time).
fn fast_children() -> Vec<u32> {
    let read = |path: &Path| -> Vec<u32> {
        std::fs::read_to_string(path).map_or_else(
            |_| Vec::new(),
            |list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            },
        )
    };
    let of = |pid: &str| -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
        tasks
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|task| read(&task.path().join("children")))
            .collect()
    };
    let mut out = of("self");
    // Workers forked by the fork server are its children (of its thread
    // that serves, the harness's test thread in a test binary).
    if let Some(server) = out.iter().position(|&pid| is_fork_server(pid)) {
        let server = out.remove(server);
        out.extend(of(&server.to_string()));
    }
    out
}

/// Workers killed while starting (as by the OOM killer) do not fail a queued
/// task that never ran: its worker's start is tried again (up to three times).
/// The killer races the starts, so each round may instead hit the worker once
/// it took the task (a legitimate `WorkerDied`); some round (of at most 40)
/// must show two starts killed and the task still `Ok`, and none may give
/// `WorkerStart`.
#[test]
fn workers_killed_while_starting_do_not_fail_a_queued_task() {
    let _serial = serial();
    let mut proven = 0;
    // (A forked worker starts in well under a millisecond, so the killer
    // often sees a start too late: rounds go on until one proves it.)
    for _round in 0..40 {
        if proven > 0 {
            break;
        }
        let pool = Pool::builder()
            .processes(1)
            .max_tasks_per_child(1)
            .build()
            .unwrap();
        // The first worker retires after this task; its successor starts with the next.
        let first = apply_worker_pid(&pool).unwrap();
        // Kill (at most two of) the children that appear while the task
        // waits: its worker's start attempts. (The next idle replacement comes
        // only 100 ms after the task is done, when the killer has stopped.)
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let killer = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut killed = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) && killed.len() < 2 {
                    for pid in fast_children() {
                        if pid != first && !killed.contains(&pid) && killed.len() < 2 {
                            // SAFETY: kill(2) on our own child process.
                            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                            killed.push(pid);
                        }
                    }
                }
                killed
            })
        };
        let outcome = apply_worker_pid(&pool);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let killed = killer.join().unwrap();
        println!("killed {killed:?}: {outcome:?}");
        match outcome {
            Ok(pid) => {
                // (A kill may also land just after the worker answered.)
                assert!(pid != first, "{pid} {killed:?}");
                assert_ne!(pid, std::process::id());
                if killed.len() == 2 && !killed.contains(&pid) {
                    proven += 1;
                }
            }
            // The kill landed after the task was handed to that worker.
            Err(Error::WorkerDied { pid, .. }) if killed.contains(&pid) => {}
            Err(e) => panic!("the task never ran, yet failed: {e:?}"),
        }
        drop(pool);
        assert_no_children();
    }
    assert!(proven > 0, "no round killed two starts before the task ran");
}

/// Forks a process that keeps the worker's channel open for `hold_ms`, then
/// aborts the worker.
#[pool_task]
fn fork_then_abort(hold_ms: u64) -> u32 {
    // SAFETY: the forked child only sleeps and _exits (async-signal-safe).
    unsafe {
        if libc::fork() == 0 {
            let ts = libc::timespec {
                tv_sec: (hold_ms / 1000) as libc::time_t,
                tv_nsec: ((hold_ms % 1000) * 1_000_000) as libc::c_long,
            };
            libc::nanosleep(&ts, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    std::process::abort()
}

/// The worker's death is seen even when a process it forked still holds the
/// channel open (so no end-of-file comes): the wait watches the worker itself.
#[test]
fn a_death_is_seen_while_a_forked_grandchild_holds_the_channel() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let started = Instant::now();
    match apply_fork_then_abort(&pool, 20_000) {
        Err(Error::WorkerDied { task, status, .. }) => {
            assert_eq!(task, "fault_crash::fork_then_abort");
            assert_eq!(status, ExitInfo::Signal(libc::SIGABRT));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    println!("WorkerDied {took:?} after the call (the grandchild holds the channel 20 s)");
    assert_ne!(apply_worker_pid(&pool).unwrap(), std::process::id());
    drop(pool);
    assert_no_children();
}
