//! The fork server dies while a pool is starting its first workers: the
//! start is retried (spawned from then on) and `build()` succeeds. Alone in
//! its binary: a fork server can die only once per process.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// The killer thread's state: it may act only while a pool is being used.
const IDLE: u8 = 0;
const ARMED: u8 = 1;
const FIRED: u8 = 2;
/// The server and every worker the killer stopped are gone.
const KILLED: u8 = 3;

/// The fork server dies (SIGKILL) while a pool is starting its workers, as
/// soon as it forked the first one: its workers die with it and are
/// replaced (spawned from then on), as for a pool already running, and
/// `build()` succeeds (it used to fail with `WorkerStart`, 4 runs in 5).
///
/// The killer finds the server's children by scanning /proc, and a pool's
/// whole life (build, 12 calls, drop) can fit between two scans; such a
/// pool proves nothing, so another is built, up to 20 times, until the
/// killer has struck during one.
///
/// On a quick machine every worker may have said hello before the first
/// scan: `build()` has returned and the killer stops workers in the middle
/// of calls, which then fail as `WorkerDied` (the fault model: a call whose
/// worker dies running it is not run again). So calls made while the
/// killer acts may fail that way, and only then; once it is done, every
/// call must succeed on the replacements.
#[test]
fn a_fork_server_killed_while_a_pool_starts_its_workers_does_not_fail_build() {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::sync::{Arc, Mutex};

    let server = support::fork_server().expect("init() started the fork server");
    // (A pool that spawns its workers leaves the killer nothing to strike.)
    assert_eq!(
        support::await_fork_server(),
        Some(true),
        "workers are forked"
    );
    let state = Arc::new(AtomicU8::new(IDLE));
    let quit = Arc::new(AtomicBool::new(false));
    let killer = {
        let (state, quit) = (Arc::clone(&state), Arc::clone(&quit));
        std::thread::spawn(move || {
            while !quit.load(Ordering::Acquire) {
                if state.load(Ordering::Acquire) != ARMED {
                    std::thread::yield_now();
                    continue;
                }
                let forked = support::children_of(server);
                if forked.is_empty()
                    || state
                        .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    continue;
                }
                let stopped = Mutex::new(Vec::new());
                let stop = |pids: Vec<u32>| {
                    for pid in pids {
                        // SAFETY: kill(2) on a grandchild; SIGSTOP only.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
                        stopped.lock().unwrap().push(pid);
                    }
                };
                // Hold the forked worker(s) before their hello, then kill
                // the server: they die with it (parent-death signal).
                stop(forked);
                // Let the server's answers (the workers' pids) reach the
                // pool, holding every worker it forks meanwhile too.
                let until = Instant::now() + Duration::from_millis(100);
                while Instant::now() < until {
                    stop(support::children_of(server));
                }
                // SAFETY: kill(2) on our own child process.
                unsafe { libc::kill(server as libc::pid_t, libc::SIGKILL) };
                let gone = support::gone_within(server, Duration::from_secs(10))
                    && stopped
                        .into_inner()
                        .unwrap()
                        .into_iter()
                        .all(|pid| support::gone_within(pid, Duration::from_secs(10)));
                assert!(gone, "the killed fork server or its workers lived on");
                state.store(KILLED, Ordering::Release);
                return;
            }
        })
    };
    let mut struck = false;
    for _attempt in 0..20 {
        // Start from a server with no children left from a missed pool.
        let settled = Instant::now() + Duration::from_secs(10);
        while !support::children_of(server).is_empty() {
            assert!(
                Instant::now() < settled,
                "a dropped pool's workers did not exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        state.store(ARMED, Ordering::Release);
        let state = Arc::clone(&state);
        let built = support::within(Duration::from_secs(60), "build", move || {
            let pool = Pool::builder().processes(6).build()?;
            let mut ok = 0;
            for _ in 0..12 {
                match apply_worker_pid(&pool) {
                    Ok(_) => ok += 1,
                    Err(procpool::Error::WorkerDied { .. })
                        if state.load(Ordering::Acquire) != ARMED => {}
                    Err(e) => panic!("a call failed, the killer not having struck: {e:?}"),
                }
            }
            // Disarmed here if the killer has not struck yet: it never will
            // during this pool.
            let fired = state
                .compare_exchange(ARMED, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err();
            if fired {
                support::wait_for(Duration::from_secs(30), "the killer", || {
                    state.load(Ordering::Acquire) == KILLED
                });
                for i in 0..12 {
                    if let Err(e) = apply_worker_pid(&pool) {
                        panic!("call {i} after the fork server died failed: {e:?}");
                    }
                }
            } else {
                assert_eq!(ok, 12, "calls failed with no fork server killed");
            }
            drop(pool);
            Ok::<bool, procpool::Error>(fired)
        });
        match built {
            Ok(fired) => struck = fired,
            Err(e) => panic!("build failed because the fork server died meanwhile: {e:?}"),
        }
        if struck {
            break;
        }
    }
    quit.store(true, Ordering::Release);
    killer.join().unwrap();
    assert!(
        struck,
        "the fork server never forked while 20 pools started"
    );
    // The pool is gone: so are its workers, spawned or forked.
    support::assert_no_children();
}
