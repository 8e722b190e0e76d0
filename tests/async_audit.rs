//! An async user's first steps with procpool, with real worker processes:
//! `AsyncResult` awaited across tokio's threads, raced in `select!`, under
//! `timeout`, dropped mid-wait, cancelled, terminated, its worker killed,
//! thousands at once, beside callbacks. Each test runs under a watchdog,
//! so a hang fails it instead of blocking the run.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use procpool::{pool_task, AsyncResult, CancelOutcome, Error, Pool};

procpool::enable_test_support!();

mod support;

#[allow(dead_code)] // not every helper is used here
#[path = "helpers/gate.rs"]
mod gate;
use gate::{apply_async_gated, gate_path, map_async_gated, open};

/// Writes this worker's pid to `marker`, then waits (a minute at most) for
/// the file `gate`; returns the pid.
#[pool_task]
fn held(marker: String, gate: String) -> u32 {
    std::fs::write(&marker, std::process::id().to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&gate).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::process::id()
}

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn fail(message: String) -> u8 {
    panic!("{message}")
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A marker file's path for test `name` (removed first and when dropped).
fn marker(name: &str) -> support::Scratch {
    support::Scratch::temp(&format!("async-audit-{name}"))
}

/// The pid `held` wrote to `marker`, once it runs.
fn running_pid(marker: &Path) -> u32 {
    let mut pid = 0;
    support::wait_for(Duration::from_secs(30), "the held task to start", || {
        pid = std::fs::read_to_string(marker)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

fn path_string(path: &Path) -> String {
    path.display().to_string()
}

/// A waker that counts its wakes; its `Arc`'s count tells whether a
/// result still holds it.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn pool_results_and_the_futures_an_async_user_spawns_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    fn send_static<T: Send + 'static>(_: &T) {}
    let pool = Arc::new(Pool::new(1).unwrap());
    send_sync(&pool);
    let r: AsyncResult<Vec<u64>> = map_async_square(&pool, 0..2u64);
    send_sync(&r);
    send_sync(&r.cancel_handle());
    assert_eq!(r.get().unwrap(), vec![0, 1]);
    // What `tokio::spawn` takes: an `async move` block that owns a shared
    // pool and awaits across its calls.
    let task = {
        let pool = pool.clone();
        async move {
            let a = apply_async_square(&pool, 3).await?;
            let b = apply_async_square(&pool, 4).await?;
            Ok::<_, Error>(a + b)
        }
    };
    send_static(&task);
    let rt = multi_thread();
    assert_eq!(rt.block_on(rt.spawn(task)).unwrap().unwrap(), 25);
}

#[test]
fn awaits_move_between_threads_and_survive_select_losses_and_timeouts() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Arc::new(Pool::new(2).unwrap());
        let (gate_a, gate_b) = (gate_path("select-a"), gate_path("select-b"));
        let mut a = apply_async_gated(&pool, gate_a.to_string());
        let mut b = apply_async_gated(&pool, gate_b.to_string());
        let rt = multi_thread();
        // Both pending: the timer wins, and both results are polled again
        // later, from other tasks (so other threads and new wakers).
        let (a, b) = rt.block_on(async move {
            tokio::select! {
                r = &mut a => panic!("a finished first: {r:?}"),
                r = &mut b => panic!("b finished first: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            // `timeout` around an await, then the same result again.
            assert!(tokio::time::timeout(Duration::from_millis(20), &mut a)
                .await
                .is_err());
            (a, b)
        });
        let waiting = rt.spawn(async move {
            let mut a = a;
            let mut b = b;
            tokio::task::yield_now().await;
            let first = tokio::select! {
                r = &mut a => ("a", r.unwrap()),
                r = &mut b => ("b", r.unwrap()),
            };
            (first, a, b)
        });
        std::thread::sleep(Duration::from_millis(50));
        open(&gate_a);
        let ((first, pid), a, b) = rt.block_on(waiting).unwrap();
        assert_eq!(first, "a");
        assert_ne!(pid, std::process::id());
        // The winner awaited again, then `get`: the same value.
        let mut a = a;
        assert_eq!(rt.block_on(async { (&mut a).await }).unwrap(), pid);
        assert_eq!(a.get().unwrap(), pid);
        // The loser, owned by a new task on another thread.
        let loser = rt.spawn(b);
        open(&gate_b);
        assert_ne!(rt.block_on(loser).unwrap().unwrap(), pid);
        // A loser dropped outright: the pool serves on, and joins.
        let gate_c = gate_path("select-c");
        rt.block_on(async {
            tokio::select! {
                r = apply_async_gated(&pool, gate_c.to_string()) => panic!("finished: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            assert_eq!(apply_async_square(&pool, 9).await.unwrap(), 81);
        });
        open(&gate_c);
        drop(rt);
        pool.join();
    });
}

#[test]
fn a_future_dropped_mid_wait_neither_cancels_nor_keeps_its_waker_nor_blocks() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let mark = marker("dropped");
        let gate = gate_path("dropped");
        let mut r = apply_async_held(&pool, path_string(&mark), gate.to_string());
        let pid = running_pid(&mark);
        let waker_arc = Arc::new(Counting::default());
        let waker = Waker::from(waker_arc.clone());
        assert!(Pin::new(&mut r)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        drop(r); // mid-wait: the task runs on
        let after = apply_async_square(&pool, 5);
        open(&gate);
        assert_eq!(after.get().unwrap(), 25, "the worker moved on");
        assert!(support::alive(pid), "not cancelled: its worker lives");
        // Woken once on completion, and not held afterwards.
        support::wait_for(Duration::from_secs(10), "the waker to be let go", || {
            Arc::strong_count(&waker_arc) == 1
        });
        assert_eq!(waker_arc.0.load(Ordering::SeqCst), 1);
        // A tokio task awaiting a result, aborted mid-wait: the same.
        let rt = current_thread();
        let mark = marker("aborted");
        let gate = gate_path("aborted");
        let r = apply_async_held(&pool, path_string(&mark), gate.to_string());
        let handle = rt.spawn(r);
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        let pid = running_pid(&mark);
        handle.abort();
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
        open(&gate);
        assert!(support::alive(pid));
        drop(rt);
        pool.join(); // returns: nothing waits for the dropped future
    });
}

#[test]
fn a_runtime_shut_down_with_a_result_pending_leaves_the_pool_working() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let gate = gate_path("shutdown");
        let rt = multi_thread();
        let handle = rt.spawn(apply_async_gated(&pool, gate.to_string()));
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
        drop(handle);
        drop(rt); // the awaiting task's waker is now the dead runtime's
        open(&gate); // and is woken here, on the pool's thread
        assert_eq!(apply_async_square(&pool, 6).get().unwrap(), 36);
        pool.join();
    });
}

#[test]
fn cancel_and_terminate_wake_the_tasks_that_await_with_typed_errors() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Arc::new(Pool::new(1).unwrap());
        let rt = multi_thread();
        // `select!` in the awaiting task between its result and a signal
        // to cancel it (an `AsyncResult` is not shared: its owner cancels).
        let mark = marker("cancel");
        let gate = gate_path("cancel");
        let r = apply_async_held(&pool, path_string(&mark), gate.to_string());
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let awaiting = rt.spawn(async move {
            let mut r = r;
            tokio::select! {
                out = &mut r => panic!("finished: {out:?}"),
                _ = rx => {}
            }
            let outcome = r.cancel();
            (outcome, r.await)
        });
        running_pid(&mark);
        tx.send(()).unwrap();
        let (outcome, out) = rt.block_on(awaiting).unwrap();
        assert_eq!(outcome, CancelOutcome::Stopped);
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");
        // From another task, through a handle, while a spawned task
        // awaits the result (aborting that task would only drop it).
        let mark = marker("handle");
        let gate = gate_path("handle");
        let r = apply_async_held(&pool, path_string(&mark), gate.to_string());
        let handle = r.cancel_handle();
        let awaiting = rt.spawn(r);
        let pid = running_pid(&mark);
        let canceller = rt.spawn(async move { handle.cancel() });
        assert_eq!(rt.block_on(canceller).unwrap(), CancelOutcome::Stopped);
        let out = rt.block_on(awaiting).unwrap();
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");
        support::wait_for(Duration::from_secs(10), "the stopped worker to go", || {
            !support::alive(pid)
        });
        // The awaiting task aborted (the result dropped): the handle still
        // reaches the running call, and stops it.
        let mark = marker("handle-aborted");
        let gate = gate_path("handle-aborted");
        let r = apply_async_held(&pool, path_string(&mark), gate.to_string());
        let handle = r.cancel_handle();
        let awaiting = rt.spawn(r);
        let pid = running_pid(&mark);
        awaiting.abort();
        assert!(rt.block_on(awaiting).unwrap_err().is_cancelled());
        assert_eq!(handle.cancel(), CancelOutcome::Stopped);
        support::wait_for(Duration::from_secs(10), "the stopped worker to go", || {
            !support::alive(pid)
        });
        // A whole `map_async`, queued behind a running call.
        let mark = marker("handle-map");
        let gate = gate_path("handle-map");
        let running = apply_async_held(&pool, path_string(&mark), gate.to_string());
        running_pid(&mark);
        let map = map_async_square(&pool, 0..100u64);
        let handle = map.cancel_handle();
        let awaiting = rt.spawn(map);
        assert_eq!(handle.clone().cancel(), CancelOutcome::NotStarted);
        let out = rt.block_on(awaiting).unwrap();
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");
        // The result consumed, its task settled: nothing left to cancel.
        assert_eq!(handle.cancel(), CancelOutcome::Finished);
        open(&gate);
        assert!(rt.block_on(running).is_ok());
        // Terminate, from another thread, while several tasks await.
        let gate = gate_path("terminate");
        let awaiting: Vec<_> = (0..4)
            .map(|_| rt.spawn(apply_async_gated(&pool, gate.to_string())))
            .collect();
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        let terminator = pool.clone();
        rt.block_on(rt.spawn_blocking(move || terminator.terminate()))
            .unwrap();
        for handle in awaiting {
            let out = rt.block_on(handle).unwrap();
            assert!(matches!(out, Err(Error::Terminated { .. })), "{out:?}");
        }
    });
}

#[test]
fn a_pool_dropped_while_tasks_await_lets_them_finish() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = multi_thread();
        let gate = gate_path("drop-pool");
        let awaiting: Vec<_> = (0..3)
            .map(|_| rt.spawn(apply_async_gated(&pool, gate.to_string())))
            .collect();
        let opener = std::thread::spawn({
            let gate = gate.to_string();
            move || {
                std::thread::sleep(Duration::from_millis(100));
                open(&gate);
            }
        });
        // Drop joins (Python's `with Pool()` would terminate; ours waits):
        // off the runtime's threads, as a blocking call must be.
        rt.block_on(rt.spawn_blocking(move || drop(pool))).unwrap();
        opener.join().unwrap();
        for handle in awaiting {
            assert!(rt.block_on(handle).unwrap().is_ok());
        }
    });
}

#[test]
fn a_worker_killed_while_awaited_fails_the_await_with_worker_died() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = current_thread();
        let mark = marker("killed");
        let gate = gate_path("killed");
        let awaiting = rt.spawn(apply_async_held(
            &pool,
            path_string(&mark),
            gate.to_string(),
        ));
        let pid = running_pid(&mark);
        // SAFETY: `pid` is this test's worker, alive (it wrote its marker
        // and waits for the gate).
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
        match rt.block_on(awaiting).unwrap() {
            Err(Error::WorkerDied { pid: died, .. }) => assert_eq!(died, pid),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        assert_eq!(rt.block_on(apply_async_square(&pool, 7)).unwrap(), 49);
    });
}

#[test]
fn five_thousand_awaits_on_one_executor_thread_beside_its_timers() {
    support::within(Duration::from_secs(120), "the test", || {
        let pool = Pool::new(2).unwrap();
        let rt = current_thread();
        let gate = gate_path("many");
        let gated = apply_async_gated(&pool, gate.to_string());
        let out = rt.block_on(async {
            // Opened by a timer on the same thread: only if awaiting the
            // results leaves the thread free does the gated task end.
            let opener = tokio::spawn({
                let gate = gate.to_string();
                async move {
                    for _ in 0..5 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    open(&gate);
                }
            });
            let all =
                futures::future::join_all((0..5000u64).map(|x| apply_async_square(&pool, x))).await;
            assert_ne!(gated.await.unwrap(), std::process::id());
            opener.await.unwrap();
            all
        });
        for (x, r) in out.into_iter().enumerate() {
            assert_eq!(r.unwrap(), (x * x) as u64);
        }
    });
}

#[test]
fn await_returns_only_once_callbacks_have_returned() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = multi_thread();
        let called = Arc::new(AtomicBool::new(false));
        let flag = called.clone();
        let r = apply_async_square(&pool, 3).callback(move |v| {
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(v, 9);
            flag.store(true, Ordering::SeqCst);
        });
        assert_eq!(rt.block_on(r).unwrap(), 9);
        assert!(
            called.load(Ordering::SeqCst),
            "awaited before its callback returned"
        );
        let (tx, rx) = mpsc::channel();
        let r = apply_async_fail(&pool, "boom".into()).error_callback(move |e| {
            std::thread::sleep(Duration::from_millis(100));
            tx.send(e.kind()).unwrap();
        });
        assert!(matches!(rt.block_on(r), Err(Error::Panic { .. })));
        assert_eq!(rx.try_recv().unwrap(), procpool::ErrorKind::Panic);
    });
}

#[test]
fn a_callback_may_block_on_another_awaitable_result_and_one_attached_late_is_awaited() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = multi_thread();
        // A callback (on the callback thread) that blocks on a result whose
        // own callback waits in line behind it on that thread.
        let gate = gate_path("nested");
        let b_called = Arc::new(AtomicBool::new(false));
        let flag = b_called.clone();
        let b = apply_async_gated(&pool, gate.to_string())
            .callback(move |_| flag.store(true, Ordering::SeqCst));
        let (tx, rx) = mpsc::channel();
        let a = apply_async_square(&pool, 2).callback(move |_| {
            tx.send(futures::executor::block_on(b).is_ok()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        open(&gate);
        assert_eq!(rt.block_on(a).unwrap(), 4);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        assert!(b_called.load(Ordering::SeqCst));
        // A callback attached after a `select!` loss: the next await
        // returns once it has returned.
        let gate = gate_path("late-callback");
        let mut r = apply_async_gated(&pool, gate.to_string());
        rt.block_on(async {
            tokio::select! {
                out = &mut r => panic!("finished: {out:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        });
        let called = Arc::new(AtomicBool::new(false));
        let flag = called.clone();
        let r = r.callback(move |_| {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::SeqCst)
        });
        let awaiting = rt.spawn(r);
        open(&gate);
        assert!(rt.block_on(awaiting).unwrap().is_ok());
        assert!(called.load(Ordering::SeqCst));
    });
}

#[test]
fn close_and_cancel_and_an_inline_terminate_wake_awaited_calls_and_maps() {
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = multi_thread();
        let mark = marker("close-and-cancel");
        let gate = gate_path("close-and-cancel");
        let running = rt.spawn(apply_async_held(
            &pool,
            path_string(&mark),
            gate.to_string(),
        ));
        running_pid(&mark);
        let queued = rt.spawn(apply_async_square(&pool, 3));
        let map = rt.spawn(map_async_square(&pool, 0..10));
        std::thread::sleep(Duration::from_millis(20));
        assert!(pool.close_and_cancel() >= 2);
        let out = rt.block_on(queued).unwrap();
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");
        let out = rt.block_on(map).unwrap();
        assert!(matches!(out, Err(Error::Cancelled { .. })), "{out:?}");
        open(&gate);
        assert!(rt.block_on(running).unwrap().is_ok());
    });
    support::within(Duration::from_secs(60), "the test", || {
        let pool = Pool::new(1).unwrap();
        let rt = current_thread();
        let gate = gate_path("terminate-map");
        let map = rt.spawn(map_async_gated(&pool, vec![gate.to_string(); 4]));
        let one = rt.spawn(apply_async_gated(&pool, gate.to_string()));
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
        // On the runtime's only thread: it holds that thread meanwhile,
        // but nothing it waits for needs it.
        rt.block_on(async { pool.terminate() });
        let out = rt.block_on(map).unwrap();
        assert!(matches!(out, Err(Error::Terminated { .. })), "{out:?}");
        let out = rt.block_on(one).unwrap();
        assert!(matches!(out, Err(Error::Terminated { .. })), "{out:?}");
    });
}
