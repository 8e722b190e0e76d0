//! Chaos: 2,000 tasks on 2 workers while a thread SIGKILLs a random child
//! (serving or still starting) every few milliseconds. Every result is either
//! the right value, `Error::WorkerDied`, or (a worker killed while starting
//! three times in a row) `Error::WorkerStart` naming the task; every `Ok`
//! task ran exactly once and no task ran twice; nothing hangs (a watchdog
//! aborts the test after two minutes); afterwards no child process remains.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{assert_no_children, children};

procpool::enable_test_support!();

const TASKS: u64 = 2_000;

/// Records that task `i` ran: creates `dir/i` (create_new), or `dir/twice-i`
/// if it already ran once.
#[pool_task]
fn work(dir: PathBuf, i: u64) -> (u64, u32) {
    let create = |name: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
    };
    if create(i.to_string()).is_err() {
        let _ = create(format!("twice-{i}"));
    }
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

    let dir = support::Scratch::temp_dir("chaos");
    let pool = Pool::new(2).unwrap();
    // Any child: serving, idle, or still starting (a start killed fast is retried).
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (stop, kills) = (stop.clone(), kills.clone());
        std::thread::spawn(move || {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
            let mut killed = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2 + xorshift(&mut seed) % 6));
                let candidates = children();
                if candidates.is_empty() {
                    continue;
                }
                let pid = candidates[(xorshift(&mut seed) % candidates.len() as u64) as usize];
                // SAFETY: kill(2) on our own child process.
                if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                    kills.fetch_add(1, Ordering::SeqCst);
                    killed.push(pid);
                }
            }
            killed
        })
    };

    let begun = Instant::now();
    let results: Vec<_> = (0..TASKS)
        .map(|i| apply_async_work(&pool, dir.clone(), i))
        .collect();
    let (mut ok, mut died, mut start_failed) = (0usize, 0usize, 0usize);
    for (i, r) in results.into_iter().enumerate() {
        match r.get() {
            Ok((value, pid)) => {
                assert_eq!(value, i as u64 * 3, "task {i} got another's result");
                assert_ne!(pid, std::process::id());
                assert!(
                    dir.join(i.to_string()).exists(),
                    "task {i} is Ok but never ran"
                );
                ok += 1;
            }
            Err(Error::WorkerDied { task, .. }) => {
                assert_eq!(task, "fault_chaos::work");
                died += 1;
            }
            Err(Error::WorkerStart { task, .. }) => {
                assert_eq!(task, "fault_chaos::work");
                assert!(
                    !dir.join(i.to_string()).exists(),
                    "task {i} ran, yet failed to start"
                );
                start_failed += 1;
            }
            Err(other) => panic!("task {i}: expected Ok, WorkerDied or WorkerStart, got {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let killed = killer.join().unwrap();
    let kills = kills.load(Ordering::SeqCst);
    println!(
        "fault_chaos: {TASKS} tasks in {:?}: ok {ok}, died {died}, \
         start failed {start_failed}, kills {kills}",
        begun.elapsed()
    );
    assert_eq!(ok + died + start_failed, TASKS as usize);
    let twice: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("twice-"))
        .collect();
    assert!(twice.is_empty(), "tasks that ran twice: {twice:?}");
    assert!(kills > 0, "the killer never struck");
    assert!(
        died <= kills,
        "more tasks died ({died}) than workers were killed ({kills})"
    );
    assert!(ok > 0);
    // The pool still works after the storm, once the last SIGKILL (which
    // may have hit a worker just as it took a task) has landed: every
    // process killed is gone (a zombie at most, which takes no task). (A
    // fixed 300 ms sleep stood for this: a SIGKILL lands when its target
    // next runs, which a loaded machine may delay.)
    support::wait_for(Duration::from_secs(30), "the killed workers to die", || {
        killed.iter().all(|&pid| !support::alive(pid))
    });
    assert_eq!(apply_work(&pool, dir.clone(), TASKS).unwrap().0, TASKS * 3);
    drop(pool);
    assert_no_children();
    let _ = done_tx.send(());
}
