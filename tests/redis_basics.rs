//! A pool built with `PoolBuilder::redis` against a real redis-server and
//! real node processes: every call form works unchanged, a node's errors
//! arrive as the same `Error` variants as locally, frames are bounded on
//! both sides, calls in Redis are bounded, and an unreachable Redis is a
//! typed error in bounded time.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use procpool::{BrokerReason, CancelOutcome, Error, ExitInfo, MapOptions, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

fn pool(server: &RedisServer) -> Pool {
    Pool::builder().redis(&server.url()).build().unwrap()
}

#[test]
fn every_call_form_works_through_redis() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pool = pool(&server);

    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
    assert_eq!(apply_echo(&pool, vec![1, 2, 3]).unwrap(), vec![1, 2, 3]);
    // A large Vec<u8> (sent after the rest of the arguments on a local
    // channel) arrives whole, by either path.
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(apply_echo(&pool, big.clone()).unwrap(), big);
    assert_eq!(apply_async_echo(&pool, big.clone()).get().unwrap(), big);
    assert_eq!(apply_async_square(&pool, 5).get().unwrap(), 25);
    let many: Vec<_> = (0..300u64).map(|i| apply_async_square(&pool, i)).collect();
    for (i, r) in many.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), (i * i) as u64);
    }
    assert_eq!(
        map_square(&pool, 0..50).unwrap(),
        (0..50u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let chunked = map_square_with(&pool, 0..100, MapOptions::new().chunksize(7)).unwrap();
    assert_eq!(chunked.len(), 100);
    assert_eq!(map_async_square(&pool, 1..4).get().unwrap(), [1, 4, 9]);
    let firsts: Vec<u64> = imap_square(&pool, 0..)
        .take(20)
        .map(Result::unwrap)
        .collect();
    assert_eq!(firsts, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    let total: u64 = imap_unordered_square(&pool, 1..=10)
        .map(Result::unwrap)
        .sum();
    assert_eq!(total, 385);
    let by_name: u64 = pool.apply_by_name("t/square", &(12u64,)).unwrap();
    assert_eq!(by_name, 144);
    assert_eq!(support::block_on(apply_async_square(&pool, 9)).unwrap(), 81);

    let (tx, rx) = mpsc::channel();
    let (etx, erx) = mpsc::channel();
    let _ok = apply_async_square(&pool, 3).callback(move |v| tx.send(v).unwrap());
    let _err = apply_async_boom(&pool, "in a callback".into())
        .error_callback(move |e| etx.send(e.kind()).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 9);
    assert_eq!(
        erx.recv_timeout(Duration::from_secs(10)).unwrap(),
        procpool::ErrorKind::Panic
    );
    // Pool::processes follows the nodes (refreshed every 2 s).
    wait_for(Duration::from_secs(30), "the node count", || {
        pool.processes() == 2
    });
    pool.close();
    assert!(matches!(
        apply_square(&pool, 1),
        Err(Error::PoolClosed { .. })
    ));
    pool.join();
}

#[test]
fn a_nodes_errors_arrive_as_the_same_variants() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pool = pool(&server);
    match apply_boom(&pool, "kaboom".into()) {
        Err(Error::Panic {
            task,
            message,
            location,
            ..
        }) => {
            assert_eq!((task.as_str(), message.as_str()), ("t/boom", "kaboom"));
            assert!(location.contains("redis_tasks.rs"), "{location}");
        }
        other => panic!("{other:?}"),
    }
    // Only registered names run on a node: the node's worker refuses the
    // rest, as a local one does.
    let unknown = procpool::__private::TaskInfo {
        name: "t/sqaure",
        signature: "fn(u64) -> u64",
        fingerprint: procpool::__private::fingerprint("fn(u64) -> u64"),
    };
    let r = procpool::__private::submit::<u64>(&pool, &unknown, Ok(vec![3]));
    match r.get() {
        Err(Error::UnknownTask { task, suggestions }) => {
            assert_eq!(task, "t/sqaure");
            assert!(
                suggestions.contains(&"t/square".to_string()),
                "{suggestions:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let wrong = procpool::__private::TaskInfo {
        name: "t/square",
        signature: "fn(i8) -> u64",
        fingerprint: procpool::__private::fingerprint("fn(i8) -> u64"),
    };
    let r = procpool::__private::submit::<u64>(&pool, &wrong, Ok(vec![3]));
    match r.get() {
        Err(Error::SignatureMismatch {
            task,
            caller,
            worker,
        }) => {
            assert_eq!(task, "t/square");
            assert_eq!(caller, "fn(i8) -> u64");
            assert_eq!(worker, "fn(u64) -> u64");
        }
        other => panic!("{other:?}"),
    }
    // A time limit set by the caller applies on the node.
    let impatient = pool.with_task_timeout(Some(Duration::from_millis(300)));
    let dir = TempDir::new();
    match apply_mark(&impatient, dir.file("marks"), "slow".into(), 10_000) {
        Err(Error::Timeout { task, limit }) => {
            assert_eq!(
                (task.as_str(), limit),
                ("t/mark", Duration::from_millis(300))
            )
        }
        other => panic!("{other:?}"),
    }
    // A limit under a millisecond reaches the node as one millisecond (it
    // went as zero, which the node read as a zero limit, and raced; see
    // `entry::timeout_field`), and the error names the limit as set, as a
    // local pool's does; a zero limit fails at once, unsent.
    let hasty = pool.with_task_timeout(Some(Duration::from_micros(500)));
    match apply_mark(&hasty, dir.file("marks"), "hasty".into(), 10_000) {
        Err(Error::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_micros(500)),
        other => panic!("{other:?}"),
    }
    let zero = pool.with_task_timeout(Some(Duration::ZERO));
    match apply_mark(&zero, dir.file("marks"), "zero".into(), 0) {
        Err(Error::Timeout { limit, .. }) => assert_eq!(limit, Duration::ZERO),
        other => panic!("{other:?}"),
    }
    assert!(!marks(&dir.file("marks"), "start")
        .iter()
        .any(|m| m.contains("zero")));
    assert_eq!(apply_square(&pool, 4).unwrap(), 16, "the node carries on");
}

#[test]
fn a_sigkilled_worker_on_a_node_is_worker_died_and_the_node_carries_on() {
    let server = RedisServer::start();
    let node = NodeProc::env(&server, 1);
    let pool = pool(&server);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let r = apply_async_mark(&pool, file.clone(), "victim".into(), 30_000);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    let worker = mark_pid(&marks(&file, "start")[0]);
    assert_ne!(
        worker,
        node.pid(),
        "the call runs in a worker, not the node"
    );
    // SAFETY: kill() with a valid signal; the pid is the node's worker.
    unsafe { libc::kill(worker, libc::SIGKILL) };
    match r.get() {
        Err(Error::WorkerDied { task, pid, status }) => {
            assert_eq!(task, "t/mark");
            assert_eq!(pid as i32, worker);
            assert_eq!(status, ExitInfo::Signal(9));
        }
        other => panic!("{other:?}"),
    }
    let (worker2, parent) = apply_pids(&pool).unwrap();
    assert_ne!(worker2 as i32, worker, "a new worker took over");
    assert_eq!(pool_owner(parent as i32), node.pid(), "on the same node");
}

#[test]
fn frames_are_bounded_on_both_sides() {
    let server = RedisServer::start();
    let _node = NodeProc::code(
        &server.url(),
        &[("processes", "1"), ("max-frame", "2000")],
        &[],
    );
    let pool = Pool::builder()
        .redis(&server.url())
        .max_frame_bytes(4000)
        .build()
        .unwrap();
    // Over the caller's limit: refused before anything is sent.
    match apply_echo(&pool, vec![7; 5000]) {
        Err(Error::FrameTooLarge { max: 4000, len, .. }) => assert!(len > 5000),
        other => panic!("{other:?}"),
    }
    // Over the node's limit: the node refuses the entry without decoding it.
    match apply_echo(&pool, vec![7; 3000]) {
        Err(Error::FrameTooLarge { max: 2000, len, .. }) => assert!(len > 3000),
        other => panic!("{other:?}"),
    }
    assert_eq!(apply_echo(&pool, vec![7; 1000]).unwrap(), vec![7; 1000]);
    assert_eq!(server.queued(), 0);
}

/// A result over the caller's `max_frame_bytes` fails with `FrameTooLarge`,
/// as from a local worker, though the node allows more: through `apply`'s
/// own read and through the reader thread's.
#[test]
fn a_result_over_the_callers_frame_limit_is_frame_too_large() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = Pool::builder()
        .redis(&server.url())
        .max_frame_bytes(4000)
        .build()
        .unwrap();
    let too_large = |got: Result<Vec<u8>, Error>| match got {
        Err(Error::FrameTooLarge {
            task,
            max: 4000,
            len,
        }) => {
            assert_eq!(task, "t/fill");
            assert!(len > 5000, "{len}");
        }
        other => panic!("{other:?}"),
    };
    too_large(apply_fill(&pool, 5000));
    too_large(apply_async_fill(&pool, 5000).get());
    assert_eq!(apply_fill(&pool, 3000).unwrap(), vec![7; 3000]);
    assert_eq!(server.queued(), 0);
}

#[test]
fn the_default_frame_limit_through_redis_is_256_mib() {
    let server = RedisServer::start();
    let pool = pool(&server);
    // Refused by the caller before anything is sent (and before any node
    // is needed); the zeroed vector is never touched, so it costs no memory.
    match apply_echo(&pool, vec![0; 257 << 20]) {
        Err(Error::FrameTooLarge { max, len, .. }) => {
            assert_eq!(max, 256 << 20);
            assert!(len > 257 << 20);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.queued(), 0);
}

#[test]
fn calls_in_redis_are_bounded_by_max_in_flight() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pool = Pool::builder()
        .redis(&server.url())
        .max_in_flight(4)
        .build()
        .unwrap();
    let dir = TempDir::new();
    let calls: Vec<_> = (0..60)
        .map(|i| apply_async_mark(&pool, dir.file("marks"), format!("{i}"), 10))
        .collect();
    let mut most = 0;
    while !calls.iter().all(|c| c.ready()) {
        most = most.max(server.queued());
        std::thread::sleep(Duration::from_millis(2));
    }
    for c in calls {
        c.get().unwrap();
    }
    assert!(most <= 4, "{most} entries in Redis at once; the bound is 4");
    assert!(most >= 1);
}

#[test]
fn a_node_started_before_its_redis_waits_for_it() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill9();
    // The node starts while nothing listens at its Redis's address...
    let (ready, told) = mpsc::channel();
    let node_url = url.clone();
    let starting = std::thread::spawn(move || {
        let node = NodeProc::code(&node_url, &[("processes", "1")], &[]);
        let _ = ready.send(());
        node
    });
    assert!(
        told.recv_timeout(Duration::from_millis(1500)).is_err(),
        "the node was ready without Redis"
    );
    // ...and serves once Redis is up (within its 15 s).
    server.restart();
    let node = starting.join().expect("the node started once Redis was up");
    assert!(!node.name.is_empty());
    let pool = Pool::builder().redis(&url).build().unwrap();
    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
}

#[test]
fn an_unreachable_redis_is_a_typed_error_at_build_and_during_a_run() {
    // At build: at once, clearly, without the password.
    let port = free_port();
    let started = Instant::now();
    let err = Pool::builder()
        .redis(&format!("redis://:hunter2@127.0.0.1:{port}/0"))
        .build()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    match &err {
        Error::Broker {
            task,
            reason: BrokerReason::Unreachable,
            message,
        } => {
            assert!(task.is_empty());
            assert!(message.contains("cannot reach Redis"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), procpool::ErrorKind::Broker);
    assert!(
        !err.to_string().contains("hunter2"),
        "password shown: {err}"
    );

    // During a run: calls fail with Broker after the retry budget.
    let mut server = RedisServer::start();
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(1))
        .build()
        .unwrap();
    let dir = TempDir::new();
    let running = apply_async_mark(&pool, dir.file("marks"), "long".into(), 5000);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&dir.file("marks"), "start").len() == 1
    });
    server.kill9();
    let cut = Instant::now();
    let later = apply_async_square(&pool, 2);
    for r in [running.get().map(|_| 0), later.get()] {
        match r {
            Err(Error::Broker {
                reason: BrokerReason::Unreachable,
                task,
                message,
            }) => {
                assert!(task.starts_with("t/"), "{task}");
                assert!(message.contains("unreachable"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The budget (1 s), plus an I/O timeout (5 s) for a read in flight.
    assert!(
        cut.elapsed() < Duration::from_secs(9),
        "{:?}",
        cut.elapsed()
    );
    let blocked = Instant::now();
    match apply_square(&pool, 3) {
        Err(Error::Broker { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(blocked.elapsed() < Duration::from_secs(9));
    pool.terminate();
}

#[test]
fn cancel_takes_a_call_back_from_redis_or_stops_it_on_its_node() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let pool = pool(&server);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let running = apply_async_mark(&pool, file.clone(), "running".into(), 20_000);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    let queued = apply_async_mark(&pool, file.clone(), "queued".into(), 1);
    wait_for(Duration::from_secs(5), "the entry in Redis", || {
        server.queued() == 2
    });
    assert_eq!(queued.cancel(), CancelOutcome::NotStarted);
    assert!(matches!(queued.get(), Err(Error::Cancelled { .. })));
    assert_eq!(server.queued(), 1, "the queued entry is deleted");
    assert_eq!(running.cancel(), CancelOutcome::Stopped);
    assert!(matches!(running.get(), Err(Error::Cancelled { .. })));
    // The node stops it (its worker is killed and replaced): no end line,
    // the entry settled, and the node serves on.
    wait_for(Duration::from_secs(10), "the entry to be settled", || {
        server.queued() == 0
    });
    assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    assert!(marks(&file, "end").is_empty(), "{:?}", marks(&file, "end"));
    assert_eq!(
        marks(&file, "start").len(),
        1,
        "the cancelled queued call never ran"
    );

    // close_and_cancel: the calls still waiting never run. (The blocker runs
    // long enough to be still running then, however slowly the test goes:
    // were it done, a waiting call could have started.)
    let blocker = apply_async_mark(&pool, file.clone(), "blocker".into(), 5000);
    let waiting = mark_calls(&pool, &file, "w", 5, 1);
    wait_for(Duration::from_secs(10), "the blocker to start", || {
        marks(&file, "start").len() == 2
    });
    assert_eq!(pool.close_and_cancel(), 5);
    for w in waiting {
        // It never ran: a cancel now says so (as Python's Future.cancel()).
        assert_eq!(w.cancel(), CancelOutcome::NotStarted);
        assert!(matches!(w.get(), Err(Error::Cancelled { .. })));
    }
    blocker.wait();
    assert_eq!(blocker.cancel(), CancelOutcome::Finished);
    blocker.get().unwrap();
    pool.join();
    assert_eq!(marks(&file, "start").len(), 2);
}

/// A node of one process (nothing claimed ahead) held by a `t/hold` call
/// until the test writes the gate: the node, the pool, the marks directory
/// (keep it), the mark file, the gate and the held call.
fn one_process_held(
    server: &RedisServer,
) -> (
    NodeProc,
    Pool,
    TempDir,
    String,
    String,
    procpool::AsyncResult<u32>,
) {
    let node = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let pool = pool(server);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let gate = dir.file("gate");
    let held = apply_async_hold(&pool, file.clone(), "held".into(), gate.clone());
    wait_for(Duration::from_secs(20), "the held call to start", || {
        marks(&file, "start").len() == 1
    });
    (node, pool, dir, file, gate, held)
}

/// A call cancelled while the writer is putting it in Redis (a 16 MiB
/// argument takes milliseconds to send) is cancelled: `NotStarted`, as no
/// node is free to take it. Redis could not find it yet, and the cancel
/// used to answer `Finished` while the call was still to run.
#[test]
fn a_call_cancelled_on_its_way_to_redis_is_cancelled_not_finished() {
    let server = RedisServer::start();
    let (_node, pool, _dir, file, gate, held) = one_process_held(&server);
    for _ in 0..3 {
        let r = apply_async_echo(&pool, vec![7u8; 16 << 20]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(r.cancel(), CancelOutcome::NotStarted);
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    }
    std::fs::write(&gate, b"").unwrap();
    held.get().unwrap();
    pool.join();
    assert_eq!(server.queued(), 0, "the cancelled calls' entries are gone");
    assert_eq!(marks(&file, "start").len(), 1);
}

/// `close_and_cancel` right after a burst cancels every call still waiting,
/// those the writer was putting in Redis included (they were missed: not in
/// the queue any more, not in Redis yet, and ran later).
#[test]
fn close_and_cancel_right_after_a_burst_cancels_every_waiting_call() {
    let server = RedisServer::start();
    let (_node, pool, _dir, file, gate, held) = one_process_held(&server);
    let big = apply_async_echo(&pool, vec![7u8; 16 << 20]);
    let burst = mark_calls(&pool, &file, "b", 3, 0);
    assert_eq!(pool.close_and_cancel(), 4, "every call of the burst");
    assert!(matches!(big.get(), Err(Error::Cancelled { .. })));
    for r in burst {
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    }
    std::fs::write(&gate, b"").unwrap();
    held.get().unwrap();
    pool.join();
    assert_eq!(server.queued(), 0, "the cancelled calls' entries are gone");
    assert_eq!(
        marks(&file, "start").len(),
        1,
        "{:?}",
        marks(&file, "start")
    );
}

/// A call cancelled at once after its submission, in every state it can be
/// in (queued in Redis, read by a node and not yet queued there, queued on
/// the node's local pool, running): a cancel that does not say `Finished`
/// means the call never runs to its end. (A stop used to be dropped when
/// it found the call between its claim and its start on the node.) The
/// calls hold their workers until a gate opens, once the workers that
/// started them are gone: a stop reaches the node after the cancel returns
/// (see `CancelOutcome::Stopped`), and under load one came after the end
/// of a call that slept 300 ms. A stop that was dropped leaves its call to
/// run to its end once the gate opens.
#[test]
fn a_call_cancelled_at_any_moment_never_runs_to_its_end() {
    for node in [
        &[("processes", "2")][..],
        &[("processes", "1"), ("prefetch", "0")],
    ] {
        let server = RedisServer::start();
        let _node = NodeProc::code(&server.url(), node, &[]);
        let pool = pool(&server);
        let dir = TempDir::new();
        let file = dir.file("marks");
        let gate = dir.file("gate");
        let mut cancelled = Vec::new();
        for i in 0..300u64 {
            let r = apply_async_hold(&pool, file.clone(), format!("c{i}"), gate.clone());
            std::thread::sleep(Duration::from_micros(300 * (i % 7)));
            let outcome = r.cancel();
            if outcome != CancelOutcome::Finished {
                assert!(matches!(r.get(), Err(Error::Cancelled { .. })), "{i}");
                cancelled.push(i);
            }
        }
        assert!(cancelled.len() > 150, "{} cancelled", cancelled.len());
        // The gate opens once no worker that started one has been alive
        // for a second (a worker handed a call just before its cancel may
        // mark its start after this first looks).
        let until = Instant::now() + Duration::from_secs(30);
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_secs(1) && Instant::now() < until {
            let started = marks(&file, "start");
            if started.iter().any(|l| support::alive(mark_pid(l) as u32)) {
                quiet = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::write(&gate, b"").unwrap();
        // Longer than any of them would take to end.
        std::thread::sleep(Duration::from_secs(2));
        let ends = marks(&file, "end");
        let ran: Vec<_> = cancelled
            .iter()
            .filter(|i| ends.iter().any(|l| l.contains(&format!(" c{i} "))))
            .collect();
        assert!(
            ran.is_empty(),
            "{node:?}: cancelled calls ran to their end: {ran:?}"
        );
        assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    }
}

#[test]
fn worker_settings_on_a_redis_pool_are_refused() {
    let err = Pool::builder()
        .redis("redis://127.0.0.1:1/0")
        .processes(4)
        .max_tasks_per_child(10)
        .build()
        .unwrap_err();
    match err {
        Error::Config { message } => {
            assert!(
                message.contains("processes, max_tasks_per_child"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn slow_calls_after_quick_ones_spread_over_the_nodes() {
    let server = RedisServer::start();
    // (`quick`: square looks quick to it however slow the machine; else it
    // might claim nothing ahead, and the test would not test its point.)
    let first = NodeProc::code(&server.url(), &[("processes", "1"), ("quick", "1")], &[]);
    let pool = pool(&server);
    // The first node learns that calls are quick: it claims ahead.
    let quick: Vec<_> = (0..2000u64).map(|i| apply_async_square(&pool, i)).collect();
    for q in quick {
        q.get().unwrap();
    }
    let _second = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let dir = TempDir::new();
    let (file, gate) = (dir.file("marks"), dir.file("gate"));
    // Two calls that hold their workers until both run at once: a call of
    // a task the node has not seen be quick is not kept behind its busy
    // process, it goes back to Redis for the idle node. (Kept behind, the
    // second would not start before the gate opens.)
    let slow: Vec<_> = (0..2)
        .map(|i| apply_async_hold(&pool, file.clone(), format!("{i}"), gate.clone()))
        .collect();
    wait_for(Duration::from_secs(60), "both calls to run at once", || {
        marks(&file, "start").len() == 2
    });
    std::fs::write(&gate, b"").unwrap();
    for s in slow {
        s.get().unwrap();
    }
    let mut per_worker: std::collections::BTreeMap<i32, usize> = Default::default();
    for l in marks(&file, "start") {
        *per_worker.entry(mark_pid(&l)).or_default() += 1;
    }
    assert_eq!(per_worker.len(), 2, "all on one node: {per_worker:?}");
    assert!(first.name.starts_with('n'));
}

/// `join` returns once every result is ready, as on a local pool: the
/// last outcomes are handed to their promises before it returns (a
/// `map_async` gathers its chunks' results as they complete).
#[test]
fn every_result_is_ready_when_join_returns() {
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    let _node = NodeProc::env(&server, 2);
    for round in 0..20 {
        let pool = pool(&server);
        let mapped = map_async_square(&pool, 0..100u64);
        let single = apply_async_square(&pool, 7);
        pool.close();
        pool.join();
        assert!(
            mapped.ready(),
            "round {round}: the map's result was not ready"
        );
        assert!(
            single.ready(),
            "round {round}: a call's result was not ready"
        );
        let squares: Vec<u64> = (0..100).map(|x| x * x).collect();
        assert_eq!(mapped.get().unwrap(), squares);
        assert_eq!(single.get().unwrap(), 49);
    }
}
