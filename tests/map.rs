//! `map_<fn>`, `map_<fn>_with` and `map_async_<fn>`: results in input
//! order, chunking, starmap, reference arguments, errors.

use procpool::{pool_task, Error, MapOptions, Pool};

procpool::enable_test_support!();

#[path = "helpers/gate.rs"]
mod gate;
mod support;

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn square_pid(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

#[pool_task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[pool_task]
fn count(words: &[String], needle: &str) -> usize {
    words.iter().filter(|w| *w == needle).count()
}

#[pool_task]
fn fragile(x: u32) -> u32 {
    if x == 50 {
        panic!("item {x} is bad");
    }
    x + 1
}

#[pool_task]
fn forty_two() -> u8 {
    42
}

/// Kills its worker (SIGABRT) on the item equal to `bad`.
#[pool_task]
fn exit_on(x: u32, bad: u32) -> u32 {
    if x == bad {
        std::process::abort();
    }
    x
}

fn squares(n: u64) -> Vec<u64> {
    (0..n).map(|x| x * x).collect()
}

#[test]
fn map_returns_results_in_input_order_from_workers() {
    let pool = Pool::new(2).unwrap();
    let out = map_square_pid(&pool, 0..1000).unwrap();
    assert_eq!(out.len(), 1000);
    for (x, (sq, pid)) in out.iter().enumerate() {
        assert_eq!(*sq, (x * x) as u64);
        assert_ne!(*pid, std::process::id(), "ran in the caller");
    }
    assert_eq!(map_square(&pool, vec![3, 1, 2]).unwrap(), [9, 1, 4]);
}

#[test]
fn chunksize_one_default_and_larger_than_input_agree() {
    let pool = Pool::new(2).unwrap();
    for options in [
        MapOptions::new(),
        MapOptions::new().chunksize(1),
        MapOptions::new().chunksize(7),
        MapOptions::new().chunksize(10_000),
    ] {
        assert_eq!(
            map_square_with(&pool, 0..500, options).unwrap(),
            squares(500)
        );
        let r = map_async_square_with(&pool, 0..500, options);
        assert_eq!(r.get().unwrap(), squares(500));
    }
}

#[test]
fn input_of_unknown_length_is_collected_first() {
    let pool = Pool::new(2).unwrap();
    let odd = (0..100u64).filter(|x| x % 2 == 1);
    let expected: Vec<u64> = (0..100u64).filter(|x| x % 2 == 1).map(|x| x * x).collect();
    assert_eq!(map_square(&pool, odd).unwrap(), expected);
}

/// An input whose results could never fit in memory (2⁶⁰ of them) is a
/// typed error at once, before any item runs, not an abort of the caller.
#[test]
fn an_input_whose_results_cannot_fit_in_memory_is_a_typed_error() {
    let pool = Pool::new(2).unwrap();
    match map_square(&pool, 0..(1u64 << 60)) {
        Err(Error::Io { context, source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::OutOfMemory);
            assert!(context.contains("map::square"), "{context}");
        }
        other => panic!("expected an Io error, got {:?}", other.map(|v| v.len())),
    }
    assert_eq!(map_square(&pool, 0..4).unwrap(), vec![0, 1, 4, 9]);
}

#[test]
fn empty_input_gives_empty_output() {
    let pool = Pool::new(1).unwrap();
    assert!(map_square(&pool, Vec::new()).unwrap().is_empty());
    assert!(map_async_square(&pool, 0..0).get().unwrap().is_empty());
    assert!(map_add(&pool, Vec::new()).unwrap().is_empty());
}

#[test]
fn several_arguments_take_tuples_like_starmap() {
    let pool = Pool::new(2).unwrap();
    let pairs: Vec<(i64, i64)> = (0..300).map(|i| (i, -2 * i)).collect();
    let expected: Vec<i64> = (0..300).map(|i| -i).collect();
    assert_eq!(map_add(&pool, pairs.clone()).unwrap(), expected);
    assert_eq!(map_async_add(&pool, pairs).get().unwrap(), expected);
}

/// Python's `starmap` and `starmap_async` by name: each item is a tuple of
/// one call's arguments, `(x,)` for a task of one argument.
#[test]
fn starmap_takes_a_tuple_of_arguments_per_item() {
    let pool = Pool::new(2).unwrap();
    let pairs: Vec<(i64, i64)> = (0..300).map(|i| (i, -2 * i)).collect();
    let expected: Vec<i64> = (0..300).map(|i| -i).collect();
    assert_eq!(starmap_add(&pool, pairs.clone()).unwrap(), expected);
    assert_eq!(
        starmap_async_add(&pool, pairs.clone()).get().unwrap(),
        expected
    );
    let options = MapOptions::new().chunksize(7);
    assert_eq!(
        starmap_add_with(&pool, pairs.clone(), options).unwrap(),
        expected
    );
    assert_eq!(
        starmap_async_add_with(&pool, pairs, options).get().unwrap(),
        expected
    );
    assert_eq!(starmap_square(&pool, [(2,), (3,)]).unwrap(), [4, 9]);
    assert_eq!(starmap_async_square(&pool, vec![(4,)]).get().unwrap(), [16]);
    assert_eq!(starmap_forty_two(&pool, [(), ()]).unwrap(), [42, 42]);
    let words: Vec<String> = ["a", "b", "a"].map(String::from).to_vec();
    let items = [(&words, "a"), (&words, "b")];
    assert_eq!(starmap_count(&pool, items).unwrap(), [2, 1]);
    assert!(starmap_square(&pool, Vec::<(u64,)>::new())
        .unwrap()
        .is_empty());
    match starmap_fragile(&pool, (45..55).map(|x| (x,))) {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "item 50 is bad"),
        other => panic!("expected item 50's panic, got {other:?}"),
    }
}

#[test]
fn reference_arguments_take_owned_values() {
    let pool = Pool::new(2).unwrap();
    let words: Vec<String> = ["a", "b", "a"].map(String::from).to_vec();
    let items = vec![
        (words.clone(), "a".to_string()),
        (words.clone(), "b".to_string()),
        (Vec::new(), "a".to_string()),
    ];
    assert_eq!(map_count(&pool, items).unwrap(), [2, 1, 0]);
}

#[test]
fn tasks_without_arguments_take_unit_items() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(map_forty_two(&pool, vec![(); 5]).unwrap(), [42; 5]);
}

#[test]
fn a_panicking_item_makes_map_fail_with_its_panic() {
    let pool = Pool::new(2).unwrap();
    for options in [MapOptions::new(), MapOptions::new().chunksize(1)] {
        match map_fragile_with(&pool, 0..100, options) {
            Err(Error::Panic { message, .. }) => assert_eq!(message, "item 50 is bad"),
            other => panic!("expected the item's panic, got {other:?}"),
        }
        match map_async_fragile_with(&pool, 0..100, options).get() {
            Err(Error::Panic { message, .. }) => assert_eq!(message, "item 50 is bad"),
            other => panic!("expected the item's panic, got {other:?}"),
        }
    }
    // The workers are still in service.
    assert_eq!(map_fragile(&pool, 0..3).unwrap(), [1, 2, 3]);
}

#[test]
fn a_worker_dying_mid_chunk_fails_the_map_with_worker_died() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<(u32, u32)> = (0..40).map(|x| (x, 17)).collect();
    match map_exit_on(&pool, items.clone()) {
        Err(Error::WorkerDied { pid, .. }) => assert_ne!(pid, std::process::id()),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(matches!(
        map_async_exit_on(&pool, items).get(),
        Err(Error::WorkerDied { .. })
    ));
    // The pool replaced the worker.
    let fine: Vec<(u32, u32)> = (0..10).map(|x| (x, 1000)).collect();
    assert_eq!(
        map_exit_on(&pool, fine).unwrap(),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn chunksize_zero_is_a_config_error() {
    let pool = Pool::new(1).unwrap();
    let zero = MapOptions::new().chunksize(0);
    assert!(matches!(
        map_square_with(&pool, 0..3, zero),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        map_async_square_with(&pool, 0..3, zero).get(),
        Err(Error::Config { .. })
    ));
}

#[test]
fn map_after_close_fails_with_pool_closed() {
    let pool = Pool::new(1).unwrap();
    pool.close();
    assert!(matches!(
        map_square(&pool, 0..10),
        Err(Error::PoolClosed { .. })
    ));
}

#[pool_task]
fn byte_len(data: Vec<u8>) -> usize {
    data.len()
}

#[test]
fn chunks_of_large_items_stay_under_the_frame_limit() {
    let pool = Pool::builder()
        .processes(2)
        .max_frame_bytes(16 << 10)
        .build()
        .unwrap();
    // 40 items of 3 KiB in one requested chunk would be a 120 KiB frame;
    // chunks end early at a quarter of the 16 KiB limit instead.
    let items: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 3 << 10]).collect();
    let one_chunk = MapOptions::new().chunksize(40);
    assert_eq!(
        map_byte_len_with(&pool, items.clone(), one_chunk).unwrap(),
        [3 << 10; 40]
    );
    let lens: Vec<usize> = imap_byte_len_with(&pool, items, one_chunk)
        .map(Result::unwrap)
        .collect();
    assert_eq!(lens, [3 << 10; 40]);
    // A single item over the limit still fails alone, with a typed error.
    let huge = vec![vec![0u8; 64 << 10], vec![1u8; 10]];
    let out: Vec<_> = imap_byte_len_with(&pool, huge, MapOptions::new().chunksize(1)).collect();
    assert!(
        matches!(out[0], Err(Error::FrameTooLarge { .. })),
        "{out:?}"
    );
    assert_eq!(out[1].as_ref().unwrap(), &10);
}

/// An item that fits a frame alone, after small ones that nearly fill a
/// chunk, begins the next chunk: it and its neighbours all work, as they
/// do through `apply`. An item too large for any frame fails alone.
#[test]
fn an_item_that_fits_a_frame_alone_never_fails_with_its_neighbours() {
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    let mut items = vec![vec![1u8; 5000]; 20];
    items[7] = vec![2u8; 60 << 10];
    let lens: Vec<usize> = items.iter().map(Vec::len).collect();
    for item in &items {
        assert_eq!(apply_byte_len(&pool, item.clone()).unwrap(), item.len());
    }
    for options in [MapOptions::new(), MapOptions::new().chunksize(4)] {
        assert_eq!(
            map_byte_len_with(&pool, items.clone(), options).unwrap(),
            lens
        );
        assert_eq!(
            map_async_byte_len_with(&pool, items.clone(), options)
                .get()
                .unwrap(),
            lens
        );
        let out: Vec<usize> = imap_byte_len_with(&pool, items.clone(), options)
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, lens);
        let mut out: Vec<usize> = imap_unordered_byte_len_with(&pool, items.clone(), options)
            .map(Result::unwrap)
            .collect();
        out.sort();
        let mut sorted = lens.clone();
        sorted.sort();
        assert_eq!(out, sorted);
    }
    let mut too_large = items.clone();
    too_large[7] = vec![3u8; 100 << 10];
    let out: Vec<_> =
        imap_byte_len_with(&pool, too_large, MapOptions::new().chunksize(4)).collect();
    for (i, r) in out.iter().enumerate() {
        match (i, r) {
            (7, Err(Error::FrameTooLarge { .. })) => {}
            (7, other) => panic!("item 7: {other:?}"),
            (i, r) => assert_eq!(r.as_ref().unwrap(), &5000, "item {i}"),
        }
    }
}

/// An item held back to begin the next chunk (see the test above) is
/// input not yet queued: an `imap` cancelled then ends with `Cancelled`
/// for it, as for input not read yet.
#[test]
fn an_imap_cancelled_with_an_item_held_for_its_next_chunk_ends_with_cancelled() {
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    // The one worker is held until item 1's chunk is queued: otherwise
    // item 0's chunk may be back before it is cut, and the imap yields item
    // 0 with item 1 still unread.
    let gate = gate::gate_path("held-item");
    let held = gate::apply_async_gated(&pool, gate.clone());
    // Chunks of at most 16 KiB: items 0 and 1 (10 KiB each) go apart, and
    // item 2 is read and held while item 1's chunk is cut; reading it says
    // so, and that chunk is queued before the imap looks for results.
    let (reading, read) = std::sync::mpsc::channel();
    let items = (0..3).map(move |i| {
        let _ = reading.send(i);
        vec![1u8; 10 << 10]
    });
    let mut it = imap_byte_len_with(&pool, items, MapOptions::new().chunksize(2));
    let it = std::thread::scope(|s| {
        let first = s.spawn(move || (it.next(), it));
        let sixty = std::time::Duration::from_secs(60);
        while read.recv_timeout(sixty).expect("item 2 is never read") != 2 {}
        gate::open(&gate);
        let (first, it) = first.join().unwrap();
        assert_eq!(first.unwrap().unwrap(), 10 << 10);
        it
    });
    held.get().unwrap();
    gate::remove(&gate);
    let mut it = it;
    // The one worker runs calls in order: once this call is back, item
    // 1's chunk is back too.
    assert_eq!(apply_byte_len(&pool, vec![0u8; 1]).unwrap(), 1);
    assert_eq!(it.cancel(), procpool::CancelOutcome::NotStarted);
    let rest: Vec<_> = it.collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(matches!(rest[0], Ok(len) if len == 10 << 10), "{rest:?}");
    assert!(
        matches!(rest.last(), Some(Err(Error::Cancelled { .. }))),
        "{rest:?}"
    );
}

/// Panics on items 10 and 90; item 10 only once item 90 has started (its
/// marker file `dir/90` exists) and had time to fail, so item 90 fails first.
#[pool_task]
fn late_first_failure(x: u32, dir: String) -> u32 {
    let marker = std::path::Path::new(&dir).join("90");
    if x == 90 {
        std::fs::write(&marker, b"").unwrap();
        panic!("item 90 is bad");
    }
    if x == 10 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !marker.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        panic!("item 10 is bad");
    }
    x
}

#[test]
fn map_returns_the_first_error_in_input_order_not_the_first_to_happen() {
    let pool = Pool::new(2).unwrap();
    let dir = support::Scratch::temp_dir("map-first");
    let items = (0..100u32).map(|x| (x, dir.to_str().unwrap().to_string()));
    let result = map_late_first_failure_with(&pool, items, MapOptions::new().chunksize(1));
    assert!(dir.join("90").exists(), "item 90 did not run");
    match result {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "item 10 is bad"),
        other => panic!("expected item 10's panic, got {other:?}"),
    }
}

/// Item 0 sleeps 1.5 s; every item answers 1 MiB.
#[pool_task]
fn late_first_wide(i: u32, pad: String) -> String {
    if i == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
    "r".repeat((1 << 20) + pad.len() % 2)
}

/// The chunks behind the first come back while it runs, 1 MiB of results
/// each, until the map holds more results back than it keeps early
/// (8 MiB) and stops queueing; the first one ends last, with nothing else
/// running. The map must then decode them all and queue the rest (it used
/// to wait for a reply with no chunk in flight: a hang). Large arguments
/// keep at most two chunks per worker in flight, as for any large items.
#[test]
fn a_first_chunk_that_ends_last_behind_many_large_results_does_not_stall_the_map() {
    let pool = Pool::new(2).unwrap();
    let pad = "p".repeat(100 << 10);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = pool.clone();
    std::thread::spawn(move || {
        let items = (0..40u32).map(|i| (i, pad.clone()));
        let _ = tx.send(map_late_first_wide_with(
            &handle,
            items,
            MapOptions::new().chunksize(1),
        ));
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the map stalled")
        .unwrap();
    assert_eq!(out.len(), 40);
    assert!(out.iter().all(|s| s.len() == 1 << 20));
}

#[pool_task]
fn always_panics(x: u64) -> u64 {
    panic!("item {x} always fails with a message of moderate length, as real ones have")
}

#[pool_task]
fn always_panics_text(s: String) -> String {
    panic!("item {s} always fails with a message of moderate length, as real ones have")
}

/// On a pool with a small frame limit, a chunk whose every item panics
/// gives each item its own `Panic` (the records of as many failures fit a
/// reply): it used to fail every item with `FrameTooLarge`.
#[test]
fn every_item_panicking_under_a_small_frame_limit_is_a_panic_each() {
    let pool = Pool::builder()
        .processes(2)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    all_panics(imap_always_panics(&pool, 0..20_000u64).collect(), 20_000);
    match map_always_panics(&pool, 0..20_000u64) {
        Err(Error::Panic { message, .. }) => assert!(message.contains("item 0 "), "{message}"),
        other => panic!("map: expected the first item's Panic, got {other:?}"),
    }
    // Items and results in the general form (strings) too.
    let words = (0..20_000).map(|i| i.to_string());
    all_panics(imap_always_panics_text(&pool, words).collect(), 20_000);
}

/// Checks that `results` holds `n` items, each an `Error::Panic`.
fn all_panics<T: std::fmt::Debug>(results: Vec<Result<T, Error>>, n: usize) {
    assert_eq!(results.len(), n);
    let not_panic: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r, Err(Error::Panic { .. })))
        .take(3)
        .collect();
    assert!(not_panic.is_empty(), "items not Panic: {not_panic:?}");
}

/// Python's `successful()` is true only when `get()` returns a value: a
/// `map_async` one of whose items panicked is not successful, though every
/// chunk came back (it reported `Some(true)`, then `get` failed).
#[test]
fn a_map_async_with_a_failed_item_is_not_successful() {
    let pool = Pool::new(2).unwrap();
    let r = map_async_fragile(&pool, 0..100);
    r.wait();
    assert!(r.ready());
    assert_eq!(r.successful(), Some(false));
    assert!(matches!(r.get(), Err(Error::Panic { .. })));
    let r = map_async_fragile(&pool, 0..10);
    r.wait();
    assert_eq!(r.successful(), Some(true));
    assert_eq!(r.get().unwrap(), (1..=10).collect::<Vec<u32>>());
}

/// `map_async` of such an input: the same typed error at once (as `map`),
/// not a call that never returns while it queues chunks without end, its
/// memory growing until the system runs out.
#[test]
fn map_async_of_an_input_whose_results_cannot_fit_in_memory_is_a_typed_error() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pool = Pool::new(2).unwrap();
        let r = map_async_square(&pool, 0..(1u64 << 60)).get();
        let _ = tx.send(r.map(|v| v.len()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(Err(Error::Io { context, source })) => {
            assert_eq!(source.kind(), std::io::ErrorKind::OutOfMemory);
            assert!(context.contains("map::square"), "{context}");
        }
        Ok(other) => panic!("expected an Io error, got {other:?}"),
        Err(_) => {
            // Stop it before it takes the machine's memory.
            eprintln!("map_async of 2^60 items did not return within 10 s; aborting");
            std::process::abort();
        }
    }
}
