//! Every method of `AsyncResult`, and callbacks.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::Duration;

use procpool::{pool_task, Error, Pool};
use serde::{Deserialize, Deserializer, Serialize};

procpool::enable_test_support!();

#[path = "helpers/gate.rs"]
mod gate;
use gate::{apply_async_gated, gate_path, open};

#[pool_task]
fn nap_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[pool_task]
fn fail(message: String) -> u8 {
    panic!("{message}")
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn ready_wait_and_successful_follow_the_task() {
    let pool = Pool::new(1).unwrap();
    let gate = gate_path("ready");
    let r = apply_async_gated(&pool, gate.clone());
    assert!(!r.ready());
    assert_eq!(r.successful(), None);
    assert!(!r.wait_timeout(Duration::from_millis(10)));
    open(&gate);
    r.wait();
    gate::remove(&gate);
    assert!(r.ready());
    assert_eq!(r.successful(), Some(true));
    assert!(r.wait_timeout(Duration::ZERO));
    assert_ne!(r.get().unwrap(), std::process::id());

    let failed = apply_async_fail(&pool, "no".into());
    assert!(failed.wait_timeout(LONG));
    assert_eq!(failed.successful(), Some(false));
    assert!(matches!(failed.get(), Err(Error::Panic { .. })));
}

#[test]
fn get_timeout_does_not_lose_the_result() {
    let pool = Pool::new(1).unwrap();
    let gate = gate_path("get-timeout");
    let r = apply_async_gated(&pool, gate.clone());
    match r.get_timeout(Duration::from_millis(20)) {
        Err(Error::WaitTimeout { task, waited }) => {
            assert_eq!(task, "async_result::gate::gated");
            assert_eq!(waited, Duration::from_millis(20));
        }
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    open(&gate);
    let pid = r.get_timeout(LONG).unwrap();
    gate::remove(&gate);
    assert_ne!(pid, std::process::id());
    // Still there: collecting twice returns the same value.
    assert_eq!(r.get().unwrap(), pid);
}

#[test]
fn callbacks_run_when_the_result_arrives() {
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let (etx, erx) = mpsc::channel();
    let ok = apply_async_nap_then_pid(&pool, 100)
        .callback({
            let tx = tx.clone();
            move |pid| tx.send(pid).unwrap()
        })
        .error_callback(|e| panic!("unexpected error {e}"));
    let bad = apply_async_fail(&pool, "kaput".into())
        .callback(|_| panic!("no value expected"))
        .error_callback(move |e| etx.send(e).unwrap());
    let pid = rx.recv_timeout(LONG).unwrap();
    assert_ne!(pid, std::process::id());
    match erx.recv_timeout(LONG).unwrap() {
        Error::Panic { message, .. } => assert_eq!(message, "kaput"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // The results remain collectable after their callbacks ran.
    assert_eq!(ok.get().unwrap(), pid);
    assert!(bad.get().is_err());
}

#[test]
fn callbacks_attached_after_arrival_still_run() {
    let pool = Pool::new(1).unwrap();
    let r = apply_async_nap_then_pid(&pool, 0);
    r.wait();
    let (tx, rx) = mpsc::channel();
    let r = r.on_complete(move |res| tx.send(res).unwrap());
    let pid = rx.recv_timeout(LONG).unwrap().unwrap();
    assert_eq!(r.get().unwrap(), pid);
}

#[test]
fn callbacks_run_off_the_callers_thread() {
    let pool = Pool::new(1).unwrap();
    let (tx, rx) = mpsc::channel();
    let r = apply_async_nap_then_pid(&pool, 0).callback(move |_| {
        tx.send(std::thread::current().name().map(str::to_string))
            .unwrap()
    });
    assert_eq!(
        rx.recv_timeout(LONG).unwrap().as_deref(),
        Some("procpool-callbacks")
    );
    drop(r);
}

#[test]
fn a_panicking_callback_does_not_break_the_pool() {
    let pool = Pool::new(1).unwrap();
    let r = apply_async_nap_then_pid(&pool, 0).callback(|_| panic!("callback bug"));
    r.wait();
    let (tx, rx) = mpsc::channel();
    let _r2 = apply_async_nap_then_pid(&pool, 0).callback(move |pid| tx.send(pid).unwrap());
    assert!(rx.recv_timeout(LONG).is_ok());
}

#[test]
fn dropping_a_result_never_blocks_the_worker() {
    let pool = Pool::new(1).unwrap();
    for _ in 0..20 {
        drop(apply_async_nap_then_pid(&pool, 1));
    }
    // The worker got through the dropped ones and serves the next.
    let pid = apply_nap_then_pid(&pool, 0).unwrap();
    assert_ne!(pid, std::process::id());
}

#[test]
fn join_waits_for_pending_callbacks() {
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let results: Vec<_> = (0..8)
        .map(|_| {
            let tx = tx.clone();
            apply_async_nap_then_pid(&pool, 20).callback(move |pid| tx.send(pid).unwrap())
        })
        .collect();
    drop(tx);
    pool.close();
    pool.join();
    assert_eq!(
        rx.try_iter().count(),
        8,
        "every callback ran before join returned"
    );
    drop(results);
}

/// Waits for `rx` with a watchdog, so a deadlock fails the test instead of hanging it.
fn within_a_minute<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: deadlocked (no answer within 60 s)"))
}

#[test]
fn a_callback_may_join_its_pool() {
    let pool = Pool::new(1).unwrap();
    let handle = pool.with_task_timeout(None);
    let (tx, rx) = mpsc::channel();
    let r = apply_async_nap_then_pid(&pool, 50).callback(move |pid| {
        handle.join();
        tx.send(pid).unwrap();
    });
    let pid = within_a_minute(&rx, "join inside a callback");
    assert_ne!(pid, std::process::id());
    assert_eq!(r.get().unwrap(), pid);
    assert!(matches!(
        apply_nap_then_pid(&pool, 0),
        Err(Error::PoolClosed { .. })
    ));
}

#[test]
fn a_callback_may_drop_the_last_pool_handle() {
    let pool = Pool::new(1).unwrap();
    let handle = pool.with_task_timeout(None);
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r = apply_async_nap_then_pid(&pool, 0).callback(move |pid| {
        // Wait until the caller dropped its handle: this one is the last.
        go_rx.recv().unwrap();
        drop(handle);
        tx.send(pid).unwrap();
    });
    drop(pool);
    go_tx.send(()).unwrap();
    let pid = within_a_minute(&rx, "dropping the last handle inside a callback");
    assert_ne!(pid, std::process::id());
    assert_eq!(r.get().unwrap(), pid);
}

/// A callback that panics while it holds the last pool handle drops the
/// pool as any callback does (closed and joined): its panic is caught and
/// logged and the pool carries on (README), so the tasks still queued or
/// running finish and their results hold their values. (The pool was
/// terminated, as if dropped by a panic that ends the program: the other
/// task's result was `Terminated`.)
#[test]
fn a_callback_that_panics_holding_the_last_handle_lets_the_work_finish() {
    let pool = Pool::new(1).unwrap();
    let handle = pool.with_task_timeout(None);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r = apply_async_nap_then_pid(&pool, 0).callback(move |_| {
        let _handle = handle;
        // Wait until the caller dropped its handle: this one is the last.
        go_rx.recv().unwrap();
        panic!("a callback fails");
    });
    let other = apply_async_nap_then_pid(&pool, 200);
    drop(pool);
    go_tx.send(()).unwrap();
    assert!(r.get().is_ok());
    match other.get() {
        Ok(pid) => assert_ne!(pid, std::process::id()),
        Err(e) => panic!("the queued task did not finish: {e:?}"),
    }
}

/// How many `Counted` values this process decoded (workers only encode
/// them: only the caller decodes).
static COUNTED_DECODES: AtomicUsize = AtomicUsize::new(0);

/// A result that counts its decodes.
#[derive(Serialize, Debug)]
struct Counted(Vec<u64>);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        COUNTED_DECODES.fetch_add(1, SeqCst);
        Vec::<u64>::deserialize(d).map(Counted)
    }
}

#[pool_task]
fn counted(n: u64) -> Counted {
    Counted((0..n).collect())
}

/// `successful()` decodes the outcome to tell whether `get()` would return
/// a value, but only once: asked again (a loop polling it, threads at
/// once) it answers what it found, instead of decoding the whole result
/// (and running its `Deserialize`) every time.
#[test]
fn successful_decodes_a_result_once_however_often_it_is_asked() {
    let pool = Pool::new(1).unwrap();
    let decodes = || COUNTED_DECODES.load(SeqCst);

    let r = apply_async_counted(&pool, 100_000);
    r.wait();
    let before = decodes();
    for _ in 0..1000 {
        assert_eq!(r.successful(), Some(true));
    }
    assert_eq!(decodes() - before, 1, "decodes for 1000 calls");
    assert_eq!(r.get().unwrap().0.len(), 100_000);

    // Threads asking at once: each decodes at most once.
    let r = apply_async_counted(&pool, 1000);
    r.wait();
    let before = decodes();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..250 {
                    assert_eq!(r.successful(), Some(true));
                }
            });
        }
    });
    assert!(decodes() - before <= 4, "{} decodes", decodes() - before);
    assert_eq!(r.get().unwrap().0.len(), 1000);

    // A map's result: each item decoded once, by the first call.
    let r = map_async_counted(&pool, [1, 2, 3]);
    r.wait();
    let before = decodes();
    for _ in 0..100 {
        assert_eq!(r.successful(), Some(true));
    }
    assert_eq!(decodes() - before, 3);
    let lens: Vec<usize> = r.get().unwrap().iter().map(|c| c.0.len()).collect();
    assert_eq!(lens, [1, 2, 3]);

    // A failed task needs no decode to tell.
    let failed = apply_async_fail(&pool, "no".into());
    failed.wait();
    for _ in 0..10 {
        assert_eq!(failed.successful(), Some(false));
    }
}
