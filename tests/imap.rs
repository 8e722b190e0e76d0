//! `imap_<fn>` and `imap_unordered_<fn>`: laziness, order, chunking,
//! per-item errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use procpool::{pool_task, Error, MapOptions, Pool};

procpool::enable_test_support!();

mod support;

#[pool_task]
fn square_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

#[pool_task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[pool_task]
fn fragile(x: u32) -> u32 {
    if x == 50 {
        panic!("item {x} is bad");
    }
    x + 1
}

/// Item 0 sleeps 1 s, the others not at all, so completion order differs
/// from input order.
#[pool_task]
fn nap_inverse(x: u64) -> u64 {
    if x == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
    }
    x
}

/// `x`; item 0 only once the file `gate` exists (a minute at most).
#[pool_task]
fn gated_zero(x: u64, gate: String) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while x == 0 && !std::path::Path::new(&gate).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    x
}

/// Kills its worker (SIGABRT) on the item equal to `bad`.
/// Item 0 returns at once; every other waits for `gate` to exist (60 s at
/// most).
#[pool_task]
fn all_but_zero_gated(x: u64, gate: String) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while x != 0 && !std::path::Path::new(&gate).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    x
}

#[pool_task]
fn abort_on(x: u32, bad: u32) -> u32 {
    if x == bad {
        std::process::abort();
    }
    x
}

/// Serializes only when even: an odd value's result cannot be encoded.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct EvenOnly(u32);

impl serde::Serialize for EvenOnly {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 2 == 1 {
            return Err(serde::ser::Error::custom(format!("{} is odd", self.0)));
        }
        s.serialize_newtype_struct("EvenOnly", &self.0)
    }
}

#[pool_task]
fn even_only(x: u32) -> EvenOnly {
    EvenOnly(x)
}

#[test]
fn an_unencodable_result_fails_only_its_item() {
    let pool = Pool::new(1).unwrap();
    let out: Vec<Result<EvenOnly, Error>> = imap_even_only(&pool, 0..6).collect();
    for (x, r) in out.iter().enumerate() {
        match r {
            Ok(v) if x % 2 == 0 => assert_eq!(v.0, x as u32),
            Err(Error::Encode { what, message, .. }) if x % 2 == 1 => {
                assert_eq!(*what, "result");
                assert!(message.contains("is odd"), "{message}");
            }
            other => panic!("item {x}: {other:?}"),
        }
    }
}

#[test]
fn imap_yields_in_input_order_from_workers() {
    let pool = Pool::new(2).unwrap();
    for options in [
        MapOptions::new(),
        MapOptions::new().chunksize(1),
        MapOptions::new().chunksize(1000),
    ] {
        let out: Vec<(u64, u32)> = imap_square_pid_with(&pool, 0..300, options)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out.len(), 300);
        for (x, (sq, pid)) in out.into_iter().enumerate() {
            assert_eq!(sq, (x * x) as u64);
            assert_ne!(pid, std::process::id());
        }
    }
}

#[test]
fn imap_unordered_yields_every_result_once() {
    let pool = Pool::new(2).unwrap();
    for options in [MapOptions::new(), MapOptions::new().chunksize(1)] {
        let mut out: Vec<u64> = imap_unordered_square_pid_with(&pool, 0..300, options)
            .map(|r| r.unwrap().0)
            .collect();
        out.sort();
        assert_eq!(out, (0..300u64).map(|x| x * x).collect::<Vec<_>>());
    }
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    let pool = Pool::new(4).unwrap();
    let one = MapOptions::new().chunksize(1);
    // Item 0 finishes only once the three others were yielded: were the
    // results held back in input order, none would come.
    let gate = support::Scratch::temp("imap-gate");
    let items = (0..4).map(|x| (x, gate.display().to_string()));
    let mut order = Vec::new();
    for r in imap_unordered_gated_zero_with(&pool, items, one) {
        order.push(r.unwrap());
        if order.len() == 3 {
            std::fs::write(&gate, b"").unwrap();
        }
    }
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[3], 0, "completion order {order:?}");
    let ordered: Vec<u64> = imap_nap_inverse_with(&pool, 0..4, one)
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, [0, 1, 2, 3]);
}

#[test]
fn several_arguments_take_tuples() {
    let pool = Pool::new(2).unwrap();
    let out: Vec<i64> = imap_add(&pool, (0..100).map(|i| (i, 1)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (1..101).collect::<Vec<_>>());
    let mut out: Vec<i64> = imap_unordered_add(&pool, vec![(1, 2), (3, 4)])
        .collect::<Result<_, _>>()
        .unwrap();
    out.sort();
    assert_eq!(out, [3, 7]);
}

#[test]
fn empty_input_yields_nothing() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(imap_add(&pool, Vec::new()).count(), 0);
    assert_eq!(imap_unordered_add(&pool, Vec::new()).count(), 0);
}

#[test]
fn a_panicking_item_yields_its_own_error_and_the_others_their_values() {
    let pool = Pool::new(2).unwrap();
    for options in [
        MapOptions::new(),
        MapOptions::new().chunksize(1),
        MapOptions::new().chunksize(300),
    ] {
        let out: Vec<Result<u32, Error>> = imap_fragile_with(&pool, 0..100, options).collect();
        assert_eq!(out.len(), 100);
        for (x, r) in out.iter().enumerate() {
            match r {
                Err(Error::Panic { message, .. }) if x == 50 => {
                    assert_eq!(message, "item 50 is bad")
                }
                Ok(v) if x != 50 => assert_eq!(*v, x as u32 + 1),
                other => panic!("item {x}: {other:?}"),
            }
        }
        let unordered: Vec<Result<u32, Error>> =
            imap_unordered_fragile_with(&pool, 0..100, options).collect();
        assert_eq!(unordered.iter().filter(|r| r.is_ok()).count(), 99);
        assert_eq!(
            unordered
                .iter()
                .filter(|r| matches!(r, Err(Error::Panic { .. })))
                .count(),
            1
        );
    }
}

#[test]
fn an_endless_input_is_pulled_lazily() {
    let pool = Pool::new(2).unwrap();
    let pulled = AtomicUsize::new(0);
    let endless = (0u64..).inspect(|_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    });
    let first: Vec<u64> = imap_square_pid(&pool, endless)
        .take(100)
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(first, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
    // Bounded read-ahead: 2 chunks per worker of the default 16 items.
    let pulled = pulled.load(Ordering::Relaxed);
    assert!(pulled <= 100 + 4 * 16, "pulled {pulled} items");

    let pulled = AtomicUsize::new(0);
    let endless = (0u64..).inspect(|_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    });
    let unordered = imap_unordered_square_pid_with(&pool, endless, MapOptions::new().chunksize(3))
        .take(50)
        .filter(Result::is_ok)
        .count();
    assert_eq!(unordered, 50);
    let pulled = pulled.load(Ordering::Relaxed);
    assert!(pulled <= 50 + 4 * 3, "pulled {pulled} items");
}

#[test]
fn a_worker_dying_mid_chunk_fails_that_chunks_items_with_worker_died() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<(u32, u32)> = (0..40).map(|x| (x, 17)).collect();
    let out: Vec<Result<u32, Error>> =
        imap_abort_on_with(&pool, items, MapOptions::new().chunksize(10)).collect();
    assert_eq!(out.len(), 40);
    for (x, r) in out.iter().enumerate() {
        match r {
            Err(Error::WorkerDied { pid, .. }) if (10..20).contains(&x) => {
                assert_ne!(*pid, std::process::id())
            }
            Ok(v) if !(10..20).contains(&x) => assert_eq!(*v, x as u32),
            other => panic!("item {x}: {other:?}"),
        }
    }
}

#[test]
fn chunksize_zero_yields_one_config_error() {
    let pool = Pool::new(1).unwrap();
    let out: Vec<_> = imap_add_with(&pool, vec![(1, 2)], MapOptions::new().chunksize(0)).collect();
    assert!(matches!(out[..], [Err(Error::Config { .. })]));
}

/// Sleeps a long time on the item equal to `slow`.
#[pool_task]
fn stall_on(x: u32, slow: u32) -> u32 {
    if x == slow {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    x
}

#[test]
fn a_time_limit_applies_to_each_chunk() {
    let pool = Pool::new(2).unwrap();
    let limited = pool.with_task_timeout(Some(std::time::Duration::from_secs(2)));
    let items: Vec<(u32, u32)> = (0..8).map(|x| (x, 3)).collect();
    let out: Vec<Result<u32, Error>> =
        imap_stall_on_with(&limited, items, MapOptions::new().chunksize(2)).collect();
    for (x, r) in out.iter().enumerate() {
        match r {
            Err(Error::Timeout { .. }) if x == 2 || x == 3 => {}
            Ok(v) if x != 2 && x != 3 => assert_eq!(*v, x as u32),
            other => panic!("item {x}: {other:?}"),
        }
    }
}

#[test]
fn an_endless_imap_ends_once_the_pool_is_terminated_or_closed() {
    for close in [false, true] {
        let pool = Pool::new(2).unwrap();
        assert!(pool_task_runs(&pool));
        if close {
            pool.close();
        } else {
            pool.terminate();
        }
        let stopped = |e: &Error| matches!(e, Error::PoolClosed { .. } | Error::Terminated { .. });
        // Bounded, so that a regression fails rather than loops for ever.
        let ordered: Vec<_> = imap_square_pid(&pool, 0u64..).take(10_000).collect();
        assert_eq!(ordered.len(), 1, "close={close}");
        assert!(stopped(ordered[0].as_ref().unwrap_err()), "{ordered:?}");
        let unordered: Vec<_> = imap_unordered_square_pid(&pool, 0u64..)
            .take(10_000)
            .collect();
        assert_eq!(unordered.len(), 1, "close={close}");
        assert!(stopped(unordered[0].as_ref().unwrap_err()), "{unordered:?}");
    }
}

/// Whether the pool runs a task in a worker.
fn pool_task_runs(pool: &Pool) -> bool {
    let first: Vec<_> = imap_square_pid(pool, [3u64]).collect();
    matches!(first[..], [Ok((9, pid))] if pid != std::process::id())
}

#[test]
fn imap_over_a_huge_known_length_input_pulls_a_bounded_number_of_items() {
    let pool = Pool::new(2).unwrap();
    let pulled = AtomicUsize::new(0);
    // A length known exactly (`size_hint`): Python's map rule would make
    // chunks of 2^61 items.
    let huge = (0..u64::MAX).inspect(|_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(
        huge.size_hint(),
        (u64::MAX as usize, Some(u64::MAX as usize))
    );
    let first: Vec<u64> = imap_square_pid(&pool, huge)
        .take(5)
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    // At most two chunks per worker in flight, of the capped default size.
    let pulled = pulled.load(Ordering::Relaxed);
    // imap's default chunk size is capped at 1024 items.
    let bound = 4 * 1024;
    assert!(pulled <= bound, "pulled {pulled} items, more than {bound}");

    let pulled = AtomicUsize::new(0);
    let huge = (0..u64::MAX).inspect(|_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    });
    let some = imap_unordered_square_pid(&pool, huge)
        .take(5)
        .filter(Result::is_ok)
        .count();
    assert_eq!(some, 5);
    let pulled = pulled.load(Ordering::Relaxed);
    assert!(pulled <= bound, "pulled {pulled} items, more than {bound}");
}

/// Pulls `results` until it panics: the values before, and the panic's message.
fn until_panic<T>(results: &mut dyn Iterator<Item = Result<T, Error>>) -> (Vec<T>, String)
where
    T: std::fmt::Debug,
{
    let mut before = Vec::new();
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| results.next())) {
            Ok(Some(result)) => before.push(result.unwrap()),
            Ok(None) => panic!("ended without the input's panic after {before:?}"),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return (before, message);
            }
        }
    }
}

/// Python's imap over an input that raises at item k: the k results before
/// it, then the exception, then the end. Here the panic resumes in the
/// caller's `next()` at that position, despite the read-ahead.
#[test]
fn an_input_that_panics_at_item_k_yields_the_k_results_then_the_panic_then_ends() {
    let pool = Pool::new(2).unwrap();
    let input = || {
        (0..100u64).inspect(|&x| {
            if x == 37 {
                panic!("input item {x} is broken");
            }
        })
    };
    let five = || MapOptions::new().chunksize(5);
    let expected: Vec<u64> = (0..37).map(|x| x * x).collect();

    let mut ordered = imap_square_pid_with(&pool, input(), five());
    let (before, message) = until_panic(&mut ordered);
    assert_eq!(message, "input item 37 is broken");
    assert_eq!(before.iter().map(|r| r.0).collect::<Vec<_>>(), expected);
    assert!(ordered.next().is_none(), "it ends after the panic");
    assert!(ordered.next().is_none());

    let mut unordered = imap_unordered_square_pid_with(&pool, input(), five());
    let (before, message) = until_panic(&mut unordered);
    assert_eq!(message, "input item 37 is broken");
    let mut squares: Vec<u64> = before.iter().map(|r| r.0).collect();
    squares.sort();
    assert_eq!(squares, expected);
    assert!(unordered.next().is_none());

    // At the very first item: the panic comes first, then the end.
    let mut first = imap_square_pid(&pool, (0..3u64).map(|_| -> u64 { panic!("no items") }));
    let (before, message) = until_panic(&mut first);
    assert!(before.is_empty());
    assert_eq!(message, "no items");
    assert!(first.next().is_none());
}

/// A slow stream (a line every 300 ms, say): each result is yielded once
/// its chunk is back, without reading further ahead than the next item,
/// not once the window (two chunks per worker) is full of input. (An input
/// that waits for the imap's own results still cannot be read: the imap
/// reads its input on the thread that reads it.)
#[test]
fn a_slow_stream_s_results_come_without_reading_the_window_full() {
    let pool = Pool::new(2).unwrap();
    // While a result is not back, the imap reads the next line (it waits
    // for it): a result slower than two lines comes after one more line.
    // On a machine that slow (a result took over 600 ms), the stream runs
    // again, each time twice as slow. An imap that read the window full
    // first would read item k + 4 before result k at any pace.
    let mut late = Vec::new();
    for pace_ms in [300, 600, 1200, 2400, 4800] {
        match slow_stream(&pool, Duration::from_millis(pace_ms)) {
            Ok(()) => return,
            Err(e) => late.push(format!("a line every {pace_ms} ms: {e}")),
        }
    }
    panic!("{late:#?}");
}

/// Six lines, one every `pace`, squared by an imap of chunksize 1: each
/// result is its item's; `Err` if a result came after more lines were read
/// than its own, the next one (read while it was on its way back), and one
/// more (should it be slow).
fn slow_stream(pool: &Pool, pace: Duration) -> Result<(), String> {
    let pulled = std::sync::Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let producer = std::thread::spawn(move || {
        for i in 0..6u64 {
            std::thread::sleep(pace);
            tx.send(i).unwrap();
        }
    });
    let counted = {
        let pulled = pulled.clone();
        rx.into_iter().inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    };
    let results = imap_square_pid_with(pool, counted, MapOptions::new().chunksize(1));
    let mut late = None;
    for (k, r) in results.enumerate() {
        let (square, _) = r.unwrap();
        assert_eq!(square, (k * k) as u64);
        let read = pulled.load(Ordering::SeqCst);
        // Reading the window full would have read k + 4.
        if read > (k + 3).min(6) && late.is_none() {
            late = Some(format!("result {k} came after {read} items were read"));
        }
    }
    producer.join().unwrap();
    late.map_or(Ok(()), Err)
}

/// `next_timeout` (Python's `next(timeout)`): a result not ready in time is
/// a `WaitTimeout`, and nothing is lost: it comes later, in its place.
#[test]
fn next_timeout_waits_at_most_its_timeout_and_loses_nothing() {
    // (Each map's item 0 holds a worker until the gate opens.)
    let pool = Pool::new(3).unwrap();
    let one = MapOptions::new().chunksize(1);
    let gate = support::Scratch::temp("imap-next");
    let items = (0..4).map(|x| (x, gate.display().to_string()));
    let mut ordered = imap_gated_zero_with(&pool, items.clone(), one);
    let started = std::time::Instant::now();
    let early = ordered.next_timeout(std::time::Duration::from_millis(200));
    let waited = started.elapsed();
    assert!(
        matches!(&early, Some(Err(Error::WaitTimeout { task, .. })) if task.ends_with("gated_zero")),
        "{early:?}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(200),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    // In completion order, the items after 0 come within the timeout.
    let mut unordered = imap_unordered_gated_zero_with(&pool, items, one);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let next = unordered.next_timeout(std::time::Duration::from_secs(60));
        seen.push(next.unwrap().unwrap());
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 3]);
    let held = unordered.next_timeout(std::time::Duration::from_millis(50));
    assert!(
        matches!(held, Some(Err(Error::WaitTimeout { .. }))),
        "{held:?}"
    );
    std::fs::write(&gate, b"").unwrap();
    let long = std::time::Duration::from_secs(60);
    let rest: Vec<u64> = std::iter::from_fn(|| ordered.next_timeout(long))
        .map(Result::unwrap)
        .collect();
    let last = unordered.next_timeout(long).unwrap().unwrap();
    assert_eq!(rest, [0, 1, 2, 3]);
    assert_eq!(last, 0);
    assert!(unordered.next_timeout(long).is_none());
    assert!(unordered.next().is_none());
}

/// Polling with a tiny timeout over a long map yields every result once, in
/// order, however many of the polls time out.
#[test]
fn polling_next_timeout_yields_every_result_once() {
    let pool = Pool::new(2).unwrap();
    let mut results = imap_square_pid_with(&pool, 0..2000u64, MapOptions::new().chunksize(7));
    let mut got = Vec::new();
    while let Some(r) = results.next_timeout(std::time::Duration::from_micros(1)) {
        match r {
            Ok((square, _)) => got.push(square),
            Err(Error::WaitTimeout { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, (0..2000u64).map(|x| x * x).collect::<Vec<_>>());
}

/// Python's `imap` yields the first result once the first item is done
/// (its chunksize is 1). Ours begins with a chunk of one item, whatever
/// the default size it grows to: item 0 comes back while every other item
/// is still held (by a gate), over an input of known length (default
/// chunks of 5 here) and of unknown length (16).
#[test]
fn the_first_result_comes_back_after_the_first_item_alone() {
    let pool = Pool::new(2).unwrap();
    let gate = support::Scratch::temp("imap-first");
    let gate_arg = gate.to_string_lossy().into_owned();
    let known: Vec<(u64, String)> = (0..40).map(|x| (x, gate_arg.clone())).collect();
    let mut ordered = imap_all_but_zero_gated(&pool, known.clone());
    let first = ordered.next_timeout(Duration::from_secs(10));
    // The gate still shut: nothing else came back.
    let second = ordered.next_timeout(Duration::from_millis(50));
    // Opened before any check, so that a failing one does not wait out
    // the gated items.
    std::fs::write(&gate, b"").unwrap();
    assert!(matches!(first, Some(Ok(0))), "{first:?}");
    assert!(
        matches!(second, Some(Err(Error::WaitTimeout { .. }))),
        "{second:?}"
    );
    let rest: Vec<u64> = ordered.map(Result::unwrap).collect();
    assert_eq!(rest, (1..40).collect::<Vec<u64>>());
    std::fs::remove_file(&gate).unwrap();

    let unknown = known.into_iter().filter(|_| true);
    let mut unordered = imap_unordered_all_but_zero_gated(&pool, unknown);
    let first = unordered.next_timeout(Duration::from_secs(10));
    std::fs::write(&gate, b"").unwrap();
    assert!(matches!(first, Some(Ok(0))), "{first:?}");
    let mut rest: Vec<u64> = unordered.map(Result::unwrap).collect();
    rest.sort_unstable();
    assert_eq!(rest, (1..40).collect::<Vec<u64>>());
    std::fs::remove_file(&gate).unwrap();
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

/// An iterator over a `'static` input that outlives its caller's pool
/// handle (issue 13: "make them `Send` whenever their input iterator is",
/// as a Python `imap` iterator is handed to any thread): it holds a handle
/// of its own, so it can be returned from the function that made the pool,
/// moved to a thread spawned with `std::thread::spawn`, and read there
/// after the caller dropped its handle.
#[test]
fn an_imap_outlives_the_callers_pool_handle_and_moves_to_a_spawned_thread() {
    fn squares_of_a_pool_of_its_own() -> procpool::Imap<'static, (u64, u32), impl Iterator + Send> {
        let pool = Pool::new(2).unwrap();
        imap_square_pid(&pool, 0..20)
    }
    let returned: Vec<u64> = squares_of_a_pool_of_its_own()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(returned, (0..20).map(|x| x * x).collect::<Vec<_>>());

    let pool = Pool::new(2).unwrap();
    let ordered = imap_square_pid(&pool, 0..20);
    let unordered = imap_unordered_square_pid(&pool, 0..20);
    assert_send_static(&ordered);
    assert_send_static(&unordered);
    drop(pool);
    let ordered = std::thread::spawn(move || ordered.map(|r| r.unwrap().0).collect::<Vec<_>>());
    let unordered = std::thread::spawn(move || {
        let mut all: Vec<u64> = unordered.map(|r| r.unwrap().0).collect();
        all.sort_unstable();
        all
    });
    let expected: Vec<u64> = (0..20).map(|x| x * x).collect();
    assert_eq!(ordered.join().unwrap(), expected);
    assert_eq!(unordered.join().unwrap(), expected);
    support::assert_no_children();
}
