//! `close`, `join`, `terminate` and drop: queued work is finished or fails
//! with a typed error, nothing hangs, and no child process is left behind.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{assert_no_children, children, serial};

procpool::enable_test_support!();

#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[test]
fn close_refuses_new_work_and_join_finishes_queued_work() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    assert_eq!(children().len(), 2, "one process per worker");
    let queued: Vec<_> = (0..6).map(|_| apply_async_nap(&pool, 50)).collect();
    pool.close();
    match apply_nap(&pool, 0) {
        Err(Error::PoolClosed { task }) => assert_eq!(task, "lifecycle::nap"),
        other => panic!("expected PoolClosed, got {other:?}"),
    }
    pool.join();
    for r in queued {
        assert!(r.ready(), "join returned before queued work finished");
        assert_ne!(r.get().unwrap(), std::process::id());
    }
    assert_no_children();
}

#[test]
fn terminate_stops_now_and_fails_pending_tasks() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let running: Vec<_> = (0..2).map(|_| apply_async_nap(&pool, 10_000)).collect();
    let queued: Vec<_> = (0..4).map(|_| apply_async_nap(&pool, 10_000)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let begun = Instant::now();
    pool.terminate();
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "terminate waited for tasks"
    );
    for r in running.into_iter().chain(queued) {
        match r.get() {
            Err(Error::Terminated { task }) => assert_eq!(task, "lifecycle::nap"),
            other => panic!("expected Terminated, got {other:?}"),
        }
    }
    assert!(matches!(apply_nap(&pool, 0), Err(Error::PoolClosed { .. })));
    assert_no_children();
}

#[test]
fn dropping_the_pool_closes_and_joins_it() {
    let _serial = serial();
    let results = {
        let pool = Pool::new(2).unwrap();
        (0..4)
            .map(|_| apply_async_nap(&pool, 50))
            .collect::<Vec<_>>()
    };
    for r in results {
        assert_ne!(r.get().unwrap(), std::process::id());
    }
    assert_no_children();
}

/// A pool dropped by a panic (its thread's last handle) is terminated, as
/// Python's `with Pool()` terminates on an exception: the panic does not
/// wait for a task that may never end, and a result handed out before
/// fails with `Terminated`. (It joined: the panic waited the whole minute.)
#[test]
fn a_pool_dropped_by_a_panic_is_terminated_not_joined() {
    let _serial = serial();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let panicked = std::thread::spawn(move || {
        let pool = Pool::new(1).unwrap();
        let long = apply_async_nap(&pool, 60_000);
        let queued = apply_async_nap(&pool, 0);
        tx.send((long, queued)).unwrap();
        panic!("the test fails here");
    })
    .join();
    assert!(panicked.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the panic waited {:?} for the pool",
        started.elapsed()
    );
    let (long, queued) = rx.recv().unwrap();
    assert!(matches!(long.get(), Err(Error::Terminated { .. })));
    assert!(matches!(queued.get(), Err(Error::Terminated { .. })));
    assert_no_children();
}

/// A handle dropped by a panic while another handle lives on does not stop
/// the pool: only the last handle's drop acts, and the running task's
/// result holds its value. (Passes.)
#[test]
fn a_clone_dropped_by_a_panic_leaves_the_pool_running() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let clone = pool.clone();
    let running = std::thread::spawn(move || {
        let r = apply_async_nap(&clone, 300);
        std::panic::panic_any(r);
    })
    .join()
    .unwrap_err()
    .downcast::<procpool::AsyncResult<u32>>()
    .unwrap();
    assert_ne!(running.get().unwrap(), std::process::id());
    assert_ne!(apply_nap(&pool, 0).unwrap(), std::process::id());
    drop(pool);
    assert_no_children();
}

/// A pool made and dropped by a destructor that runs during a panic (a
/// guard's cleanup) is not dropped by that panic: it closes and joins, so
/// the work its destructor queued runs, as Python's `with Pool()` inside an
/// `except` block joins when its own block ends normally. (It was
/// terminated, because `std::thread::panicking()` was true at its drop.)
#[test]
fn a_pool_made_and_dropped_while_a_panic_unwinds_still_joins() {
    let _serial = serial();
    struct Cleanup(std::sync::mpsc::Sender<procpool::AsyncResult<u32>>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let pool = Pool::new(1).unwrap();
            let r = apply_async_nap(&pool, 300);
            let _ = self.0.send(r);
            // Dropped here, at the end of this destructor's own scope.
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let _cleanup = Cleanup(tx);
        panic!("the cleanup runs while this unwinds");
    })
    .join();
    assert!(panicked.is_err());
    let cleanup = rx.recv().unwrap();
    assert!(
        cleanup.ready(),
        "the pool's drop returned before its work ran"
    );
    assert_ne!(cleanup.get().unwrap(), std::process::id());
    assert_no_children();
}

#[test]
fn join_without_close_does_not_hang() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let r = apply_async_nap(&pool, 10);
    pool.join();
    assert!(r.get().is_ok());
    assert_no_children();
}

#[test]
fn a_pool_can_be_shared_between_threads() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_ne!(apply_nap(&pool, 1).unwrap(), std::process::id());
                }
            });
        }
    });
    drop(pool);
    assert_no_children();
}

#[test]
fn a_pool_outlives_the_thread_that_made_it() {
    let _serial = serial();
    // Workers die with the thread that forks them (PR_SET_PDEATHSIG), so
    // the pool must not fork from the caller's thread.
    let (pool, pid) = std::thread::spawn(|| {
        let pool = Pool::new(1).unwrap();
        let pid = apply_nap(&pool, 0).unwrap();
        (pool, pid)
    })
    .join()
    .unwrap();
    assert_ne!(pid, std::process::id());
    std::thread::sleep(Duration::from_millis(300));
    // The very worker started while that thread lived still answers (a
    // replacement would mean it died with the thread).
    assert_eq!(apply_nap(&pool, 0).unwrap(), pid);
    assert_eq!(apply_nap(&pool, 0).unwrap(), pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let _serial = serial();
    assert!(matches!(Pool::new(0), Err(Error::Config { .. })));
    // An absurd count (a typo in a setting) is refused before anything is
    // allocated for it (it aborted the process, or panicked, before).
    for n in [4097, 1 << 40, usize::MAX] {
        match Pool::new(n) {
            Err(Error::Config { message }) => {
                assert!(message.contains("at most 4096"), "{message}")
            }
            other => panic!("{n}: expected Config, got {other:?}"),
        }
    }
    assert!(matches!(
        Pool::builder().processes(1).max_tasks_per_child(0).build(),
        Err(Error::Config { .. })
    ));
    match Pool::builder().processes(1).max_frame_bytes(100).build() {
        Err(Error::Config { message }) => assert!(message.contains("max_frame_bytes"), "{message}"),
        other => panic!("expected Config, got {other:?}"),
    }
    // A zero time limit would fail every call: refused at build.
    match Pool::builder()
        .processes(1)
        .task_timeout(std::time::Duration::ZERO)
        .build()
    {
        Err(Error::Config { message }) => assert!(message.contains("task_timeout"), "{message}"),
        other => panic!("expected Config, got {other:?}"),
    }
    // So would a zero start-up limit fail every worker start (it was a
    // `WorkerStart` error asking whether the program calls `init()`).
    match Pool::builder()
        .processes(1)
        .start_timeout(std::time::Duration::ZERO)
        .build()
    {
        Err(Error::Config { message }) => assert!(message.contains("start_timeout"), "{message}"),
        other => panic!("expected Config, got {other:?}"),
    }
    // A handle's zero limit: every call through it times out before it
    // starts (no worker is killed), and the pool serves on.
    let pool = Pool::new(1).unwrap();
    let pid = apply_nap(&pool, 0).unwrap();
    let zero = pool.with_task_timeout(Some(std::time::Duration::ZERO));
    for _ in 0..3 {
        assert!(matches!(apply_nap(&zero, 0), Err(Error::Timeout { .. })));
        assert!(matches!(
            apply_async_nap(&zero, 0).get(),
            Err(Error::Timeout { .. })
        ));
    }
    assert!(matches!(map_nap(&zero, [0, 0]), Err(Error::Timeout { .. })));
    let items: Vec<_> = imap_nap(&zero, [0, 0, 0]).collect();
    assert_eq!(items.len(), 3);
    assert!(items
        .iter()
        .all(|r| matches!(r, Err(Error::Timeout { .. }))));
    assert_eq!(apply_nap(&pool, 0).unwrap(), pid);
    drop((zero, pool));
    assert_no_children();
}

#[pool_task]
fn echo_len(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// Time limits too far to reach (`Duration::MAX`) are no limits: the pool
/// starts, and large frames (past the 1 MiB ring, where the stall limit is
/// armed) cross both ways, by `apply` and `apply_async`. (A deadline made
/// from one overflowed: a panic in the caller or a pool thread, then a
/// pool that never answered.)
#[test]
fn time_limits_too_far_to_reach_are_no_limits() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .start_timeout(Duration::MAX)
        .frame_stall_timeout(Duration::MAX)
        .task_timeout(Duration::MAX)
        .build()
        .unwrap();
    let big = vec![7u8; 8 << 20];
    assert_eq!(apply_echo_len(&pool, big.clone()).unwrap(), big);
    assert_eq!(apply_async_echo_len(&pool, big.clone()).get().unwrap(), big);
    assert_eq!(apply_nap(&pool, 0).unwrap(), apply_nap(&pool, 0).unwrap());
    let far = pool.with_task_timeout(Some(Duration::MAX));
    assert_eq!(apply_echo_len(&far, big.clone()).unwrap(), big);
    assert_eq!(map_nap(&far, [0, 0]).unwrap().len(), 2);
    drop((far, pool));
    assert_no_children();
}

/// After `close`, every map form refuses even an empty input with
/// `PoolClosed`, as `map` did (Python raises for any map on a closed pool).
#[test]
fn maps_of_empty_inputs_are_refused_after_close() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    pool.close();
    fn closed<T>(r: &Result<T, Error>) -> bool {
        matches!(r, Err(Error::PoolClosed { task }) if task == "lifecycle::nap")
    }
    assert!(closed(&map_nap(&pool, Vec::<u64>::new())));
    assert!(closed(&map_async_nap(&pool, Vec::<u64>::new()).get()));
    let all: Vec<_> = imap_nap(&pool, Vec::<u64>::new()).collect();
    assert!(matches!(all.as_slice(), [r] if closed(r)), "{all:?}");
    let all: Vec<_> = imap_unordered_nap(&pool, Vec::<u64>::new()).collect();
    assert!(matches!(all.as_slice(), [r] if closed(r)), "{all:?}");
    // Non-empty inputs as before: one `PoolClosed`, the input not read.
    assert!(closed(&map_async_nap(&pool, [1u64, 2]).get()));
    let mut read = 0;
    let all: Vec<_> = imap_nap(&pool, (0..5u64).inspect(|_| read += 1)).collect();
    assert!(matches!(all.as_slice(), [r] if closed(r)), "{all:?}");
    assert_eq!(read, 0, "a refused imap reads none of its input");
    pool.join();
}

#[test]
fn a_task_name_too_long_for_the_wire_is_refused_at_submit() {
    let _serial = serial();
    use procpool::__private::{submit, ArgsEncoder, TaskInfo};
    let pool = Pool::new(1).unwrap();
    let name: &'static str = Box::leak("n".repeat(70_000).into_boxed_str());
    let info = TaskInfo {
        name,
        signature: "",
        fingerprint: 0,
    };
    match submit::<u32>(&pool, &info, ArgsEncoder::new().push(&0u64).finish()).get() {
        Err(Error::Encode {
            task,
            what,
            message,
        }) => {
            assert_eq!(task.len(), 70_000, "the error names the whole task");
            assert_eq!(what, "task name");
            assert!(message.contains("70000 bytes"), "{message}");
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    // The pool is unharmed.
    assert_ne!(apply_nap(&pool, 0).unwrap(), std::process::id());
}

/// Terminate while slots are busy starting replacements (every worker serves
/// one task): no slot may start a worker after terminate and run a queued
/// task on it, so terminate returns promptly and no long task succeeds.
#[test]
fn terminate_while_workers_are_being_replaced_starts_no_new_worker() {
    let _serial = serial();
    for round in 0..8u64 {
        let pool = Pool::builder()
            .processes(2)
            .max_tasks_per_child(1)
            .build()
            .unwrap();
        let quick: Vec<_> = (0..10).map(|_| apply_async_nap(&pool, 0)).collect();
        let long: Vec<_> = (0..4).map(|_| apply_async_nap(&pool, 30_000)).collect();
        std::thread::sleep(Duration::from_millis(15 * round));
        let begun = Instant::now();
        pool.terminate();
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "round {round}: terminate waited {:?} for a task",
            begun.elapsed()
        );
        for r in quick {
            match r.get() {
                Ok(pid) => assert_ne!(pid, std::process::id()),
                Err(Error::Terminated { .. }) => {}
                other => panic!("round {round}: expected Ok or Terminated, got {other:?}"),
            }
        }
        for r in long {
            match r.get() {
                Err(Error::Terminated { task }) => assert_eq!(task, "lifecycle::nap"),
                other => panic!("round {round}: expected Terminated, got {other:?}"),
            }
        }
        assert_no_children();
    }
}

/// Several threads joining at once all wait for the queued work (and its
/// callbacks), not only the first.
#[test]
fn every_concurrent_join_waits_for_the_work() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let results: Vec<_> = (0..6)
        .map(|_| {
            let tx = tx.clone();
            apply_async_nap(&pool, 300).callback(move |pid| tx.send(pid).unwrap())
        })
        .collect();
    drop(tx);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                barrier.wait();
                pool.join();
                assert!(
                    results.iter().all(|r| r.ready()),
                    "a join returned before the queued work finished"
                );
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 3);
    let pids: Vec<u32> = rx.try_iter().collect();
    assert_eq!(pids.len(), 6, "every callback ran before join returned");
    assert!(pids.iter().all(|&pid| pid != std::process::id()));
    assert_no_children();
}

/// Terminate just as a slot finds its idle worker dead (killed from outside)
/// and would start a replacement for the task it took: no replacement may run
/// the task, so terminate returns promptly and the task fails as terminated.
#[test]
fn terminate_as_a_slot_replaces_a_dead_worker_runs_nothing() {
    let _serial = serial();
    for round in 0..20u64 {
        let pool = Pool::new(1).unwrap();
        let worker = apply_nap(&pool, 0).unwrap();
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
        // Dead (a zombie, not yet reaped): the slot's send will fail, and it
        // will start a replacement for the task.
        let stat = format!("/proc/{worker}/stat");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(&stat).unwrap_or_default();
            match state.rsplit_once(')').map(|(_, rest)| rest.trim_start()) {
                Some(rest) if rest.starts_with('Z') => break,
                None => break,
                _ => std::thread::yield_now(),
            }
        }
        let long = apply_async_nap(&pool, 30_000);
        std::thread::sleep(Duration::from_micros(50 * round));
        let begun = Instant::now();
        pool.terminate();
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "round {round}: terminate waited {:?} for a task",
            begun.elapsed()
        );
        match long.get() {
            Err(Error::Terminated { .. } | Error::WorkerDied { .. }) => {}
            other => panic!("round {round}: expected Terminated, got {other:?}"),
        }
        assert_no_children();
    }
}

/// As in Python, where a map's tasks are all queued when it is called: a
/// `map` begun before `close` (on another thread) runs to its end, although
/// procpool queues its chunks as it goes; `join` waits for it.
#[test]
fn a_map_begun_before_close_runs_to_its_end_and_join_waits_for_it() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    // The map reads its input once it has begun: reading item 0 says so,
    // and item 300 is read only once the pool is closed, so the map is
    // begun and not finished at `close`, however slow the machine.
    let (begun_tx, begun) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let items = (0..600).map(move |i| {
        if i == 0 {
            begun_tx.send(()).unwrap();
        }
        if i == 300 {
            go_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        }
        2u64
    });
    let mapper = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            map_nap_with(&pool, items, procpool::MapOptions::new().chunksize(1))
        })
    };
    begun.recv_timeout(Duration::from_secs(60)).unwrap();
    pool.close();
    match apply_nap(&pool, 0) {
        Err(Error::PoolClosed { .. }) => {}
        other => panic!("a call after close: expected PoolClosed, got {other:?}"),
    }
    match map_nap(&pool, vec![1, 2]) {
        Err(Error::PoolClosed { .. }) => {}
        other => panic!("a map after close: expected PoolClosed, got {other:?}"),
    }
    assert!(!mapper.is_finished(), "the map ended before close");
    go.send(()).unwrap();
    pool.join();
    assert!(mapper.is_finished(), "join returned before the map ended");
    let pids = mapper.join().unwrap().expect("the map runs to its end");
    assert_eq!(pids.len(), 600);
    assert!(pids.iter().all(|&pid| pid != std::process::id()));
    assert_no_children();
}

/// Python's `it = pool.imap(f, xs); pool.close(); for r in it: ...; pool.join()`.
#[test]
fn an_imap_begun_before_close_runs_to_its_end() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let results = imap_nap_with(
        &pool,
        vec![1u64; 100],
        procpool::MapOptions::new().chunksize(1),
    );
    pool.close();
    let pids: Vec<u32> = results.map(|r| r.expect("every item runs")).collect();
    assert_eq!(pids.len(), 100);
    match imap_nap(&pool, vec![1]).next() {
        Some(Err(Error::PoolClosed { .. })) => {}
        other => panic!("an imap after close: expected PoolClosed, got {other:?}"),
    }
    pool.join();
    assert_no_children();
}

/// `join` cannot wait for an `imap` nobody reads (it reads its input only as
/// it is read): it returns, and the imap then yields what it had queued,
/// then `PoolClosed`, and ends.
#[test]
fn join_does_not_wait_for_an_imap_nobody_reads() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let mut results = imap_nap_with(&pool, 0..1000u64, procpool::MapOptions::new().chunksize(1));
    let first = results.next().expect("a first result").expect("it runs");
    assert_ne!(first, std::process::id());
    let begun = Instant::now();
    pool.join();
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "join took {:?}",
        begun.elapsed()
    );
    let rest: Vec<_> = results.collect();
    assert!(rest.len() < 999, "{} results after join", rest.len());
    match rest.last() {
        Some(Err(Error::PoolClosed { .. })) => {}
        other => panic!("expected PoolClosed last, got {other:?}"),
    }
    assert!(rest[..rest.len() - 1].iter().all(|r| r.is_ok()));
    assert_no_children();
}

/// Threads submitting every way (`apply`, `apply_async` with a callback,
/// `map_async`, `imap`) while another closes and cancels, then joins:
/// nothing hangs, every result submitted before the close is ready after
/// `join` (and every later one soon after), and every callback runs once.
#[test]
fn submitting_from_threads_during_close_and_cancel_and_join_loses_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    let _serial = serial();
    for round in 0..4 {
        let pool = Pool::new(2).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let attached = Arc::new(AtomicUsize::new(0));
        // Set as `close_and_cancel` is called: a result whose submission
        // returned before it is one `join` must settle.
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for t in 0..4 {
            let pool = pool.clone();
            let calls = calls.clone();
            let attached = attached.clone();
            let closing = closing.clone();
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || {
                let mut results = Vec::new();
                for i in 0..50u64 {
                    let c = calls.clone();
                    match (t + i) % 4 {
                        0 => {
                            attached.fetch_add(1, Ordering::SeqCst);
                            let r = apply_async_nap(&pool, i % 3).on_complete(move |_| {
                                c.fetch_add(1, Ordering::SeqCst);
                            });
                            results.push((!closing.load(Ordering::SeqCst), r));
                        }
                        1 => {
                            let _ = apply_nap(&pool, 0);
                        }
                        2 => {
                            attached.fetch_add(1, Ordering::SeqCst);
                            drop(map_async_nap(&pool, vec![0, 1, 0]).on_complete(move |_| {
                                c.fetch_add(1, Ordering::SeqCst);
                            }));
                        }
                        _ => {
                            let _: Vec<_> = imap_nap(&pool, vec![0u64, 1, 0]).take(2).collect();
                        }
                    }
                }
                tx.send(results).unwrap();
            }));
        }
        drop(tx);
        std::thread::sleep(Duration::from_millis(60 * round as u64));
        closing.store(true, Ordering::SeqCst);
        pool.close_and_cancel();
        let (jtx, jrx) = mpsc::channel();
        {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.join();
                jtx.send(()).unwrap();
            });
        }
        jrx.recv_timeout(Duration::from_secs(60))
            .expect("join hung");
        for t in threads {
            t.join().unwrap();
        }
        for results in rx.iter() {
            for (before_close, r) in results {
                // One refused later completes once its callback ran, which
                // may be after `join` returned.
                let ready = before_close || r.wait_timeout(Duration::from_secs(10));
                assert!(
                    r.ready() && ready,
                    "round {round}: a result not ready after join"
                );
            }
        }
        // Callbacks of calls refused after `join` began run after it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while calls.load(Ordering::SeqCst) < attached.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            attached.load(Ordering::SeqCst),
            "round {round}"
        );
    }
}

/// `join` called from the input iterator of a `map` (or `map_async`) on the
/// same pool: `join` waits for the maps under way on other threads, not for
/// the one whose own input called it (which cannot end before `join`
/// returns). The map then ends with `PoolClosed` for what it could not
/// queue, as Python's `map` raises for a pool that is no longer running.
#[test]
fn join_from_a_maps_own_input_does_not_wait_for_that_map() {
    let _serial = serial();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pool = Pool::new(2).unwrap();
        let joiner = pool.clone();
        let input = (0..8u64).inspect(move |&ms| {
            if ms == 3 {
                joiner.join();
            }
        });
        let _ = tx.send(("map", map_nap(&pool, input).map(|v| v.len())));
        let pool = Pool::new(2).unwrap();
        let joiner = pool.clone();
        // Of unknown length: read whole before anything is queued.
        let input = (0..8u64).filter(move |&ms| {
            if ms == 3 {
                joiner.join();
            }
            true
        });
        let _ = tx.send((
            "map_async",
            map_async_nap(&pool, input).get().map(|v| v.len()),
        ));
    });
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((_, Ok(_) | Err(Error::PoolClosed { .. }))) => {}
            Ok((what, other)) => panic!("{what}: {other:?}"),
            Err(_) => panic!("join from the map's own input waited for that map for ever"),
        }
    }
}
