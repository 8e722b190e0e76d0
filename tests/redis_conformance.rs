//! Promises of the distributed issue ("Beyond one machine") that the other
//! `redis_*` tests leave out, each tested as a user reading the issue would
//! (a real redis-server, real node processes): a node from the environment
//! serves the queue `PROCPOOL_QUEUE` names with `PROCPOOL_PROCESSES`
//! workers, the default queue is `"procpool"`, calls made before any node
//! is up run once one is, a node's local pool keeps `task_timeout` and
//! `max_tasks_per_child`, and a URL that is not a Redis one is a typed
//! error, not a panic or a hang.
#![cfg(feature = "redis")]

mod redis_support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::time::{Duration, Instant};

use procpool::{BrokerReason, Error, Node, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// The parent of process `pid`.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `PROCPOOL_NODE=… PROCPOOL_QUEUE=thumbnails PROCPOOL_PROCESSES=3`: the
/// node serves the callers of `.queue("thumbnails")` (and only those) with
/// a local pool of three worker processes, all busy at once.
#[test]
fn an_env_node_serves_its_named_queue_with_that_many_processes() {
    let server = RedisServer::start();
    let node = NodeProc::env_with(
        &server,
        &[("PROCPOOL_QUEUE", "thumbnails"), ("PROCPOOL_PROCESSES", "3")],
    );
    let pool = Pool::builder()
        .redis(&server.url())
        .queue("thumbnails")
        .build()
        .unwrap();
    assert_eq!(apply_square(&pool, 4).unwrap(), 16);
    let keys = server.keys();
    assert!(
        keys.iter().all(|k| k.starts_with("pp:{thumbnails:")),
        "{keys:?}"
    );

    let dir = TempDir::new();
    let (file, gate) = (dir.file("marks"), dir.file("gate"));
    let calls: Vec<_> = (0..4)
        .map(|i| apply_async_hold(&pool, file.clone(), format!("h{i}"), gate.clone()))
        .collect();
    wait_for(Duration::from_secs(20), "three calls to run at once", || {
        marks(&file, "start").len() >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = marks(&file, "start");
    assert_eq!(started.len(), 3, "three processes, three calls: {started:?}");
    let mut pids: Vec<i32> = started.iter().map(|l| mark_pid(l)).collect();
    for &pid in &pids {
        assert_eq!(pool_owner(parent_of(pid)), node.pid(), "a worker of the node");
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "on three processes: {started:?}");
    std::fs::write(&gate, b"").unwrap();
    for c in calls {
        c.get().unwrap();
    }
    assert_eq!(marks(&file, "end").len(), 4);
    wait_for(Duration::from_secs(30), "the caller to count 3", || {
        pool.processes() == 3
    });

    // A caller of the default queue is not served by it.
    let other = Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    match apply_square(&other, 2) {
        Err(Error::Broker {
            reason: BrokerReason::NoNode,
            ..
        }) => {}
        got => panic!("{got:?}"),
    }
}

/// The queue is optional, default `"procpool"`: a node from the environment
/// without `PROCPOOL_QUEUE` serves a caller that names `"procpool"`, and
/// without `PROCPOOL_PROCESSES` it runs one process per CPU.
#[test]
fn the_default_queue_is_procpool_and_the_default_processes_one_per_cpu() {
    let server = RedisServer::start();
    let _node = NodeProc::env_with(&server, &[]);
    let pool = Pool::builder()
        .redis(&server.url())
        .queue("procpool")
        .build()
        .unwrap();
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let keys = server.keys();
    assert!(
        keys.iter().all(|k| k.starts_with("pp:{procpool:")),
        "{keys:?}"
    );
    let cpus = std::thread::available_parallelism().unwrap().get();
    wait_for(Duration::from_secs(30), "the caller to count the CPUs", || {
        pool.processes() == cpus
    });
}

/// Calls made while no node is up wait in Redis and run, once each, when
/// the first node starts (nodes and callers start in any order).
#[test]
fn calls_made_before_any_node_is_up_run_once_one_starts() {
    let server = RedisServer::start();
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    let calls: Vec<_> = (0..5)
        .map(|i| apply_async_mark(&pool, file.clone(), format!("c{i}"), 1))
        .collect();
    let squares = map_async_square(&pool, 0..20);
    wait_for(Duration::from_secs(10), "the calls in Redis", || {
        server.queued() >= 6
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert!(marks(&file, "start").is_empty());
    let _node = NodeProc::env(&server, 2);
    for c in calls {
        c.get_timeout(Duration::from_secs(30)).unwrap();
    }
    assert_eq!(
        squares.get_timeout(Duration::from_secs(30)).unwrap(),
        (0..20u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let mut tags: Vec<String> = marks(&file, "start")
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect();
    tags.sort();
    assert_eq!(tags, ["c0", "c1", "c2", "c3", "c4"], "each ran once");
}

/// A node's local pool is an ordinary one: its `max_tasks_per_child`
/// replaces a worker after that many calls, and its `task_timeout` fails a
/// call that takes longer with `Timeout`, as locally, though the caller
/// set no limit; the node carries on.
#[test]
fn a_nodes_local_pool_keeps_task_timeout_and_max_tasks_per_child() {
    let server = RedisServer::start();
    let _node = NodeProc::code(
        &server.url(),
        &[
            ("processes", "1"),
            ("prefetch", "0"),
            ("max-tasks", "2"),
            ("task-timeout-ms", "1000"),
        ],
        &[],
    );
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let workers: Vec<u32> = (0..6).map(|_| apply_pids(&pool).unwrap().0).collect();
    for pair in workers.chunks(2) {
        assert_eq!(pair[0], pair[1], "two calls per worker: {workers:?}");
    }
    assert_ne!(workers[1], workers[2], "{workers:?}");
    assert_ne!(workers[3], workers[4], "{workers:?}");

    let dir = TempDir::new();
    let begun = Instant::now();
    match apply_mark(&pool, dir.file("marks"), "slow".into(), 10_000) {
        Err(Error::Timeout { task, limit }) => {
            assert_eq!(task, "t/mark");
            assert_eq!(limit, Duration::from_secs(1));
        }
        got => panic!("{got:?}"),
    }
    assert!(begun.elapsed() < Duration::from_secs(8), "{:?}", begun.elapsed());
    assert_eq!(apply_square(&pool, 6).unwrap(), 36, "the node carries on");
}

/// A URL that is not a Redis one (or a Redis URL with a bad port or
/// database) fails `build()`, a node's `start()` and an environment node
/// with an error saying so, at once, without showing the password.
#[test]
fn a_url_that_is_not_a_redis_url_is_refused_with_a_typed_error() {
    for url in [
        "",
        "not a url",
        "http://:hunter2@127.0.0.1:6379/0",
        "redis://:hunter2@127.0.0.1:notaport/0",
        "redis://:hunter2@127.0.0.1:99999/0",
        "redis://:hunter2@127.0.0.1:6379/notadb",
    ] {
        let begun = Instant::now();
        match Pool::builder().redis(url).build() {
            Ok(_) => panic!("{url:?}: built"),
            Err(e) => {
                assert!(
                    matches!(e, Error::Broker { .. } | Error::Config { .. }),
                    "{url:?}: {e:?}"
                );
                assert!(!e.to_string().contains("hunter2"), "{url:?}: {e}");
            }
        }
        match Node::builder().redis(url).processes(1).start() {
            Ok(_) => panic!("{url:?}: a node started"),
            Err(e) => {
                assert!(
                    matches!(e, Error::Broker { .. } | Error::Config { .. }),
                    "{url:?}: {e:?}"
                );
                assert!(!e.to_string().contains("hunter2"), "{url:?}: {e}");
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{url:?}: {:?}",
            begun.elapsed()
        );
        let mut node = std::process::Command::new(HELPER)
            .env("PROCPOOL_NODE", url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let begun = Instant::now();
        while node.try_wait().unwrap().is_none() && begun.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = node.try_wait().unwrap();
        if status.is_none() {
            let _ = node.kill();
            let _ = node.wait();
        }
        let mut err = String::new();
        std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{url:?}: {err}");
        assert!(err.contains("cannot serve as a node"), "{url:?}: {err}");
        assert!(!err.contains("hunter2"), "{url:?}: {err}");
    }
}
