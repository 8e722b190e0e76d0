//! `AsyncResult` as a `Future`: awaited in tokio and with `futures`, without
//! blocking the executor's thread.

use std::time::Duration;

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[path = "helpers/gate.rs"]
mod gate;
use gate::{apply_async_gated, gate_path, open};

#[pool_task]
fn double_pid(x: u64) -> (u64, u32) {
    (x * 2, std::process::id())
}

#[pool_task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[pool_task]
fn fail(message: String) -> u8 {
    panic!("{message}")
}

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn tokio_awaits_a_thousand_tasks_concurrently() {
    let pool = Pool::new(2).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let handles: Vec<_> = (0..1000u64)
            .map(|x| tokio::spawn(apply_async_double_pid(&pool, x)))
            .collect();
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.unwrap());
        }
        results
    });
    for (x, r) in results.into_iter().enumerate() {
        let (doubled, pid) = r.unwrap();
        assert_eq!(doubled, 2 * x as u64);
        assert_ne!(pid, std::process::id());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn awaiting_does_not_block_a_single_threaded_executor() {
    let pool = Pool::new(1).unwrap();
    // The task waits in the worker while a timer on the same executor thread
    // fires: the await left the thread free.
    let gate = gate_path("single-threaded");
    let slow = apply_async_gated(&pool, gate.clone());
    let timer = tokio::time::sleep(Duration::from_millis(10));
    tokio::pin!(slow);
    let timer_first = tokio::select! {
        biased;
        r = &mut slow => panic!("the task finished first: {r:?}"),
        () = timer => true,
    };
    assert!(timer_first);
    open(&gate);
    assert_ne!(slow.await.unwrap(), std::process::id());
    gate::remove(&gate);
}

#[tokio::test]
async fn errors_arrive_through_await() {
    let pool = Pool::new(1).unwrap();
    match apply_async_fail(&pool, "boom".into()).await {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "boom"),
        other => panic!("expected the panic, got {other:?}"),
    }
    pool.close();
    assert!(matches!(
        apply_async_nap(&pool, 1).await,
        Err(Error::PoolClosed { .. })
    ));
}

#[test]
fn join_all_collects_every_result() {
    let pool = Pool::new(2).unwrap();
    let futures: Vec<_> = (0..200u64)
        .map(|x| apply_async_double_pid(&pool, x))
        .collect();
    let results = futures::executor::block_on(futures::future::join_all(futures));
    for (x, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().0, 2 * x as u64);
    }
}

#[test]
fn map_async_and_by_name_results_can_be_awaited() {
    let pool = Pool::new(2).unwrap();
    let all = futures::executor::block_on(map_async_square(&pool, 0..100)).unwrap();
    assert_eq!(all, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
    let name = procpool::registry()
        .into_iter()
        .find(|t| t.name().ends_with("::square") && t.signature() == "fn(u64) -> u64")
        .map(|t| t.name().to_string())
        .unwrap();
    let r = pool.apply_async_by_name::<u64>(&name, &(7u64,));
    assert_eq!(futures::executor::block_on(r).unwrap(), 49);
}
