//! What a caller pool holds goes when it goes: its threads, its
//! connections (descriptors here, clients in Redis). Alone in its binary:
//! the counts are the whole process's, so its tests run one at a time
//! (`support::serial`): another test's node process, pool threads or
//! redis-cli pipes would be counted too.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use procpool::Pool;
use redis_support::*;
use support::{back_within, fds, threads};
use tasks::*;

procpool::enable_test_support!();

fn pool(server: &RedisServer) -> Pool {
    Pool::builder().redis(&server.url()).build().unwrap()
}

/// Callers built, used every way and dropped, 30 times over, leave the
/// process with the threads and descriptors (connections) it had, and
/// Redis with the clients it had.
#[test]
fn callers_built_and_dropped_leave_no_thread_connection_or_client() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "2")], &[]);
    let clients = || server.clients();
    let cycle = |round: u64| {
        let pool = pool(&server);
        assert_eq!(apply_square(&pool, round).unwrap(), round * round);
        let (tx, rx) = std::sync::mpsc::channel();
        let r = apply_async_square(&pool, round).callback(move |v| tx.send(v).unwrap());
        assert_eq!(r.get().unwrap(), round * round);
        assert_eq!(rx.recv().unwrap(), round * round);
        assert_eq!(map_square(&pool, 0..10).unwrap().len(), 10);
        assert_eq!(imap_square(&pool, 0..10).count(), 10);
    };
    // The first caller starts what lives as long as the process.
    cycle(0);
    // redis-cli's own connection aside.
    let (threads0, fds0, clients0) = (threads(), fds(), clients() - 1);
    for round in 1..=30 {
        cycle(round);
    }
    back_within("threads left", threads0, threads);
    back_within("descriptors left", fds0, fds);
    back_within("connections left open in Redis", clients0, || clients() - 1);
}

/// Nodes started in code, serving calls, stopped and waited for, 10 times
/// over in one process: the process is left with the threads, descriptors
/// and child processes it had, and Redis with the clients and members it
/// had.
#[test]
fn nodes_started_and_stopped_in_code_leave_no_thread_connection_or_child() {
    let _serial = support::serial();
    let server = RedisServer::start();
    let clients = || server.clients();
    let caller = pool(&server);
    let cycle = |round: u64| {
        let node = procpool::Node::builder()
            .redis(&server.url())
            .processes(2)
            .start()
            .unwrap();
        assert_eq!(apply_square(&caller, round).unwrap(), round * round);
        assert_eq!(map_square(&caller, 0..10).unwrap().len(), 10);
        node.stop();
        node.wait();
    };
    cycle(0);
    let (threads0, fds0, clients0) = (threads(), fds(), clients() - 1);
    for round in 1..=10 {
        cycle(round);
    }
    back_within("threads left", threads0, threads);
    back_within("descriptors left", fds0, fds);
    back_within("connections left open in Redis", clients0, || clients() - 1);
    // Workers, forked by the fork server or spawned; not the test's own
    // redis-server.
    let workers = || {
        support::children()
            .into_iter()
            .filter(|&pid| {
                !std::fs::read(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .starts_with(b"redis-server")
            })
            .count()
    };
    back_within("child processes left", 0, workers);
    let nodes = server
        .members()
        .into_iter()
        .filter(|(_, kind)| kind == "node")
        .count();
    assert_eq!(nodes, 0, "nodes still registered: {:?}", server.members());
}

/// Dropping a pool (or terminating it) returns as soon as its calls are
/// done, as a local pool's does: a caller that builds a pool per job, as
/// `with Pool(...) as p:` code does, does not pay a pause per pool. (Its
/// keeper slept its whole 500 ms tick between rounds, and the drop waited
/// for it: every drop took about 0.5 s, 300 short-lived pools 2.5 min.)
#[test]
fn dropping_or_terminating_a_pool_returns_at_once() {
    let _serial = support::serial();
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let mut took = Vec::new();
    for round in 0..7u64 {
        let pool = pool(&server);
        assert_eq!(apply_square(&pool, round).unwrap(), round * round);
        assert_eq!(apply_async_square(&pool, 3).get().unwrap(), 9);
        let begun = std::time::Instant::now();
        if round % 2 == 1 {
            pool.terminate();
        }
        drop(pool);
        took.push(begun.elapsed());
    }
    took.sort();
    // The median: a loaded machine may stall one drop.
    assert!(
        took[3] < std::time::Duration::from_millis(150),
        "drops took {took:?}"
    );
    // The keys of the callers are gone all the same.
    assert!(
        !server.members().iter().any(|(_, kind)| kind == "caller"),
        "{:?}",
        server.members()
    );
}
