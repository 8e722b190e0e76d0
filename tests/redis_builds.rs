//! Callers and nodes built from different code never meet: each build
//! (its task names and signature fingerprints) has a stream of its own, so
//! a node never sees a call it could decode as garbage. This test binary
//! registers one task more than the node helper: another build.
#![cfg(feature = "redis")]

mod redis_support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::time::Duration;

use procpool::{pool_task, BrokerReason, Error, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// Only in this build.
#[pool_task(name = "t/only-here")]
fn only_here() -> u8 {
    1
}

#[test]
fn a_caller_of_another_build_never_reaches_the_nodes() {
    let server = RedisServer::start();
    let node = NodeProc::env(&server, 1);
    let node_keys = server.key(":members").unwrap();
    // (node_wait leaves the checks below time on a loaded machine.)
    let pool = Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(6))
        .build()
        .unwrap();
    let r = apply_async_square(&pool, 3);
    // One stream per build: the call waits in its own, untouched.
    let streams: Vec<String> = server
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(":tasks"))
        .collect();
    assert_eq!(streams.len(), 2, "one stream per build: {streams:?}");
    let node_build = node_keys.trim_end_matches(":members");
    let ours: Vec<&String> = streams
        .iter()
        .filter(|k| !k.starts_with(node_build))
        .collect();
    let begun = std::time::Instant::now();
    while server.int(&["XLEN", ours[0]]) != 1 {
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "the call never reached Redis"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.int(&["XLEN", &format!("{node_build}:tasks")]), 0);
    assert!(
        !r.wait_timeout(Duration::from_millis(1500)),
        "a node of another build ran it"
    );
    // With no node of its build, the call fails (typed) after node_wait,
    // naming the build that does serve the queue, and leaves Redis.
    match r.get() {
        Err(Error::Broker {
            reason: BrokerReason::NoNode,
            task,
            message,
        }) => {
            assert_eq!(task, "t/square");
            let other = node_build.rsplit(':').next().unwrap().trim_end_matches('}');
            assert!(message.contains(other), "{message} names {other}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.int(&["XLEN", ours[0]]), 0, "the call was removed");
    assert!(!node.name.is_empty());
    let _ = only_here();
}

#[test]
fn nodes_of_another_queue_are_never_named_whatever_the_queue_names_hold() {
    let server = RedisServer::start();
    // Another build's node on queue "images-big", and on "images:big":
    // neither serves a caller's queue "images*" (a glob to SCAN) or "images".
    let _glob_target = NodeProc::code(&server.url(), &[("queue", "images-big")], &[]);
    let _colon = NodeProc::code(&server.url(), &[("queue", "images:big")], &[]);
    for queue in ["images*", "images-?ig", "images"] {
        let pool = Pool::builder()
            .redis(&server.url())
            .queue(queue)
            .node_wait(Duration::from_secs(2))
            .build()
            .unwrap();
        match apply_square(&pool, 3) {
            Err(Error::Broker {
                reason: BrokerReason::NoNode,
                message,
                ..
            }) => assert!(
                message.contains("never ran") && !message.contains("other builds"),
                "queue {queue:?}: {message}"
            ),
            other => panic!("queue {queue:?}: {other:?}"),
        }
    }
}
