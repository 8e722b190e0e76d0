//! What a user coming from Python's `multiprocessing.Pool` (and
//! `concurrent.futures`) expects of the edges of the API, checked as a
//! user sees it: empty and one-item inputs, chunk sizes at both ends, an
//! iterator that ended, results and callbacks of failed, cancelled and
//! terminated tasks, and a pool used after `close` or `terminate`.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procpool::{pool_task, CancelOutcome, Error, ExitInfo, MapOptions, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

#[pool_task]
fn double(x: u64) -> u64 {
    2 * x
}

#[pool_task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[pool_task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[pool_task]
fn boom(x: u64) -> u64 {
    assert!(x != 3, "three is not allowed");
    x
}

#[pool_task]
fn die(x: u64) -> u64 {
    if x == 1 {
        // SAFETY-free in a test: the worker kills itself mid-task.
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(10));
    }
    x
}

#[pool_task]
fn slot() -> Option<usize> {
    procpool::worker_index()
}

/// Writes `marker` (unless it is empty), then sleeps `ms`: a task known to
/// be running once its marker exists. With a marker, the sleep ends early
/// once the file [`gate`]`(marker)` exists.
#[pool_task]
fn hold(marker: PathBuf, ms: u64) -> u64 {
    if marker.as_os_str().is_empty() {
        std::thread::sleep(Duration::from_millis(ms));
        return ms;
    }
    std::fs::write(&marker, b"").unwrap();
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end && !gate(&marker).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    ms
}

/// The file that ends the sleep of the [`hold`] call given `marker`.
fn gate(marker: &std::path::Path) -> PathBuf {
    marker.with_extension("gate")
}

/// A fresh marker path for [`hold`], named `name`, removed when the test
/// drops it.
fn marker(name: &str) -> support::Scratch {
    support::Scratch::new(
        support::quick_dir().join(format!("procpool-parity-{name}-{}", std::process::id())),
    )
}

/// Waits until the task holding `marker` runs.
fn started(marker: &std::path::Path) {
    support::wait_for(Duration::from_secs(30), "the task to start", || {
        marker.exists()
    });
}

/// Counts the calls of a callback.
fn counter() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let c = Arc::new(AtomicUsize::new(0));
    (c.clone(), c)
}

#[test]
fn empty_and_single_inputs_of_every_map_shape() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let none: Vec<u64> = Vec::new();
    assert_eq!(map_double(&pool, none.clone()).unwrap(), Vec::<u64>::new());
    assert_eq!(
        map_async_double(&pool, none.clone()).get().unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        starmap_add(&pool, Vec::<(u64, u64)>::new()).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        starmap_async_add(&pool, Vec::<(u64, u64)>::new())
            .get()
            .unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(imap_unordered_double(&pool, none.clone()).count(), 0);
    assert_eq!(map_double(&pool, [7]).unwrap(), [14]);
    assert_eq!(starmap_add(&pool, [(1, 2)]).unwrap(), [3]);
    let one: Vec<_> = imap_double(&pool, [7]).map(Result::unwrap).collect();
    assert_eq!(one, [14]);
    let one: Vec<_> = imap_unordered_double(&pool, [7])
        .map(Result::unwrap)
        .collect();
    assert_eq!(one, [14]);
}

#[test]
fn chunk_sizes_at_both_ends() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let huge = MapOptions::new().chunksize(usize::MAX);
    let want: Vec<u64> = (0..100).map(|x| 2 * x).collect();
    assert_eq!(map_double_with(&pool, 0..100, huge).unwrap(), want);
    assert_eq!(
        map_async_double_with(&pool, 0..100, huge).get().unwrap(),
        want
    );
    let got: Vec<_> = imap_double_with(&pool, 0..100, huge)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, want);
    let mut got: Vec<_> = imap_unordered_double_with(&pool, 0..100, huge)
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, want);
    // Unknown length (a filter) with a huge chunk size.
    let got: Vec<_> = imap_double_with(&pool, (0..100).filter(|_| true), huge)
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, want);
    // Zero: a typed error from every shape (Python raises ValueError).
    let zero = MapOptions::new().chunksize(0);
    assert!(matches!(
        map_double_with(&pool, 0..4, zero),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        map_async_double_with(&pool, 0..4, zero).get(),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        starmap_add_with(&pool, [(1, 2)], zero),
        Err(Error::Config { .. })
    ));
    let items: Vec<_> = imap_unordered_double_with(&pool, 0..4, zero).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(items[0], Err(Error::Config { .. })));
    // Zero over an empty input is still refused, as Python's check comes first.
    assert!(matches!(
        map_double_with(&pool, Vec::<u64>::new(), zero),
        Err(Error::Config { .. })
    ));
}

#[test]
fn imap_over_an_input_of_unknown_length_keeps_order_and_ends_for_good() {
    let _serial = serial();
    let pool = Pool::new(3).unwrap();
    let input = (0..200u64).filter(|x| x % 3 != 0);
    let want: Vec<u64> = input.clone().map(|x| 2 * x).collect();
    let mut it = imap_double_with(&pool, input.clone(), MapOptions::new().chunksize(7));
    let got: Vec<u64> = it.by_ref().map(Result::unwrap).collect();
    assert_eq!(got, want);
    // Exhausted: stays exhausted (Python's StopIteration again).
    assert!(it.next().is_none());
    assert!(it.next().is_none());
    assert!(it.next_timeout(Duration::from_millis(10)).is_none());
    let mut it = imap_unordered_double(&pool, input);
    let mut got: Vec<u64> = it.by_ref().map(Result::unwrap).collect();
    got.sort();
    assert_eq!(got, want);
    assert!(it.next().is_none());
    assert!(it.next_timeout(Duration::from_millis(10)).is_none());
}

#[test]
fn async_result_before_and_after_it_is_ready() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    // Pending until the gate opens, however slow the machine.
    let running = marker("before-ready");
    let open = support::Scratch::new(gate(&running));
    let r = apply_async_hold(&pool, running.to_path_buf(), 60_000);
    assert!(!r.ready());
    assert_eq!(
        r.successful(),
        None,
        "Python raises here; the README promises None"
    );
    assert!(!r.wait_timeout(Duration::ZERO));
    assert!(matches!(
        r.get_timeout(Duration::from_millis(1)),
        Err(Error::WaitTimeout { .. })
    ));
    std::fs::write(&*open, b"").unwrap();
    // A timed-out get loses nothing: a second, longer one succeeds, and so
    // does a third.
    assert_eq!(r.get_timeout(Duration::from_secs(30)).unwrap(), 60_000);
    assert_eq!(r.get_timeout(Duration::ZERO).unwrap(), 60_000);
    assert!(r.wait_timeout(Duration::ZERO));
    assert!(r.wait_timeout(Duration::MAX));
    assert_eq!(r.successful(), Some(true));
    assert_eq!(r.get_timeout(Duration::MAX).unwrap(), 60_000);
    assert_eq!(r.get().unwrap(), 60_000);
    // A timeout too far to reach waits as long as it takes, while pending too.
    let r = apply_async_nap(&pool, 100);
    assert!(r.wait_timeout(Duration::MAX));
    let r = apply_async_nap(&pool, 100);
    assert_eq!(r.get_timeout(Duration::MAX).unwrap(), 100);
    let mut lazy = imap_nap(&pool, [100]);
    assert_eq!(lazy.next_timeout(Duration::MAX).unwrap().unwrap(), 100);
    assert!(lazy.next_timeout(Duration::MAX).is_none());
}

#[test]
fn callbacks_run_exactly_once_each_for_success_failure_and_cancel() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    // Success: the callback once, the error callback never.
    let (ok, ok_seen) = counter();
    let (err, err_seen) = counter();
    let r = apply_async_double(&pool, 4)
        .callback(move |v| {
            assert_eq!(v, 8);
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .error_callback(move |_| {
            err.fetch_add(1, Ordering::SeqCst);
        });
    r.wait();
    assert_eq!(
        (
            ok_seen.load(Ordering::SeqCst),
            err_seen.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    assert_eq!(r.get().unwrap(), 8);
    // A panic: the error callback once, with the panic.
    let (ok, ok_seen) = counter();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let r = apply_async_boom(&pool, 3)
        .callback(move |_| {
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .error_callback(move |e| sink.lock().unwrap().push(e));
    r.wait();
    assert_eq!(ok_seen.load(Ordering::SeqCst), 0);
    {
        let errors = errors.lock().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(matches!(&errors[0], Error::Panic { .. }), "{errors:?}");
    }
    assert_eq!(r.successful(), Some(false));
    // A queued task cancelled: the error callback once, with `Cancelled`;
    // cancelling again calls nothing more.
    // Busy until the gate opens (a minute at most), however slow the
    // machine: a fixed 300 ms ended before the cancel on a stalled one, and
    // the call cancelled had run (`Finished`).
    let busy_marker = marker("busy");
    let open = support::Scratch::new(gate(&busy_marker));
    let busy = apply_async_hold(&pool, busy_marker.clone(), 60_000);
    started(&busy_marker);
    let (ok, ok_seen) = counter();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let r = apply_async_double(&pool, 1)
        .callback(move |_| {
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .error_callback(move |e| sink.lock().unwrap().push(e));
    // (Queued, or pipelined behind the busy task, which is stopped in its
    // turn.)
    let first = r.cancel();
    assert_ne!(first, CancelOutcome::Finished);
    assert_eq!(r.cancel(), first);
    r.wait();
    assert_eq!(r.successful(), Some(false));
    std::fs::write(&*open, b"").unwrap();
    busy.get().unwrap();
    pool.close();
    pool.join();
    assert_eq!(ok_seen.load(Ordering::SeqCst), 0);
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(&errors[0], Error::Cancelled { .. }), "{errors:?}");
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
}

#[test]
fn a_worker_killed_in_a_task_is_typed_and_the_pool_keeps_every_slot() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    match apply_die(&pool, 1) {
        Err(Error::WorkerDied { task, .. }) => assert_eq!(task, "parity_audit::die"),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(pool.processes(), 2);
    // Both slots still serve: two slow tasks at once run on two workers.
    let both: Vec<_> = (0..2).map(|_| apply_async_nap_pid(&pool, 300)).collect();
    let pids: Vec<u32> = both.into_iter().map(|r| r.get().unwrap()).collect();
    assert_ne!(pids[0], pids[1], "a slot was lost");
    let mut slots: Vec<_> = (0..20)
        .map(|_| apply_async_slot(&pool))
        .map(|r| r.get().unwrap().unwrap())
        .collect();
    slots.sort();
    slots.dedup();
    assert!(slots.iter().all(|&s| s < 2), "{slots:?}");
    // In a map: the chunk of the dead item fails, the map reports it.
    assert!(matches!(
        map_die_with(&pool, 0..4, MapOptions::new().chunksize(1)),
        Err(Error::WorkerDied { .. })
    ));
    assert_eq!(map_double(&pool, 0..4).unwrap(), [0, 2, 4, 6]);
}

#[test]
fn every_call_after_close_or_terminate_is_a_typed_error() {
    let _serial = serial();
    for terminate in [false, true] {
        let pool = Pool::new(1).unwrap();
        if terminate {
            pool.terminate();
        } else {
            pool.close();
        }
        let closed = |e: &Error| matches!(e, Error::PoolClosed { .. });
        assert!(closed(&apply_double(&pool, 1).unwrap_err()));
        assert!(closed(&apply_async_double(&pool, 1).get().unwrap_err()));
        assert!(closed(&map_double(&pool, 0..3).unwrap_err()));
        assert!(closed(&map_async_double(&pool, 0..3).get().unwrap_err()));
        assert!(closed(&starmap_add(&pool, [(1, 2)]).unwrap_err()));
        assert!(closed(
            &pool
                .apply_by_name::<u64>("parity_audit::double", &(1u64,))
                .unwrap_err()
        ));
        for items in [
            imap_double(&pool, 0..3).collect::<Vec<_>>(),
            imap_unordered_double(&pool, 0..3).collect::<Vec<_>>(),
        ] {
            assert_eq!(items.len(), 1, "{items:?}");
            assert!(closed(items[0].as_ref().unwrap_err()));
        }
        // Callbacks of a refused call: the error callback, once.
        let (err, err_seen) = counter();
        let r = apply_async_double(&pool, 1).error_callback(move |_| {
            err.fetch_add(1, Ordering::SeqCst);
        });
        r.wait();
        assert_eq!(err_seen.load(Ordering::SeqCst), 1);
        // Lifecycle calls repeat harmlessly, in any order.
        pool.close();
        pool.terminate();
        pool.join();
        pool.join();
        assert_eq!(pool.close_and_cancel(), 0);
    }
    assert_no_children();
}

#[test]
fn terminate_fails_pending_maps_and_imaps_without_a_hang() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (err, err_seen) = counter();
    let whole = map_async_nap_with(&pool, vec![60_000; 6], MapOptions::new().chunksize(1))
        .error_callback(move |e| {
            assert!(matches!(e, Error::Terminated { .. }), "{e:?}");
            err.fetch_add(1, Ordering::SeqCst);
        });
    let mut lazy = imap_nap_with(&pool, vec![60_000; 6], MapOptions::new().chunksize(1));
    assert!(lazy
        .next_timeout(Duration::from_millis(50))
        .is_some_and(|r| r.is_err()));
    let blocked = {
        let pool = pool.clone();
        std::thread::spawn(move || map_nap(&pool, vec![60_000; 4]))
    };
    std::thread::sleep(Duration::from_millis(200));
    let begun = Instant::now();
    pool.terminate();
    assert!(matches!(whole.get(), Err(Error::Terminated { .. })));
    // (PoolClosed if its thread came to it only after the terminate.)
    let outcome = blocked.join().unwrap();
    assert!(
        matches!(
            outcome,
            Err(Error::Terminated { .. } | Error::PoolClosed { .. })
        ),
        "{outcome:?}"
    );
    let rest: Vec<_> = lazy.collect();
    assert!(!rest.is_empty());
    assert!(rest.iter().all(|r| r.is_err()), "{rest:?}");
    // (Waiting for the tasks would take a minute: a loaded machine takes
    // seconds at most to kill and reap.)
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "terminate waited"
    );
    assert_eq!(err_seen.load(Ordering::SeqCst), 1);
    assert_no_children();
}

#[test]
fn a_handle_without_a_limit_overrides_the_pool_wide_one() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    assert!(matches!(
        apply_nap(&pool, 2_000),
        Err(Error::Timeout { .. })
    ));
    let patient = pool.with_task_timeout(None);
    assert_eq!(apply_nap(&patient, 400).unwrap(), 400);
    assert_eq!(map_nap(&patient, [300, 300]).unwrap(), [300, 300]);
    // A clone of a handle, dropped, closes nothing (asked without the
    // 150 ms limit, which a worker held off the CPU could run past).
    drop(patient.clone());
    assert_eq!(apply_double(&patient, 2).unwrap(), 4);
}

#[test]
fn dropping_the_last_handle_with_pending_callbacks_runs_them_all() {
    let _serial = serial();
    let (ok, ok_seen) = counter();
    let results: Vec<_> = {
        let pool = Pool::new(2).unwrap();
        (0..10)
            .map(|x| {
                let ok = ok.clone();
                apply_async_nap(&pool, x * 10).callback(move |_| {
                    ok.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect()
    };
    // The drop joined: every task ran, every callback returned.
    assert_eq!(ok_seen.load(Ordering::SeqCst), 10);
    for (x, r) in results.into_iter().enumerate() {
        assert!(r.ready());
        assert_eq!(r.get().unwrap(), x as u64 * 10);
    }
    assert_no_children();
}

#[pool_task]
fn exit_with(code: i32) -> u64 {
    std::process::exit(code)
}

#[pool_task]
fn nested(x: u64) -> Result<u64, String> {
    let pool = Pool::new(1).map_err(|e| e.to_string())?;
    let y = apply_double(&pool, x).map_err(|e| e.to_string())?;
    Ok(y + 1)
}

#[test]
fn a_task_that_exits_cleanly_is_still_a_death() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    for code in [0, 3] {
        for outcome in [
            apply_exit_with(&pool, code),
            apply_async_exit_with(&pool, code).get(),
        ] {
            match outcome {
                Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Code(code)),
                other => panic!("exit({code}): expected WorkerDied, got {other:?}"),
            }
        }
        assert!(matches!(
            map_exit_with(&pool, [code, code]),
            Err(Error::WorkerDied { .. })
        ));
        assert_eq!(apply_double(&pool, 1).unwrap(), 2);
    }
}

#[test]
fn a_task_may_make_a_pool_of_its_own() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let r = apply_async_nested(&pool, 20);
    assert!(
        r.wait_timeout(Duration::from_secs(20)),
        "a nested pool hung"
    );
    match r.get() {
        Ok(v) => assert_eq!(v, Ok(41)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn results_are_shared_between_threads_and_errors_box() {
    let _serial = serial();
    fn boxed(pool: &Pool) -> Result<u64, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(apply_boom(pool, 3)?)
    }
    let pool = Pool::new(1).unwrap();
    let e = boxed(&pool).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("parity_audit::boom"), "{text}");
    assert!(text.contains("three is not allowed"), "{text}");
    let r = apply_async_nap(&pool, 200);
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| s.spawn(|| r.get_timeout(Duration::from_secs(30)).unwrap()))
            .collect();
        for w in waiters {
            assert_eq!(w.join().unwrap(), 200);
        }
    });
    // Two callbacks chained: each once, in order.
    let order = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = (order.clone(), order.clone());
    let r = apply_async_double(&pool, 5)
        .callback(move |v| a.lock().unwrap().push(("first", v)))
        .callback(move |v| b.lock().unwrap().push(("second", v)));
    assert_eq!(r.get().unwrap(), 10);
    assert_eq!(*order.lock().unwrap(), [("first", 10), ("second", 10)]);
    assert_eq!(
        Pool::builder().build().unwrap().processes(),
        std::thread::available_parallelism().unwrap().get()
    );
}

#[test]
fn cancelling_a_running_or_finished_task_calls_each_callback_at_most_once() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let (ok, ok_seen) = counter();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let running = marker("running");
    let r = apply_async_hold(&pool, running.clone(), 10_000)
        .callback(move |_| {
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .error_callback(move |e| sink.lock().unwrap().push(e));
    started(&running);
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    r.wait();
    assert!(matches!(
        r.get_timeout(Duration::ZERO),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(ok_seen.load(Ordering::SeqCst), 0);
    assert_eq!(errors.lock().unwrap().len(), 1);
    // Finished: the value is kept and its callback ran once, before.
    let (ok, ok_seen) = counter();
    let r = apply_async_double(&pool, 2).callback(move |_| {
        ok.fetch_add(1, Ordering::SeqCst);
    });
    r.wait();
    assert_eq!(r.cancel(), CancelOutcome::Finished);
    assert_eq!(r.get().unwrap(), 4);
    // So is a failure.
    let r = apply_async_boom(&pool, 3);
    r.wait();
    assert_eq!(r.cancel(), CancelOutcome::Finished);
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    // A panicking error callback: the result still completes, the pool serves.
    let r = apply_async_boom(&pool, 3).error_callback(|_| panic!("error callback panics"));
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    assert_eq!(apply_double(&pool, 3).unwrap(), 6);
    pool.close();
    pool.join();
    assert_eq!(ok_seen.load(Ordering::SeqCst), 1);
}

#[test]
fn close_and_cancel_ends_a_map_blocked_in_another_thread() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let first = marker("blocked-map");
    let mut items = vec![(PathBuf::new(), 100); 40];
    items[0].0 = first.clone();
    let (items, read) = support::ReadToEnd::new(items);
    let blocked = {
        let pool = pool.clone();
        std::thread::spawn(move || starmap_hold_with(&pool, items, MapOptions::new().chunksize(1)))
    };
    let lazy_pool = pool.clone();
    let mut lazy =
        imap_unordered_nap_with(&lazy_pool, vec![100; 40], MapOptions::new().chunksize(1));
    started(&first);
    // Its 39 other chunks queued behind the running one (100 ms each).
    support::all_queued(&read);
    let begun = Instant::now();
    let cancelled = pool.close_and_cancel();
    assert!(cancelled > 0);
    let outcome = blocked.join().unwrap();
    assert!(
        matches!(outcome, Err(Error::Cancelled { .. })),
        "{outcome:?}"
    );
    let mut oks = 0;
    let mut errs = 0;
    for r in lazy.by_ref() {
        match r {
            Ok(100) => oks += 1,
            Err(Error::Cancelled { .. } | Error::PoolClosed { .. }) => errs += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(errs >= 1, "oks {oks} errs {errs}");
    assert!(lazy.next().is_none());
    drop(lazy);
    pool.join();
    assert!(begun.elapsed() < Duration::from_secs(5));
    drop((pool, lazy_pool));
    assert_no_children();
}

#[pool_task]
fn mixed(x: u64) -> u64 {
    if x % 13 == 5 {
        panic!("item {x} panics");
    }
    if x == 20 {
        // SAFETY: kill(2) of this very worker, mid-task.
        unsafe { libc::kill(std::process::id() as i32, libc::SIGKILL) };
    }
    x
}

#[pool_task]
fn stdin_is() -> String {
    std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| e.to_string())
}

/// What `mixed(x)` gives back: its value, or which error.
fn expected(x: u64) -> &'static str {
    if x % 13 == 5 {
        "panic"
    } else if x == 20 {
        "died"
    } else {
        "ok"
    }
}

fn kind(r: &Result<u64, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::Panic { .. }) => "panic",
        Err(Error::WorkerDied { .. }) => "died",
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[test]
fn every_item_comes_back_once_through_panics_deaths_and_retirements() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let one = MapOptions::new().chunksize(1);
    let got: Vec<_> = imap_mixed_with(&pool, 0..60, one).collect();
    assert_eq!(got.len(), 60);
    for (x, r) in got.iter().enumerate() {
        assert_eq!(kind(r), expected(x as u64), "item {x}: {r:?}");
        if let Ok(v) = r {
            assert_eq!(*v, x as u64);
        }
    }
    let mut seen = [0usize; 60];
    let mut kinds = std::collections::BTreeMap::new();
    for r in imap_unordered_mixed_with(&pool, 0..60, one) {
        *kinds.entry(kind(&r)).or_insert(0) += 1;
        if let Ok(v) = r {
            seen[v as usize] += 1;
        }
    }
    let want_ok = (0..60).filter(|&x| expected(x) == "ok").count();
    assert_eq!(kinds.get("ok"), Some(&want_ok), "{kinds:?}");
    assert_eq!(kinds.get("died"), Some(&1), "{kinds:?}");
    assert_eq!(kinds.values().sum::<usize>(), 60, "{kinds:?}");
    for x in 0..60 {
        assert_eq!(
            seen[x as usize],
            usize::from(expected(x) == "ok"),
            "item {x}"
        );
    }
    // map reports the first failure in input order: item 5's panic.
    assert!(matches!(map_mixed(&pool, 0..60), Err(Error::Panic { .. })));
    assert_eq!(pool.processes(), 2);
}

#[test]
fn a_worker_reads_no_input_of_the_callers() {
    let _serial = serial();
    // Python's workers read stdin from os.devnull.
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_stdin_is(&pool).unwrap(), "/dev/null");
}

#[pool_task]
fn name_len(path: &std::path::Path) -> usize {
    path.as_os_str().len()
}

#[test]
fn a_path_that_is_not_utf8_fails_alone_with_encode() {
    let _serial = serial();
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;
    let pool = Pool::new(1).unwrap();
    let bad = PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    let good = PathBuf::from("ok.txt");
    let encode = |e: &Error| {
        matches!(
            e,
            Error::Encode {
                what: "arguments",
                ..
            }
        )
    };
    assert!(encode(&apply_name_len(&pool, &bad).unwrap_err()));
    assert!(encode(
        &apply_async_name_len(&pool, &bad).get().unwrap_err()
    ));
    assert_eq!(apply_name_len(&pool, &good).unwrap(), 6);
    let items = [good.clone(), bad.clone(), good.clone()];
    assert!(encode(&map_name_len(&pool, &items).unwrap_err()));
    let got: Vec<_> = imap_name_len(&pool, &items).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(*got[0].as_ref().unwrap(), 6);
    assert!(encode(got[1].as_ref().unwrap_err()), "{got:?}");
    assert_eq!(*got[2].as_ref().unwrap(), 6);
}

#[test]
fn under_cancels_and_a_terminate_every_result_settles_and_calls_back_once() {
    let _serial = serial();
    for round in 0..6u64 {
        let pool = Pool::new(2).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut results = Vec::new();
        for i in 0..300u64 {
            let calls = calls.clone();
            let r = apply_async_nap(&pool, (i * 7 + round) % 5).on_complete(move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
            });
            if (i + round) % 3 == 0 {
                let _ = r.cancel();
            }
            results.push(r);
        }
        let maps: Vec<_> = (0..4)
            .map(|k| map_async_nap_with(&pool, vec![k % 3; 20], MapOptions::new().chunksize(3)))
            .collect();
        if round % 2 == 0 {
            std::thread::sleep(Duration::from_millis(20 * round));
            pool.terminate();
        } else {
            let _ = maps[0].cancel();
            pool.close_and_cancel();
            pool.join();
        }
        for r in &results {
            assert!(
                r.wait_timeout(Duration::from_secs(10)),
                "round {round}: a result never settled"
            );
        }
        for m in &maps {
            assert!(
                m.wait_timeout(Duration::from_secs(10)),
                "round {round}: a map never settled"
            );
        }
        pool.join();
        assert_eq!(calls.load(Ordering::SeqCst), 300, "round {round}");
        for r in results {
            match r.get() {
                Ok(_) | Err(Error::Cancelled { .. } | Error::Terminated { .. }) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
    }
    assert_no_children();
}

#[pool_task]
fn pid_of(_x: u64) -> u32 {
    std::process::id()
}

/// The lengths of the runs of equal values: with one task per worker
/// (`max_tasks_per_child(1)`) and a chunk counting as one task, the sizes
/// of the chunks a map cut.
fn runs(pids: &[u32]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        if i > 0 && pids[i - 1] == *pid {
            *out.last_mut().unwrap() += 1;
        } else {
            out.push(1);
        }
    }
    out
}

#[test]
fn default_chunk_sizes_follow_the_documented_rules() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    // Python's Pool.map: ceil(len / (4 × processes)).
    assert_eq!(runs(&map_pid_of(&pool, 0..10).unwrap()), [3, 3, 3, 1]);
    assert_eq!(
        runs(&map_async_pid_of(&pool, 0..9).get().unwrap()),
        [3, 3, 3]
    );
    let unknown = (0..10).filter(|_| true);
    assert_eq!(runs(&map_pid_of(&pool, unknown).unwrap()), [3, 3, 3, 1]);
    // imap: the same rule, reached by chunks of 1, 2, 4, ...
    let pids: Vec<u32> = imap_pid_of(&pool, 0..40).map(Result::unwrap).collect();
    assert_eq!(runs(&pids), [1, 2, 4, 8, 10, 10, 5]);
    // ... and 16 items over an input of unknown length.
    let pids: Vec<u32> = imap_pid_of(&pool, (0..50).filter(|_| true))
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs(&pids), [1, 2, 4, 8, 16, 16, 3]);
    // An explicit size is used as given, from the first chunk on.
    let pids: Vec<u32> = imap_pid_of_with(&pool, 0..7, MapOptions::new().chunksize(3))
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs(&pids), [3, 3, 1]);
}

#[test]
fn close_and_cancel_counts_each_queued_call_and_chunk_once() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    // Running until the gate opens (a minute at most): a fixed 400 ms could
    // end before the close_and_cancel on a stalled machine, and a queued
    // call start.
    let running_marker = marker("counted");
    let open = support::Scratch::new(gate(&running_marker));
    let running = apply_async_hold(&pool, running_marker.clone(), 60_000);
    started(&running_marker);
    let queued: Vec<_> = (0..3).map(|_| apply_async_nap(&pool, 50)).collect();
    let by_name = pool.apply_async_by_name::<u64>("parity_audit::nap", &(50u64,));
    let chunks = map_async_nap_with(&pool, vec![50; 4], MapOptions::new().chunksize(1));
    let pairs = starmap_async_add_with(&pool, vec![(1, 2); 4], MapOptions::new().chunksize(2));
    assert_eq!(pool.close_and_cancel(), 3 + 1 + 4 + 2);
    assert_eq!(pool.close_and_cancel(), 0, "nothing is left queued");
    std::fs::write(&*open, b"").unwrap();
    pool.join();
    assert_eq!(running.get().unwrap(), 60_000);
    for r in queued {
        assert_eq!(r.cancel(), CancelOutcome::NotStarted);
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    }
    assert!(matches!(by_name.get(), Err(Error::Cancelled { .. })));
    assert_eq!(chunks.cancel(), CancelOutcome::NotStarted);
    assert!(matches!(chunks.get(), Err(Error::Cancelled { .. })));
    assert!(matches!(pairs.get(), Err(Error::Cancelled { .. })));
}

#[test]
fn results_already_in_keep_their_values_through_terminate() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (ok, ok_seen) = counter();
    let done = apply_async_double(&pool, 21).callback(move |_| {
        ok.fetch_add(1, Ordering::SeqCst);
    });
    let whole = map_async_double(&pool, 0..10);
    done.wait();
    whole.wait();
    let pending = apply_async_nap(&pool, 10_000);
    pool.terminate();
    assert_eq!(done.get_timeout(Duration::ZERO).unwrap(), 42);
    assert_eq!(done.cancel(), CancelOutcome::Finished);
    assert_eq!(done.get().unwrap(), 42);
    assert_eq!(whole.successful(), Some(true));
    assert_eq!(
        whole.get().unwrap(),
        (0..10).map(|x| 2 * x).collect::<Vec<_>>()
    );
    assert!(matches!(pending.get(), Err(Error::Terminated { .. })));
    assert_eq!(ok_seen.load(Ordering::SeqCst), 1);
}

#[pool_task]
fn nap_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// The README's Logging section: a pool ready is `info`, once; worker
/// starts are `debug`; a worker stopped by a cancel is `debug`, and so is
/// what `close_and_cancel` and `terminate` cut short: none is a warning.
#[test]
fn log_events_have_the_documented_levels() {
    let _serial = serial();
    let log = support::capture_log();
    // (Five workers: no other test of this file makes such a pool.)
    let pool = Pool::new(5).unwrap();
    let ready = log.lines_with("pool of 5 workers ready");
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(ready[0].starts_with("INFO"), "{ready:?}");
    let pids: Vec<u32> = (0..5)
        .map(|_| apply_async_nap_pid(&pool, 200))
        .map(|r| r.get().unwrap())
        .collect();
    for pid in &pids {
        let started = log.lines_with(&format!("worker {pid} ready"));
        assert!(
            !started.is_empty() && started.iter().all(|l| l.starts_with("DEBUG")),
            "{started:?}"
        );
    }
    // A cancel that stops a running task.
    let stopped_marker = marker("logged-stop");
    let r = apply_async_hold(&pool, stopped_marker.clone(), 10_000);
    started(&stopped_marker);
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    // close_and_cancel with tasks queued, then terminate with tasks running.
    let markers: Vec<_> = (0..5).map(|i| marker(&format!("logged-{i}"))).collect();
    let running: Vec<_> = markers
        .iter()
        .map(|m| apply_async_hold(&pool, m.to_path_buf(), 10_000))
        .collect();
    for m in &markers {
        started(m);
    }
    let queued: Vec<_> = (0..3).map(|_| apply_async_nap_pid(&pool, 10)).collect();
    assert_eq!(pool.close_and_cancel(), 3);
    let cancelled = log.lines_with("close_and_cancel: 3 queued tasks cancelled");
    assert!(
        cancelled.iter().any(|l| l.starts_with("DEBUG")),
        "{cancelled:?}"
    );
    pool.terminate();
    for r in running {
        assert!(matches!(r.get(), Err(Error::Terminated { .. })));
    }
    for r in queued {
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    }
    let stopped = log.lines_with("was cancelled");
    assert!(
        !stopped.is_empty() && stopped.iter().all(|l| l.starts_with("DEBUG")),
        "{stopped:?}"
    );
    let warnings: Vec<_> = log
        .lines()
        .into_iter()
        .filter(|l| {
            l.starts_with("WARN")
                && (l.contains("parity_audit::nap_pid") || l.contains("parity_audit::hold"))
        })
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// "Cancelling again answers the same" (README), for the imaps too: their
/// second cancel answered `Finished` once the first had dropped the input
/// or the chunks it stopped had come back.
#[test]
fn cancelling_an_imap_again_answers_what_the_first_cancel_did() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    // Nothing queued yet: the input is never read.
    let mut lazy = imap_unordered_double(&pool, 0..);
    assert_eq!(lazy.cancel(), CancelOutcome::NotStarted);
    assert_eq!(lazy.cancel(), CancelOutcome::NotStarted);
    assert!(lazy.next().is_none());
    assert_eq!(lazy.cancel(), CancelOutcome::NotStarted);
    let mut lazy = imap_double(&pool, 0..);
    assert_eq!(lazy.cancel(), CancelOutcome::NotStarted);
    assert_eq!(lazy.cancel(), CancelOutcome::NotStarted);
    // A chunk running: stopped; asked again, after the iterator ended too.
    let second = marker("imap-second");
    let items = [
        (PathBuf::new(), 0),
        (second.clone(), 10_000),
        (PathBuf::new(), 10_000),
    ];
    let mut lazy = imap_hold_with(&pool, items, MapOptions::new().chunksize(1));
    assert_eq!(lazy.next().unwrap().unwrap(), 0);
    // A pull queues chunks only until one is back: the quick first one,
    // back before the second was queued (the reader preempted on a loaded
    // machine), was yielded with the second never queued, and the wait for
    // its start timed out. Pulls that do not wait queue it.
    support::wait_for(Duration::from_secs(30), "the second to start", || {
        let pulled = lazy.next_timeout(Duration::ZERO);
        assert!(
            matches!(pulled, Some(Err(Error::WaitTimeout { .. }))),
            "{pulled:?}"
        );
        second.exists()
    });
    assert_eq!(lazy.cancel(), CancelOutcome::Stopped);
    assert_eq!(lazy.cancel(), CancelOutcome::Stopped);
    let rest: Vec<_> = lazy.by_ref().collect();
    assert!(
        matches!(rest.last(), Some(Err(Error::Cancelled { .. }))),
        "{rest:?}"
    );
    assert_eq!(lazy.cancel(), CancelOutcome::Stopped);
    // Read to its end first: nothing to cancel, then or later.
    let mut lazy = imap_double(&pool, 0..3);
    assert_eq!(lazy.by_ref().count(), 3);
    assert_eq!(lazy.cancel(), CancelOutcome::Finished);
    assert_eq!(lazy.cancel(), CancelOutcome::Finished);
}

#[test]
fn callbacks_attached_after_the_pool_is_gone_still_run() {
    let _serial = serial();
    let (r, pending, m) = {
        let pool = Pool::new(1).unwrap();
        let r = apply_async_nap(&pool, 1);
        r.wait();
        let pending = apply_async_nap(&pool, 100);
        let m = map_async_nap(&pool, vec![1, 2]);
        (r, pending, m)
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let tx3 = tx.clone();
    let r = r.callback(move |v| tx.send(v).unwrap());
    let pending = pending.callback(move |v| tx2.send(v).unwrap());
    let m = m.on_complete(move |v| tx3.send(v.unwrap().len() as u64).unwrap());
    assert!(r.wait_timeout(Duration::from_secs(5)), "r hangs");
    assert!(
        pending.wait_timeout(Duration::from_secs(5)),
        "pending hangs"
    );
    assert!(m.wait_timeout(Duration::from_secs(5)), "m hangs");
    let mut got: Vec<u64> = rx.try_iter().collect();
    got.sort();
    assert_eq!(got, [1, 2, 100]);
    assert_eq!(r.get().unwrap(), 1);
    // after terminate too
    let pool = Pool::new(1).unwrap();
    let t = apply_async_nap(&pool, 10_000);
    pool.terminate();
    drop(pool);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = t.error_callback(move |e| tx.send(e).unwrap());
    assert!(t.wait_timeout(Duration::from_secs(5)), "t hangs");
    assert!(matches!(rx.try_recv(), Ok(Error::Terminated { .. })));
}

#[pool_task]
fn nap_or_panic(ms: u64, fail: bool) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    assert!(!fail, "item of {ms} ms fails");
    ms
}

/// Python's `map_async(...).get()` raises (and its error callback runs) as
/// soon as a chunk fails, and `map_<fn>` returns its first error once every
/// item before it is back. `map_async_<fn>` waited for every chunk, however
/// long the ones after the error ran.
#[test]
fn map_async_fails_once_its_first_error_in_input_order_is_known() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let one = MapOptions::new().chunksize(1);
    let begun = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    // (The chunks behind run a minute: a loaded machine takes seconds at
    // most to report the first one's panic.)
    let items = vec![(0, true), (60_000, false), (60_000, false), (60_000, false)];
    let r = starmap_async_nap_or_panic_with(&pool, items, one)
        .error_callback(move |e| tx.send(e).unwrap());
    assert!(
        r.wait_timeout(Duration::from_secs(20)),
        "not failed after {:?}",
        begun.elapsed()
    );
    match r.get() {
        Err(Error::Panic { message, .. }) => assert!(message.contains("item of 0 ms"), "{message}"),
        other => panic!("expected the first item's panic, got {other:?}"),
    }
    assert!(matches!(rx.try_recv(), Ok(Error::Panic { .. })));
    pool.terminate();
    // Still the first error in input order: a later item that fails first
    // waits for the items before it.
    let pool = Pool::new(2).unwrap();
    let items = vec![(300, true), (0, true), (0, false)];
    let r = starmap_async_nap_or_panic_with(&pool, items, one);
    match r.get() {
        Err(Error::Panic { message, .. }) => {
            assert!(message.contains("item of 300 ms"), "{message}")
        }
        other => panic!("expected the first item's panic, got {other:?}"),
    }
    // And a map that does not fail still has every result.
    let items = vec![(10, false), (0, false), (20, false)];
    assert_eq!(
        starmap_async_nap_or_panic(&pool, items).get().unwrap(),
        [10, 0, 20]
    );
}

/// A `map_async` that failed before its other chunks were back: its error
/// callback runs once (not again as those chunks arrive, failing or not),
/// and `join` still waits for them (they run to their end, as documented);
/// `close_and_cancel` counts a `map_async`'s queued chunks one each and
/// makes it `Cancelled`. (Passes.)
#[test]
fn a_map_async_failed_early_calls_back_once_and_join_waits_for_its_chunks() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let one = MapOptions::new().chunksize(1);
    let (err, err_seen) = counter();
    let (ok, ok_seen) = counter();
    let items = vec![(0, true), (400, true), (400, false), (0, true)];
    let begun = Instant::now();
    let r = starmap_async_nap_or_panic_with(&pool, items, one)
        .callback(move |_| {
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .error_callback(move |_| {
            err.fetch_add(1, Ordering::SeqCst);
        });
    r.wait();
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    pool.join();
    assert!(
        begun.elapsed() >= Duration::from_millis(800),
        "join returned after {:?}, before the chunks behind the error ran",
        begun.elapsed()
    );
    assert_eq!(
        (
            ok_seen.load(Ordering::SeqCst),
            err_seen.load(Ordering::SeqCst)
        ),
        (0, 1)
    );
    // Chunks queued behind a running call: one each.
    let pool = Pool::new(1).unwrap();
    let running = marker("early-failed-running");
    // Running until the cancel is done, however slow the machine.
    let open = support::Scratch::new(gate(&running));
    let held = apply_async_hold(&pool, running.clone(), 60_000);
    started(&running);
    let items = vec![(0, true), (0, false), (0, false)];
    let r = starmap_async_nap_or_panic_with(&pool, items, one);
    let cancelled = pool.close_and_cancel();
    std::fs::write(&*open, b"").unwrap();
    assert_eq!(cancelled, 3);
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    pool.join();
    assert_eq!(held.get().unwrap(), 60_000);
}

/// `AsyncResult::cancel` of a `map_async` cancels every chunk (its doc):
/// one that failed at its first item, its result there at once, still has
/// chunks queued and running behind that error, and cancelling it stops
/// them (the result, the first error, is kept). It answered `Finished` and
/// touched nothing, so the rest of the map ran to its end, unstoppable.
#[test]
fn cancelling_a_map_async_that_already_failed_stops_its_remaining_chunks() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let one = MapOptions::new().chunksize(1);
    let items = vec![(0, true), (20_000, false), (20_000, false), (20_000, false)];
    let r = starmap_async_nap_or_panic_with(&pool, items, one);
    r.wait();
    assert_eq!(r.cancel(), CancelOutcome::Finished);
    assert_eq!(r.cancel(), CancelOutcome::Finished);
    let next = apply_async_nap(&pool, 0);
    let freed = next.wait_timeout(Duration::from_secs(10));
    pool.terminate();
    assert!(
        freed,
        "the failed map's remaining chunks still hold the worker"
    );
    match r.get() {
        Err(Error::Panic { message, .. }) => assert!(message.contains("item of 0 ms"), "{message}"),
        other => panic!("expected the first item's panic, got {other:?}"),
    }
}

/// As `concurrent.futures`' `shutdown(cancel_futures=True)` cancels the
/// pending futures at once: a `map_async` whose queued chunks
/// `close_and_cancel` took is `Cancelled` then, not once its running chunk
/// ends (it was `Cancelled` whatever that chunk gave, but only after it).
#[test]
fn a_map_async_cut_by_close_and_cancel_is_cancelled_at_once() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let first = marker("map-async-cut");
    // The running chunk ends when the test is done (a minute at most).
    let items = vec![
        (first.clone(), 60_000),
        (PathBuf::new(), 0),
        (PathBuf::new(), 0),
    ];
    let r = starmap_async_hold_with(&pool, items, MapOptions::new().chunksize(1));
    started(&first);
    assert_eq!(pool.close_and_cancel(), 2);
    assert!(
        r.wait_timeout(Duration::from_secs(20)),
        "not cancelled before its running chunk ended"
    );
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    pool.terminate();
}

/// The same for a `map_<fn>` under way in another thread: it returned
/// `Cancelled` only once the chunk running before the cancelled ones ended.
#[test]
fn a_map_cut_by_close_and_cancel_returns_at_once() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let first = marker("map-cut");
    let items = vec![
        (first.clone(), 60_000),
        (PathBuf::new(), 0),
        (PathBuf::new(), 0),
    ];
    let (items, read) = support::ReadToEnd::new(items);
    let blocked = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let outcome = starmap_hold_with(&pool, items, MapOptions::new().chunksize(1));
            (outcome, Instant::now())
        })
    };
    started(&first);
    support::all_queued(&read);
    let cancelled_at = Instant::now();
    assert_eq!(pool.close_and_cancel(), 2);
    let (outcome, returned_at) = blocked.join().unwrap();
    assert!(
        matches!(outcome, Err(Error::Cancelled { .. })),
        "{outcome:?}"
    );
    let took = returned_at - cancelled_at;
    // (Its running chunk takes a minute: a loaded machine takes seconds
    // at most to cancel the others.)
    assert!(
        took < Duration::from_secs(20),
        "returned {took:?} after close_and_cancel"
    );
    pool.terminate();
}

/// Returns once the replies of the calls queued before now on `pool`
/// (the slow one aside) are in: a call queued after them can only be
/// taken by the worker that ran them once its slot settled them (the other
/// one is held). (A fixed 200 ms sleep was enough only on a machine quick
/// enough to read two replies in that time.)
fn replies_in(pool: &Pool) {
    let probe = apply_async_hold(pool, PathBuf::new(), 0);
    assert_eq!(probe.get_timeout(Duration::from_secs(30)).unwrap(), 0);
}

/// `Imap::cancel`: "the iterator then yields the results of the chunks that
/// had already finished, `Cancelled` once in place of the rest, and ends".
/// In input order, a stopped chunk ahead of finished ones yielded
/// `Cancelled` first, then their values: the error was not the last item.
/// And `imap` yields each result in its item's place: the values of chunks
/// behind the stopped one have no place there (they yielded in the places
/// of the stopped chunk's items, taken for their results: found by
/// tests/api_chaos under `terminate`), so only `imap_unordered` yields
/// them.
#[test]
fn a_cancelled_imap_yields_the_finished_results_then_cancelled_last() {
    let _serial = serial();
    for ordered in [true, false] {
        let pool = Pool::new(2).unwrap();
        let (slow, quick1, quick2) = (marker("slow"), marker("quick-1"), marker("quick-2"));
        let items = [
            (slow.clone(), 10_000),
            (quick1.clone(), 0),
            (quick2.clone(), 0),
        ];
        let options = MapOptions::new().chunksize(1);
        let mut lazy: Box<dyn Iterator<Item = Result<u64, Error>>> = if ordered {
            let mut lazy = imap_hold_with(&pool, items, options);
            // Queues the three chunks; the first one runs on.
            assert!(matches!(
                lazy.next_timeout(Duration::from_millis(1)),
                Some(Err(Error::WaitTimeout { .. }))
            ));
            for m in [&slow, &quick1, &quick2] {
                started(m);
            }
            replies_in(&pool);
            assert_eq!(lazy.cancel(), CancelOutcome::Stopped);
            Box::new(lazy)
        } else {
            let mut lazy = imap_unordered_hold_with(&pool, items, options);
            // Queues the three chunks. A pull queues chunks until one is
            // back: a quick one back at once is yielded (then the next pull
            // queues the rest; one pull left the third unqueued, and the
            // wait for its start timed out, on a loaded machine).
            let mut early = Vec::new();
            support::wait_for(Duration::from_secs(30), "the three to start", || {
                match lazy.next_timeout(Duration::ZERO) {
                    Some(Err(Error::WaitTimeout { .. })) => {}
                    Some(r) => early.push(r),
                    None => panic!("the imap ended: {early:?}"),
                }
                [&slow, &quick1, &quick2].iter().all(|m| m.exists())
            });
            replies_in(&pool);
            assert_eq!(lazy.cancel(), CancelOutcome::Stopped);
            Box::new(early.into_iter().chain(lazy))
        };
        let rest: Vec<_> = lazy.by_ref().collect();
        if ordered {
            assert_eq!(rest.len(), 1, "{rest:?}");
        } else {
            assert_eq!(rest.len(), 3, "{rest:?}");
            assert!(
                matches!(rest[0], Ok(0)) && matches!(rest[1], Ok(0)),
                "{rest:?}"
            );
        }
        assert!(
            matches!(rest.last(), Some(Err(Error::Cancelled { .. }))),
            "{rest:?}"
        );
    }
}

/// README: "Dropping `r` does not cancel": the task of a dropped result (a
/// call's, a `map_async`'s) still runs, and `join` waits for it.
#[test]
fn dropping_a_result_does_not_cancel_its_task() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let (call, map) = (marker("dropped-call"), marker("dropped-map"));
    drop(apply_async_hold(&pool, call.clone(), 100));
    drop(map_async_hold(&pool, [(map.clone(), 100)]));
    pool.close();
    pool.join();
    assert!(call.exists() && map.exists());
}

#[pool_task]
fn twice_text(s: String) -> String {
    format!("{s}{s}")
}

/// An input whose `size_hint` claims an exact length it does not have
/// (`size_hint` is only a hint): counting 0.. up to `end`, claiming `claim`.
struct Miscounted {
    next: u64,
    end: u64,
    claim: usize,
}

impl Iterator for Miscounted {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claim, Some(self.claim))
    }
}

/// Every map form takes every item an input yields, no more and no fewer,
/// whatever length its `size_hint` claims (numbers and text, which travel
/// in different chunk forms).
#[test]
fn an_input_that_miscounts_itself_is_mapped_item_for_item() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    for (end, claim) in [(40, 3), (3, 40), (0, 5), (5, 0), (100, 1)] {
        let input = || Miscounted {
            next: 0,
            end,
            claim,
        };
        let want: Vec<u64> = (0..end).map(|x| 2 * x).collect();
        assert_eq!(map_double(&pool, input()).unwrap(), want, "{end}/{claim}");
        assert_eq!(map_async_double(&pool, input()).get().unwrap(), want);
        let ordered: Vec<u64> = imap_double(&pool, input()).map(Result::unwrap).collect();
        assert_eq!(ordered, want, "{end}/{claim}");
        let mut unordered: Vec<u64> = imap_unordered_double(&pool, input())
            .map(Result::unwrap)
            .collect();
        unordered.sort_unstable();
        assert_eq!(unordered, want, "{end}/{claim}");
        let texts = || input().map(|x| x.to_string());
        let want: Vec<String> = (0..end).map(|x| format!("{x}{x}")).collect();
        assert_eq!(map_twice_text(&pool, texts()).unwrap(), want);
        let ordered: Vec<String> = imap_twice_text(&pool, texts())
            .map(Result::unwrap)
            .collect();
        assert_eq!(ordered, want, "{end}/{claim}");
    }
}

/// A map's input may itself call the pool (`apply`, `apply_async`, `map`,
/// `imap`) as it is read, on a pool of one worker too, without a deadlock.
#[test]
fn a_maps_input_may_call_the_same_pool() {
    let _serial = serial();
    support::within(
        Duration::from_secs(60),
        "maps calling their pool",
        maps_calling_their_pool,
    );
}

fn maps_calling_their_pool() {
    for processes in [1, 2] {
        let pool = Pool::new(processes).unwrap();
        let one = MapOptions::new().chunksize(1);
        let inner = (0..30u64).map(|x| apply_double(&pool, x).unwrap());
        let want: Vec<u64> = (0..30).map(|x| 4 * x).collect();
        assert_eq!(map_double_with(&pool, inner, one).unwrap(), want);
        let inner = (0..30u64).map(|x| apply_async_double(&pool, x).get().unwrap());
        assert_eq!(map_async_double(&pool, inner).get().unwrap(), want);
        let inner = (0..30u64).map(|x| map_double(&pool, [x]).unwrap()[0]);
        let got: Vec<u64> = imap_double_with(&pool, inner, one)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want);
        let inner = (0..30u64).map(|x| imap_double(&pool, [x]).next().unwrap().unwrap());
        let mut got: Vec<u64> = imap_unordered_double(&pool, inner)
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, want);
    }
}
