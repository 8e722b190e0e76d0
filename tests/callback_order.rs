//! Python's ordering guarantee: once `get`, `get_timeout`, `wait`,
//! `wait_timeout`, `ready`, `successful` or `.await` report a result, its
//! callbacks have returned. Callbacks still run on the pool's callback
//! thread (never a thread that talks to a worker), and a callback that calls
//! back into the pool (submits, waits on another result, even one whose own
//! callback is queued behind it, waits on its own result, joins or drops
//! the pool) does not deadlock.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task]
fn echo(x: u64) -> u64 {
    x
}

#[pool_task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[pool_task]
fn fail(x: u64) -> u64 {
    panic!("task {x} fails")
}

type Seen = Arc<Mutex<Vec<u64>>>;

fn seen() -> Seen {
    Arc::default()
}

fn has(seen: &Seen, x: u64) -> bool {
    seen.lock().unwrap().contains(&x)
}

/// Runs `body` on its own thread and fails if it does not finish within a
/// minute: a deadlock fails the test instead of hanging the suite.
fn within_a_minute(what: &str, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// The pattern "append in the callback, wait(), read the list", 200 times.
#[test]
fn wait_reports_a_result_only_after_its_callback_returned() {
    let pool = Pool::new(2).unwrap();
    let list = seen();
    for x in 0..200 {
        let l = list.clone();
        let r = apply_async_echo(&pool, x).callback(move |v| l.lock().unwrap().push(v));
        r.wait();
        assert!(has(&list, x), "wait() returned before callback {x} ran");
    }
}

#[test]
fn get_reports_a_failure_only_after_its_error_callback_returned() {
    let pool = Pool::new(2).unwrap();
    let list = seen();
    for x in 0..200 {
        let l = list.clone();
        let r = apply_async_fail(&pool, x).error_callback(move |e| {
            assert!(matches!(e, Error::Panic { .. }));
            l.lock().unwrap().push(x);
        });
        assert!(r.get().is_err());
        assert!(
            has(&list, x),
            "get() returned before error callback {x} ran"
        );
    }
}

#[test]
fn every_way_of_seeing_completion_comes_after_the_callbacks() {
    let pool = Pool::new(2).unwrap();
    let list = seen();
    let submit = |x: u64| {
        let (l, m) = (list.clone(), list.clone());
        apply_async_echo(&pool, x)
            .callback(move |v| l.lock().unwrap().push(v))
            .on_complete(move |_| m.lock().unwrap().push(x + 1000))
    };
    for x in 0..50 {
        let r = submit(x);
        while !r.ready() {
            std::thread::yield_now();
        }
        assert!(has(&list, x) && has(&list, x + 1000), "ready() {x}");

        let r = submit(x + 100);
        while r.successful().is_none() {
            std::thread::yield_now();
        }
        assert!(
            has(&list, x + 100) && has(&list, x + 1100),
            "successful() {x}"
        );

        let r = submit(x + 200);
        assert!(r.wait_timeout(Duration::from_secs(30)));
        assert!(has(&list, x + 200), "wait_timeout() {x}");

        let r = submit(x + 300);
        assert_eq!(r.get_timeout(Duration::from_secs(30)).unwrap(), x + 300);
        assert!(has(&list, x + 300), "get_timeout() {x}");

        let r = submit(x + 400);
        assert_eq!(futures::executor::block_on(r).unwrap(), x + 400);
        assert!(has(&list, x + 400), ".await {x}");
    }
}

/// A callback attached after the result arrived: from then on too, seeing
/// the result means the callback returned.
#[test]
fn a_callback_attached_after_arrival_has_returned_when_wait_returns() {
    let pool = Pool::new(1).unwrap();
    let list = seen();
    for x in 0..50 {
        let r = apply_async_echo(&pool, x);
        r.wait();
        let l = list.clone();
        let r = r.callback(move |v| {
            std::thread::sleep(Duration::from_millis(1));
            l.lock().unwrap().push(v)
        });
        r.wait();
        assert!(has(&list, x), "callback {x} attached late");
        assert_eq!(r.get().unwrap(), x);
    }
}

#[test]
fn callbacks_never_run_on_a_thread_that_talks_to_a_worker() {
    let pool = Pool::new(2).unwrap();
    let names = Arc::new(Mutex::new(Vec::new()));
    let results: Vec<_> = (0..20)
        .map(|x| {
            let names = names.clone();
            apply_async_echo(&pool, x).callback(move |_| {
                let name = std::thread::current().name().map(str::to_string);
                names.lock().unwrap().push(name);
            })
        })
        .collect();
    for r in results {
        r.wait();
    }
    let names = names.lock().unwrap();
    assert_eq!(names.len(), 20);
    assert!(
        names
            .iter()
            .all(|n| n.as_deref() == Some("procpool-callbacks")),
        "{names:?}"
    );
}

/// A callback that submits tasks and waits for them, through `apply` and
/// through `apply_async(..).get()` with a callback of its own.
#[test]
fn a_callback_may_submit_and_wait_for_other_tasks() {
    within_a_minute("submitting from a callback", || {
        let pool = Pool::new(2).unwrap();
        let list = seen();
        let (inner_pool, l) = (pool.clone(), list.clone());
        let r = apply_async_echo(&pool, 1).callback(move |v| {
            let direct = apply_echo(&inner_pool, v + 10).unwrap();
            let l2 = l.clone();
            let queued = apply_async_echo(&inner_pool, v + 20)
                .callback(move |w| l2.lock().unwrap().push(w))
                .get()
                .unwrap();
            assert!(
                has(&l, 21),
                "the inner callback ran before its get() returned"
            );
            l.lock().unwrap().extend([v, direct, queued]);
        });
        r.wait();
        let got = list.lock().unwrap().clone();
        assert_eq!(got, [21, 1, 11, 21]);
    });
}

/// Callback 1 waits on result 2, whose own callback is queued behind
/// callback 1 on the one callback thread: result 2's callback runs first
/// (on the waiting thread) rather than the two waiting on each other.
#[test]
fn a_callback_may_wait_on_a_result_whose_callback_is_queued_behind_it() {
    within_a_minute("waiting on a result queued behind", || {
        let pool = Pool::new(2).unwrap();
        let list = seen();
        let l2 = list.clone();
        let second = apply_async_nap(&pool, 100).callback(move |v| l2.lock().unwrap().push(v));
        let l1 = list.clone();
        let first = apply_async_nap(&pool, 0).callback(move |_| {
            // By now result 2 has arrived and its callback waits in line.
            std::thread::sleep(Duration::from_millis(400));
            assert_eq!(second.get().unwrap(), 100);
            assert!(
                has(&l1, 100),
                "result 2's callback ran before its get() returned"
            );
            l1.lock().unwrap().push(0);
        });
        first.wait();
        assert_eq!(*list.lock().unwrap(), [100, 0]);
    });
}

#[test]
fn a_callback_may_join_terminate_or_drop_its_pool() {
    within_a_minute("joining from a callback", || {
        let pool = Pool::new(1).unwrap();
        let handle = pool.clone();
        let r = apply_async_echo(&pool, 3).callback(move |_| {
            handle.close();
            handle.join();
        });
        r.wait();
        assert!(matches!(
            apply_echo(&pool, 0),
            Err(Error::PoolClosed { .. })
        ));
    });
    within_a_minute("terminating from a callback", || {
        let pool = Pool::new(1).unwrap();
        let handle = pool.clone();
        let long = apply_async_nap(&pool, 60_000);
        let r = apply_async_echo(&Pool::new(1).unwrap(), 3).callback(move |_| handle.terminate());
        r.wait();
        assert!(matches!(long.get(), Err(Error::Terminated { .. })));
    });
    within_a_minute("dropping the last handle in a callback", || {
        let pool = Pool::new(1).unwrap();
        let handle = pool.clone();
        let queued = apply_async_nap(&pool, 200);
        let r = apply_async_echo(&pool, 3).callback(move |_| drop(handle));
        drop(pool);
        r.wait();
        assert_eq!(queued.get().unwrap(), 200);
    });
}

/// `join()` returns only once every callback of its pool has run, even one
/// that another pool's callback thread ran while it waited on the result
/// (it runs the callbacks of a result it waits on): it used to return while
/// that callback still ran there.
#[test]
fn join_waits_for_a_callback_another_pools_callback_thread_runs() {
    let pool_a = Pool::new(1).unwrap();
    let pool_b = Pool::new(1).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    // Keeps pool B's callback thread busy when rb arrives, so pool A's
    // callback thread, waiting on rb, runs rb's callback itself.
    let busy =
        apply_async_nap(&pool_b, 0).callback(|_| std::thread::sleep(Duration::from_millis(800)));
    busy.wait_timeout(Duration::from_millis(100));
    let flag = done.clone();
    let rb = apply_async_nap(&pool_b, 200).callback(move |_| {
        std::thread::sleep(Duration::from_millis(2000));
        flag.store(true, Ordering::SeqCst);
    });
    let ra = apply_async_nap(&pool_a, 0).callback(move |_| rb.wait());
    std::thread::sleep(Duration::from_millis(50));
    pool_b.close();
    pool_b.join();
    let ran = done.load(Ordering::SeqCst);
    ra.wait();
    assert!(ran, "pool_b.join() returned before rb's callback had run");
}

/// `join()`, `terminate()` and dropping the last handle wait for the pool's
/// callbacks also when called from a callback of *another* pool (only a
/// pool's own callback thread cannot wait for itself): they used to return
/// at once on any pool's callback thread, before the joined pool's
/// callbacks had run.
#[test]
fn joining_a_pool_from_another_pools_callback_waits_for_its_callbacks() {
    type End = Box<dyn FnOnce(Pool) + Send>;
    let ends: [(&str, End); 3] = [
        (
            "join",
            Box::new(|a: Pool| {
                a.close();
                a.join();
            }),
        ),
        ("terminate", Box::new(|a: Pool| a.terminate())),
        ("drop", Box::new(drop)),
    ];
    for (how, end) in ends {
        within_a_minute(how, move || {
            let pool_a = Pool::new(1).unwrap();
            let pool_b = Pool::new(1).unwrap();
            let list = seen();
            let into = list.clone();
            // Pool B's callback ends pool A only once A's callback has
            // begun (else `terminate` fails A's task, whose callback then
            // never runs).
            let (begun_tx, begun) = mpsc::channel();
            let ra = apply_async_echo(&pool_a, 3).callback(move |x| {
                begun_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                into.lock().unwrap().push(x);
            });
            begun.recv().unwrap();
            let (tx, rx) = mpsc::channel();
            let read = list.clone();
            let rb = apply_async_echo(&pool_b, 0).callback(move |_| {
                end(pool_a);
                tx.send(has(&read, 3)).unwrap();
            });
            let ran = rx.recv().unwrap();
            assert!(
                ran,
                "{how} in pool B's callback returned before pool A's callback ran"
            );
            rb.wait();
            assert_eq!(ra.get().unwrap(), 3);
        });
    }
}

/// A callback thread that runs another pool's callbacks (it waits on their
/// result) and joins that pool from one of them does not wait for itself.
#[test]
fn a_callback_run_by_another_pools_thread_may_join_its_pool() {
    within_a_minute("joining from a helped callback", || {
        let pool_a = Pool::new(1).unwrap();
        let pool_b = Pool::new(1).unwrap();
        // Keeps pool A's callback thread busy when ra arrives, so pool B's
        // callback thread, waiting on ra, runs ra's callback itself.
        let busy = apply_async_nap(&pool_a, 0)
            .callback(|_| std::thread::sleep(Duration::from_millis(800)));
        busy.wait_timeout(Duration::from_millis(100));
        let handle = pool_a.clone();
        let list = seen();
        let into = list.clone();
        let ra = apply_async_nap(&pool_a, 200).callback(move |x| {
            handle.close();
            handle.join();
            into.lock().unwrap().push(x);
        });
        let rb = apply_async_echo(&pool_b, 0).callback(move |_| ra.wait());
        rb.wait();
        assert!(has(&list, 200));
        busy.get().unwrap();
        assert!(matches!(
            apply_echo(&pool_a, 0),
            Err(Error::PoolClosed { .. })
        ));
    });
}

/// A slot a callback finds its own result in (put there once attached).
type Own = Arc<Mutex<Option<procpool::AsyncResult<u64>>>>;

/// A callback that waits on its own result (reached through a slot, as a
/// callback that logs "its" result from a table of pending ones does) is
/// given the outcome, which has arrived: it used to wait for itself, since
/// the result completes only once its callbacks returned, which blocked the
/// pool's callback thread for good (no later callback ran, and the pool's
/// drop never returned). Every way of waiting: `get`, `get_timeout`,
/// `wait`, `wait_timeout`, `.await`; and a callback of result A waiting on
/// B, whose callback (run on the same thread) waits on A.
#[test]
fn a_callback_waiting_on_its_own_result_gets_the_outcome() {
    for how in ["get", "get_timeout", "wait", "wait_timeout", "await"] {
        within_a_minute(how, move || {
            let pool = Pool::new(1).unwrap();
            let own: Own = Arc::default();
            let (tx, rx) = mpsc::channel();
            let slot = own.clone();
            let r = apply_async_echo(&pool, 7).on_complete(move |first| {
                assert_eq!(first.unwrap(), 7);
                // Attached before the slot is filled: wait for it.
                let mut r = loop {
                    if let Some(r) = slot.lock().unwrap().take() {
                        break r;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                let seen = match how {
                    "get" => r.get().unwrap(),
                    "get_timeout" => r.get_timeout(Duration::from_secs(60)).unwrap(),
                    "wait" => {
                        r.wait();
                        r.get().unwrap()
                    }
                    "wait_timeout" => {
                        assert!(r.wait_timeout(Duration::from_secs(60)));
                        r.get().unwrap()
                    }
                    _ => futures::executor::block_on(&mut r).unwrap(),
                };
                tx.send(seen).unwrap();
            });
            *own.lock().unwrap() = Some(r);
            assert_eq!(rx.recv().unwrap(), 7, "{how}");
            // The callback thread serves on: a later callback runs, and the
            // pool's drop (which waits for its callbacks) returns.
            let list = seen();
            let into = list.clone();
            apply_async_echo(&pool, 8)
                .callback(move |x| into.lock().unwrap().push(x))
                .wait();
            assert!(has(&list, 8), "{how}");
            drop(pool);
        });
    }
    within_a_minute("waiting on each other", || {
        let pool = Pool::new(2).unwrap();
        let own: Own = Arc::default();
        let slot = own.clone();
        let b = apply_async_nap(&pool, 300).callback(move |_| {
            let a = slot.lock().unwrap().take().expect("A is in the slot");
            assert_eq!(a.get().unwrap(), 0);
        });
        let a = apply_async_nap(&pool, 0).callback(move |_| {
            assert_eq!(b.get().unwrap(), 300);
        });
        *own.lock().unwrap() = Some(a);
        std::thread::sleep(Duration::from_millis(1000));
        assert!(
            own.lock().unwrap().is_none(),
            "B's callback took A from the slot"
        );
        drop(pool);
    });
}

/// Submits `echo(left)` with a callback that, unless `left` is 0, submits
/// the next link the same way and waits for it, by `get` or by `.await`
/// (on a minimal executor): each link's callback waits on the next one's
/// result, whose callback waits in line behind it.
fn link(pool: Pool, left: u64, by_await: bool, ran: Arc<Mutex<u64>>) -> procpool::AsyncResult<u64> {
    let handle = pool.clone();
    apply_async_echo(&pool, left).callback(move |v| {
        *ran.lock().unwrap() += 1;
        if v > 0 {
            let next = link(handle, v - 1, by_await, ran);
            let got = if by_await {
                support::block_on(next)
            } else {
                next.get()
            };
            assert_eq!(got.unwrap(), v - 1);
        }
    })
}

/// A chain of tasks, each submitted and waited for by the previous one's
/// callback, nests one run of callbacks per link on the callback thread:
/// 5,000 links overflowed its stack and aborted the whole program (after
/// about a thousand in a debug build).
#[test]
fn a_long_chain_of_callbacks_each_waiting_on_the_next_completes() {
    for by_await in [false, true] {
        within_a_minute("a chain of waiting callbacks", move || {
            let pool = Pool::new(2).unwrap();
            let ran = Arc::new(Mutex::new(0));
            let first = link(pool.clone(), 5_000, by_await, ran.clone());
            assert_eq!(first.get().unwrap(), 5_000);
            assert_eq!(*ran.lock().unwrap(), 5_001, "by_await={by_await}");
        });
    }
}
