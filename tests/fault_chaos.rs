//! Chaos: 2,000 tasks on 2 workers while a thread SIGKILLs a random worker
//! every few milliseconds. Every result is either the right value or
//! `Error::WorkerDied`; nothing hangs (a watchdog aborts the test after two
//! minutes); afterwards no child process remains.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{assert_no_children, children};

procpool::enable_test_support!();

const TASKS: u64 = 2_000;

#[pool_task]
fn work(i: u64) -> (u64, u32) {
    std::thread::sleep(Duration::from_micros(500));
    (i * 3, std::process::id())
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn every_task_ends_ok_or_worker_died_under_random_sigkills() {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Only a timeout: a test that panicked drops the sender and should
        // report its own failure.
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(Duration::from_secs(120))
        {
            eprintln!("fault_chaos: still running after 120 s; aborting");
            std::process::abort();
        }
    });

    let pool = Pool::new(2).unwrap();
    // Workers known to have finished starting: only those are killed (one
    // killed while starting fails a task with WorkerStart, a different
    // fault, tested elsewhere).
    let served: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (served, stop, kills) = (served.clone(), stop.clone(), kills.clone());
        std::thread::spawn(move || {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2 + xorshift(&mut seed) % 6));
                let candidates: Vec<u32> = {
                    let served = served.lock().unwrap();
                    children()
                        .into_iter()
                        .filter(|p| served.contains(p))
                        .collect()
                };
                if candidates.is_empty() {
                    continue;
                }
                let pid = candidates[(xorshift(&mut seed) % candidates.len() as u64) as usize];
                // SAFETY: kill(2) on our own child process.
                if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let begun = Instant::now();
    let results: Vec<_> = (0..TASKS)
        .map(|i| {
            let served = served.clone();
            apply_async_work(&pool, i).callback(move |(_, pid)| {
                served.lock().unwrap().insert(pid);
            })
        })
        .collect();
    let (mut ok, mut died) = (0usize, 0usize);
    for (i, r) in results.into_iter().enumerate() {
        match r.get() {
            Ok((value, pid)) => {
                assert_eq!(value, i as u64 * 3, "task {i} got another's result");
                assert_ne!(pid, std::process::id());
                ok += 1;
            }
            Err(Error::WorkerDied { task, .. }) => {
                assert_eq!(task, "fault_chaos::work");
                died += 1;
            }
            Err(other) => panic!("task {i}: expected Ok or WorkerDied, got {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(Ordering::SeqCst);
    println!(
        "fault_chaos: {TASKS} tasks in {:?}: ok {ok}, died {died}, kills {kills}",
        begun.elapsed()
    );
    assert_eq!(ok + died, TASKS as usize);
    assert!(kills > 0, "the killer never struck");
    assert!(
        died <= kills,
        "more tasks died ({died}) than workers were killed ({kills})"
    );
    assert!(ok > 0);
    // The pool still works after the storm, once the last SIGKILL (which
    // may have hit a worker just as it took a task) has landed.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(apply_work(&pool, 5).unwrap().0, 15);
    drop(pool);
    assert_no_children();
    let _ = done_tx.send(());
}
