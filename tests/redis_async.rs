//! An `AsyncResult` of a pool built on Redis, awaited in tokio (see
//! tests/async_audit.rs for a local pool): the awaiting task wakes with a
//! typed error on a cancel from another task, a node's loss and a
//! terminate. (A binary of its own: a node serves callers whose tasks are
//! its own, the helper's `tests/helpers/redis_tasks.rs`.)
#![cfg(feature = "redis")]

mod redis_support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::time::Duration;

use procpool::{CancelOutcome, Error, Pool};
use redis_support::{Held, NodeProc, RedisServer};

procpool::enable_test_support!();

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// Through Redis, with a real node: a cancel through a handle stops the
/// call on its node and wakes the task awaiting it with `Cancelled`; the
/// node killed while a call is awaited fails it with `NodeLost`; a
/// terminate wakes an awaiting task with `Terminated`.
#[test]
fn awaits_through_redis_wake_on_cancel_node_loss_and_terminate() {
    redis_support::require_redis();
    redis_support::within(Duration::from_secs(120), "the test", || {
        let server = RedisServer::start();
        let mut node = NodeProc::env(&server, 2);
        let pool = Pool::builder().redis(&server.url()).build().unwrap();
        let rt = multi_thread();
        let (_held, r) = Held::start(&pool);
        let handle = r.cancel_handle();
        let awaiting = rt.spawn(r);
        let canceller = rt.spawn(async move { handle.cancel() });
        assert_eq!(rt.block_on(canceller).unwrap(), CancelOutcome::Stopped);
        let out = rt.block_on(awaiting).unwrap();
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");

        let (_held, r) = Held::start(&pool);
        let awaiting = rt.spawn(r);
        node.kill9();
        let out = rt.block_on(awaiting).unwrap();
        assert!(matches!(out, Err(Error::NodeLost { .. })), "{out:?}");

        let _node = NodeProc::env(&server, 1);
        let (_held, r) = Held::start(&pool);
        let awaiting = rt.spawn(r);
        let shared = pool.clone();
        rt.block_on(rt.spawn_blocking(move || shared.terminate()))
            .unwrap();
        let out = rt.block_on(awaiting).unwrap();
        assert!(matches!(out, Err(Error::Terminated { .. })), "{out:?}");
    });
}
