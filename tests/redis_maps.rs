//! The map family and several callers through Redis, against a real
//! redis-server and real node processes: a caller that terminates leaves
//! another caller's calls alone, `imap_unordered` over two nodes yields
//! every item once, a map's time limit is per item, a chunk whose node dies
//! fails with `NodeLost`, and an `imap` dropped early, a cancelled
//! `map_async` and cancelled calls leave no caller state in Redis, and
//! cancelling a `map_async` that already failed stops its other chunks.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use procpool::{Error, MapOptions, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

fn single(server: &RedisServer) -> NodeProc {
    NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[])
}

/// `n` items for `t/mark` on `file`, tagged `i<k>`: item `slow` sleeps
/// `slow_ms`, the others 10 ms.
fn mark_items(file: &str, n: u64, slow: u64, slow_ms: u64) -> Vec<(String, String, u64)> {
    (0..n)
        .map(|i| {
            (
                file.to_string(),
                format!("i{i}"),
                if i == slow { slow_ms } else { 10 },
            )
        })
        .collect()
}

/// Two callers on one queue: one terminates while its calls are queued
/// and running; the other's calls (queued among them) all complete.
#[test]
fn a_terminating_caller_leaves_the_other_callers_calls_alone() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "2"), ("prefetch", "0")], &[]);
    let a = Pool::builder().redis(&server.url()).build().unwrap();
    let b = Pool::builder().redis(&server.url()).build().unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    for i in 0..10 {
        ra.push(apply_async_mark(&a, file.clone(), format!("a{i}"), 300));
        rb.push(apply_async_mark(&b, file.clone(), format!("b{i}"), 50));
    }
    wait_for(Duration::from_secs(20), "calls to start", || {
        !marks(&file, "start").is_empty()
    });
    a.terminate();
    for r in rb {
        r.get_timeout(Duration::from_secs(60)).expect("b's call");
    }
    for r in ra {
        let _ = r.get();
    }
    drop(a);
    assert_eq!(apply_square(&b, 3).unwrap(), 9);
    drop(b);
    assert_eq!(server.queued(), 0);
}

/// `imap_unordered` over two nodes: every item once.
#[test]
fn imap_unordered_over_two_nodes_yields_every_item_once() {
    let server = RedisServer::start();
    let _a = NodeProc::env(&server, 2);
    let _b = NodeProc::env(&server, 2);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for x in imap_unordered_square_with(&pool, 0..2000u64, MapOptions::new().chunksize(3)) {
        *seen.entry(x.unwrap()).or_default() += 1;
    }
    assert_eq!(seen.len(), 2000);
    assert!(seen.values().all(|n| *n == 1));
    let v: Vec<u64> = imap_square_with(&pool, 0..500u64, MapOptions::new().chunksize(7))
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, (0..500u64).map(|x| x * x).collect::<Vec<_>>());
}

/// A map with a time limit: per item, over Redis as locally.
#[test]
fn a_maps_time_limit_is_per_item_over_redis() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pool = Pool::builder()
        .redis(&server.url())
        .build()
        .unwrap()
        .with_task_timeout(Some(Duration::from_millis(1500)));
    let dir = TempDir::new();
    let file = dir.file("marks");
    let items = mark_items(&file, 4, 1, 20_000);
    let t = Instant::now();
    let got: Vec<_> = imap_mark_with(&pool, items, MapOptions::new().chunksize(1)).collect();
    assert!(
        got[0].is_ok() && got[2].is_ok() && got[3].is_ok(),
        "{got:?}"
    );
    assert!(matches!(got[1], Err(Error::Timeout { .. })), "{got:?}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

/// Dropping an `imap` early, cancelling a `map_async` and calls: once the
/// pool is dropped and everything settled, Redis holds the same keys as
/// before.
#[test]
fn redis_keys_back_to_baseline_after_imap_drop_and_cancels() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "2")], &[]);
    {
        let pool = Pool::builder().redis(&server.url()).build().unwrap();
        assert_eq!(map_square(&pool, 0..100).unwrap().len(), 100);
    }
    std::thread::sleep(Duration::from_millis(500));
    let keys0 = server.keys();
    let dir = TempDir::new();
    let file = dir.file("marks");
    {
        let pool = Pool::builder().redis(&server.url()).build().unwrap();
        let items: Vec<(String, String, u64)> = (0..40u64)
            .map(|i| (file.clone(), format!("i{i}"), 200))
            .collect();
        let mut it = imap_mark_with(&pool, items.clone(), MapOptions::new().chunksize(1));
        it.next().unwrap().unwrap();
        drop(it);
        let m = map_async_mark_with(&pool, items.clone(), MapOptions::new().chunksize(2));
        std::thread::sleep(Duration::from_millis(300));
        let _ = m.cancel();
        let mut rs = Vec::new();
        for i in 0..6 {
            rs.push(apply_async_mark(&pool, file.clone(), format!("c{i}"), 2000));
        }
        std::thread::sleep(Duration::from_millis(500));
        for r in &rs {
            let _ = r.cancel();
        }
    }
    wait_for(Duration::from_secs(30), "settled", || {
        server.queued() == 0 && server.pending() == 0
    });
    std::thread::sleep(Duration::from_millis(1000));
    let keys1 = server.keys();
    assert!(server
        .members()
        .iter()
        .all(|(k, v)| v != "caller" && !k.starts_with("hw:")));
    assert!(keys1.iter().all(|k| !k.contains(":res:")), "{keys1:?}");
    // The only key more: the control stream, holding the stops of the
    // cancels for ten minutes.
    let more: Vec<_> = keys1.iter().filter(|k| !keys0.contains(k)).collect();
    assert!(
        more.iter().all(|k| k.ends_with("ctl")),
        "keys left: {more:?}"
    );
}

/// A chunk whose node is SIGKILLed mid-way: every item of it fails with
/// `NodeLost` (default: at most once), the other chunks are fine.
#[test]
fn a_chunk_whose_node_dies_fails_each_of_its_items_node_lost() {
    let server = RedisServer::start();
    let mut victim = single(&server);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    let items = mark_items(&file, 3, 0, 30_000);
    let r = map_async_mark_with(&pool, items, MapOptions::new().chunksize(3));
    wait_for(Duration::from_secs(20), "the chunk to start", || {
        marks(&file, "start").len() == 1
    });
    victim.kill9();
    let got = r.get();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
    let _second = single(&server);
    assert_eq!(apply_square(&pool, 4).unwrap(), 16);
    assert_eq!(server.queued(), 0);
}

/// Through Redis too, cancelling a `map_async` that already failed (its
/// first item's error came back at once) stops the chunks behind that
/// error, queued or running on a node, and keeps the error.
#[test]
fn cancelling_a_failed_map_async_stops_its_remaining_chunks_over_redis() {
    let server = RedisServer::start();
    let _node = single(&server);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    // The first item cannot open its mark file: it panics at once.
    let mut items = mark_items(&file, 4, 99, 0);
    items[0].0 = dir.file("missing/marks");
    for item in &mut items[1..] {
        item.2 = 20_000;
    }
    let r = map_async_mark_with(&pool, items, MapOptions::new().chunksize(1));
    assert!(r.wait_timeout(Duration::from_secs(20)), "the first error");
    assert_eq!(r.cancel(), procpool::CancelOutcome::Finished);
    let next =
        procpool::AsyncResult::get_timeout(&apply_async_square(&pool, 4), Duration::from_secs(15));
    assert_eq!(
        next.ok(),
        Some(16),
        "the failed map's chunks still hold the node"
    );
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    drop(pool);
    assert_eq!(server.queued(), 0);
}
