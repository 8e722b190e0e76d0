//! Map chunks pipelined like quick calls (a task seen to run quickly, every
//! worker busy): each item runs once, and its failure (a panic, a timeout,
//! its worker's death) stays with its chunk; cancels, `close_and_cancel`,
//! `max_tasks_per_child` and a dropped `imap` lose nothing and never hang;
//! and a batch stays within its time budget: a chunk counts as its items.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use procpool::{pool_task, CancelOutcome, Error, MapOptions, Pool};

procpool::enable_test_support!();

/// Leaves a marker file `dir/x` as it starts (panicking if one is there:
/// the item ran before), then sleeps `nap_ms` (less once the file
/// `<dir>.gate` exists); aborts its worker when `die`, panics when
/// `panic`. Returns the worker's pid.
#[pool_task]
fn mark(dir: String, x: u64, nap_ms: u64, die: bool, panic: bool) -> u32 {
    let path = Path::new(&dir).join(x.to_string());
    if let Err(e) = std::fs::File::create_new(&path) {
        panic!("item {x} ran twice ({e})");
    }
    if die {
        std::process::abort();
    }
    if panic {
        panic!("item {x} panics");
    }
    let end = Instant::now() + Duration::from_millis(nap_ms);
    while Instant::now() < end && !Path::new(&format!("{dir}.gate")).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::process::id()
}

/// Sleeps `ms`; never called quickly, so never batched.
#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Spins for `us` microseconds (a CPU-bound item); returns the pid.
#[pool_task]
fn spin(us: u64) -> u32 {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    std::process::id()
}

type Item = (String, u64, u64, bool, bool);

fn text(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

/// How many pipelined batches the slots have logged so far.
fn pipelined_batches() -> usize {
    support::capture_log()
        .lines_with("calls pipelined to worker")
        .len()
}

/// Rounds of a test that must see a batch pipelined to exercise what its
/// name says. A slot pipelines chunks only while its mean time per item
/// is under 1 ms, and chunks of several items only if two of them fit its
/// 2 ms budget (under 250 µs an item for chunks of 4): on a loaded machine
/// a round may see none pipelined (two such tests failed so in 2 of 10
/// runs, on one CPU beside four busy loops). `round(attempt)` checks
/// its outcomes and says whether a batch was pipelined (and, in a test of
/// several rounds, whether it ran them all); rounds run until one was (20
/// at most). (This binary does not count every call as quick, the test
/// hook `procpool::__private::treat_pool_calls_as_quick`, which holds for
/// all its tests: `chunks_of_many_quick_items_are_not_pipelined_behind_each_other`
/// is about the 2 ms budget, and with calls counted as taking no time only
/// the cap of 1024 calls a batch would keep its chunks of 1000 apart.)
fn until_pipelined(what: &str, mut round: impl FnMut(usize) -> bool) {
    for attempt in 0..20 {
        if round(attempt) {
            return;
        }
    }
    panic!("{what}: no batch was pipelined in 20 rounds");
}

/// Makes every slot of `pool` know `mark` as a quick task (so it batches
/// it), with markers in a directory of their own.
fn warm_up(pool: &Pool) {
    let dir = support::marker_dir("pm", "warm");
    let pending: Vec<_> = (0..400)
        .map(|x| apply_async_mark(pool, text(&dir), x, 0, false, false))
        .collect();
    for r in pending {
        r.get().unwrap();
    }
}

/// Items 0..n of `mark` in `dir`; `f(x)` says (nap, die, panic).
fn items(dir: &Path, n: u64, f: impl Fn(u64) -> (u64, bool, bool)) -> Vec<Item> {
    (0..n)
        .map(|x| {
            let (nap, die, panic) = f(x);
            (text(dir), x, nap, die, panic)
        })
        .collect()
}

fn markers(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Waits until `dir` holds at least `n` markers (at most 30 s).
fn wait_markers(dir: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while markers(dir) < n {
        assert!(Instant::now() < deadline, "items never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A blocker that keeps the pool's (one) worker busy for `ms`, so that the
/// chunks queued meanwhile go out in batches.
fn block(pool: &Pool, ms: u64) -> procpool::AsyncResult<u32> {
    apply_async_nap(&pool.with_task_timeout(None), ms)
}

#[test]
fn a_cancelled_map_async_with_pipelined_chunks_runs_nothing_after() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let batches = pipelined_batches();
    // 4 rounds, and more until a batch was pipelined.
    until_pipelined("map_async", |round| {
        let dir = support::marker_dir("pm", &format!("cancel{round}"));
        let blocker = block(&pool, 200);
        // Item 20 runs long: the chunks behind it wait pipelined with it.
        let r = map_async_mark_with(
            &pool,
            items(&dir, 400, |x| {
                (if x == 20 { 60_000 } else { 0 }, false, false)
            }),
            MapOptions::new().chunksize(1 + round % 2),
        );
        blocker.get().unwrap();
        wait_markers(&dir, 21);
        assert_eq!(r.cancel(), CancelOutcome::Stopped);
        assert!(
            matches!(r.get(), Err(Error::Cancelled { .. })),
            "round {round}"
        );
        let ran = markers(&dir);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            markers(&dir),
            ran,
            "items ran after their map was cancelled"
        );
        // The pool carries on.
        assert!(apply_nap(&pool, 0).is_ok());
        round >= 3 && pipelined_batches() > batches
    });
}

#[test]
fn a_cancelled_imap_with_pipelined_chunks_yields_each_item_once_then_cancelled() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let batches = pipelined_batches();
    // Chunks of 1, then 3, and more rounds of both until a batch was
    // pipelined.
    until_pipelined("imap", |round| {
        let size = [1, 3][round % 2];
        let dir = support::marker_dir("pm", &format!("icancel{size}-{round}"));
        let blocker = block(&pool, 100);
        let mut it = imap_mark_with(
            &pool,
            items(&dir, 10_000, |x| {
                (if x == 30 { 60_000 } else { 0 }, false, false)
            }),
            MapOptions::new().chunksize(size),
        );
        blocker.get().unwrap();
        let mut got = 0;
        for _ in 0..30 {
            it.next().unwrap().unwrap();
            got += 1;
        }
        // Queues the chunk of item 30 (if it was not yet), which then runs.
        let early = it.next_timeout(Duration::from_millis(50));
        assert!(
            matches!(early, Some(Err(Error::WaitTimeout { .. }))),
            "{early:?}"
        );
        wait_markers(&dir, 31);
        assert_eq!(it.cancel(), CancelOutcome::Stopped);
        let rest: Vec<_> = it.collect();
        let ok = rest.iter().filter(|r| r.is_ok()).count();
        assert!(
            matches!(rest.last(), Some(Err(Error::Cancelled { .. }))),
            "{:?}",
            rest.last()
        );
        assert_eq!(rest.len(), ok + 1, "only one Cancelled: {rest:?}");
        assert!(got + ok <= markers(&dir));
        let ran = markers(&dir);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(markers(&dir), ran, "items ran after the imap was cancelled");
        assert!(apply_nap(&pool, 0).is_ok());
        round >= 1 && pipelined_batches() > batches
    });
}

#[test]
fn close_and_cancel_with_pipelined_chunks_neither_hangs_nor_reruns() {
    let _serial = support::serial();
    procpool::init();
    // A pool of its own each round (it is closed).
    until_pipelined("close_and_cancel", |round| {
        let pool = Pool::new(1).unwrap();
        warm_up(&pool);
        let batches = pipelined_batches();
        let dir = support::marker_dir("pm", &format!("cac{round}"));
        // Item 10 runs until the cancel is done, however slow the machine:
        // the items behind it are still to run then.
        let gate = support::Scratch::new(format!("{}.gate", text(&dir)).into());
        let blocker = block(&pool, 200);
        let r = map_async_mark_with(
            &pool,
            items(&dir, 2000, |x| {
                (if x == 10 { 60_000 } else { 0 }, false, false)
            }),
            MapOptions::new().chunksize(1),
        );
        blocker.get().unwrap();
        wait_markers(&dir, 11);
        let cancelled = pool.close_and_cancel();
        std::fs::write(&*gate, b"").unwrap();
        assert!(cancelled > 0);
        pool.join();
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
        pipelined_batches() > batches
    });
}

/// Runs `mark` over 0..200 on a one-worker pool with a time limit of
/// 500 ms, item 100 sleeping far past it and the others quick, in chunks of `size` pipelined
/// behind one another; returns each item's outcome (no item ran twice),
/// and whether a batch was pipelined.
fn timeout_round(size: usize, attempt: usize) -> (Vec<Result<u32, Error>>, bool) {
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    warm_up(&pool);
    let batches = pipelined_batches();
    let dir = support::marker_dir("pm", &format!("timeout{size}-{attempt}"));
    let blocker = block(&pool, 200);
    let out: Vec<_> = imap_mark_with(
        &pool,
        // The others quick (no nap), so that the slot keeps batching them
        // all along: items of 2 ms raised its mean past the 1 ms a batched
        // task may take after a few chunks, leaving one chance to batch,
        // at the blocker's end, which a loaded machine could miss.
        items(&dir, 200, |x| {
            (if x == 100 { 30_000 } else { 0 }, false, false)
        }),
        MapOptions::new().chunksize(size),
    )
    .collect();
    blocker.get().unwrap();
    assert_eq!(out.len(), 200);
    // The items behind item 100 in its chunk never started.
    let unstarted = size - 1 - 100 % size;
    assert_eq!(markers(&dir), 200 - unstarted, "an item never ran");
    (out, pipelined_batches() > batches)
}

#[test]
fn a_timeout_in_pipelined_map_chunks_fails_only_its_chunk() {
    let _serial = support::serial();
    procpool::init();
    for size in [1usize, 4] {
        until_pipelined(&format!("size {size}"), |attempt| {
            let (out, pipelined) = timeout_round(size, attempt);
            let first = 100 / size * size;
            for (x, r) in out.into_iter().enumerate() {
                let in_slow_chunk = (first..first + size).contains(&x);
                match r {
                    Ok(_) => assert!(!in_slow_chunk, "size {size}: item {x} succeeded"),
                    Err(Error::Timeout { .. }) => {
                        assert!(in_slow_chunk, "size {size}: item {x} timed out")
                    }
                    Err(e) => panic!("size {size}: item {x}: unexpected {e:?}"),
                }
            }
            pipelined
        });
    }
}

#[test]
fn max_tasks_per_child_with_pipelined_chunks_loses_and_reruns_nothing() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(7)
        .build()
        .unwrap();
    warm_up(&pool);
    let batches = pipelined_batches();
    // Chunks of 1, then 2, and more rounds of both until a batch was
    // pipelined.
    until_pipelined("max_tasks_per_child", |round| {
        let size = [1, 2][round % 2];
        let dir = support::marker_dir("pm", &format!("maxtasks{size}-{round}"));
        let b1 = block(&pool, 100);
        let b2 = block(&pool, 100);
        let out = map_mark_with(
            &pool,
            items(&dir, 600, |_| (0, false, false)),
            MapOptions::new().chunksize(size),
        )
        .unwrap();
        b1.get().unwrap();
        b2.get().unwrap();
        assert_eq!(out.len(), 600);
        assert_eq!(markers(&dir), 600);
        let mut per_pid: HashMap<u32, usize> = HashMap::new();
        for pid in out {
            *per_pid.entry(pid).or_default() += 1;
        }
        for (pid, n) in per_pid {
            // A chunk counts as one task.
            assert!(
                n <= 7 * size,
                "worker {pid} ran {n} items in chunks of {size}"
            );
        }
        round >= 1 && pipelined_batches() > batches
    });
}

#[test]
fn a_worker_dying_in_a_pipelined_chunk_of_several_items_fails_that_chunk() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    until_pipelined("chunks of 4", |attempt| {
        let batches = pipelined_batches();
        let dir = support::marker_dir("pm", &format!("die{attempt}"));
        let blocker = block(&pool, 100);
        let out: Vec<_> = imap_mark_with(
            &pool,
            items(&dir, 300, |x| (0, x == 150, false)),
            MapOptions::new().chunksize(4),
        )
        .collect();
        blocker.get().unwrap();
        for (x, r) in out.into_iter().enumerate() {
            match r {
                Err(Error::WorkerDied { .. }) => assert!((148..152).contains(&x), "item {x} died"),
                Ok(_) => assert!(
                    !(148..152).contains(&x),
                    "item {x} of the dead chunk succeeded"
                ),
                Err(e) => panic!("item {x}: unexpected {e:?}"),
            }
        }
        // Items 148..150 ran before the abort; 151 never did.
        assert_eq!(markers(&dir), 299);
        pipelined_batches() > batches
    });
}

#[test]
fn a_panic_in_pipelined_chunks_fails_only_its_item() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    for size in [1usize, 3] {
        until_pipelined(&format!("size {size}"), |attempt| {
            let batches = pipelined_batches();
            let dir = support::marker_dir("pm", &format!("panic{size}-{attempt}"));
            let blocker = block(&pool, 100);
            let out: Vec<_> = imap_mark_with(
                &pool,
                items(&dir, 300, |x| (0, false, x % 50 == 7)),
                MapOptions::new().chunksize(size),
            )
            .collect();
            blocker.get().unwrap();
            let mut pids = HashSet::new();
            for (x, r) in out.into_iter().enumerate() {
                match r {
                    Err(Error::Panic { message, .. }) => {
                        assert_eq!(x % 50, 7, "item {x}: {message}");
                        assert!(message.contains("panics"), "{message}");
                    }
                    Ok(pid) => {
                        assert_ne!(x % 50, 7);
                        pids.insert(pid);
                    }
                    Err(e) => panic!("item {x}: unexpected {e:?}"),
                }
            }
            assert_eq!(pids.len(), 1, "the worker did not survive the panics");
            assert_eq!(markers(&dir), 300);
            pipelined_batches() > batches
        });
    }
}

#[test]
fn an_imap_dropped_half_way_loses_nothing_of_later_work() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(1).unwrap();
    warm_up(&pool);
    let dir = support::marker_dir("pm", "drop");
    let blocker = block(&pool, 100);
    let mut it = imap_mark_with(
        &pool,
        items(&dir, 100_000, |_| (0, false, false)),
        MapOptions::new().chunksize(1),
    );
    blocker.get().unwrap();
    for _ in 0..500 {
        it.next().unwrap().unwrap();
    }
    drop(it);
    // The pool serves the next map at once and in full.
    let dir2 = support::marker_dir("pm", "drop2");
    let out = map_mark_with(
        &pool,
        items(&dir2, 500, |_| (0, false, false)),
        MapOptions::new().chunksize(1),
    )
    .unwrap();
    assert_eq!(out.len(), 500);
    pool.close();
    pool.join();
    assert!(markers(&dir) < 1000, "the dropped imap kept feeding");
}

#[test]
fn apply_async_and_maps_from_two_threads_mix_in_batches() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(2).unwrap();
    warm_up(&pool);
    let dir = support::marker_dir("pm", "mix");
    let sub = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (a, m, i) = (sub("a"), sub("m"), sub("i"));
    std::thread::scope(|s| {
        s.spawn(|| {
            let pending: Vec<_> = (0..3000)
                .map(|x| apply_async_mark(&pool, text(&a), x, 0, false, false))
                .collect();
            for r in pending {
                r.get().unwrap();
            }
        });
        s.spawn(|| {
            let out = map_mark_with(
                &pool,
                items(&m, 3000, |_| (0, false, false)),
                MapOptions::new().chunksize(1),
            )
            .unwrap();
            assert_eq!(out.len(), 3000);
        });
        s.spawn(|| {
            let n = imap_unordered_mark_with(
                &pool,
                items(&i, 3000, |x| (0, false, x == 1234)),
                MapOptions::new().chunksize(3),
            )
            .filter(|r| r.is_ok())
            .count();
            assert_eq!(n, 2999);
        });
    });
    assert_eq!((markers(&a), markers(&m), markers(&i)), (3000, 3000, 3000));
}

/// A batch holds about 2 ms of expected work: a chunk of many quick items
/// is as many quick calls, so chunks of 1000 items of a 100 µs task (each
/// 100 ms) are never pipelined behind one another, even while every worker
/// is busy. Else the one worker that takes them runs the whole map while
/// the other, freed meanwhile, has nothing to do.
#[test]
fn chunks_of_many_quick_items_are_not_pipelined_behind_each_other() {
    let _serial = support::serial();
    procpool::init();
    let pool = Pool::new(2).unwrap();
    // Both slots know `spin(100)` as a quick task (about 100 µs a call).
    let warm: Vec<_> = (0..600).map(|_| apply_async_spin(&pool, 100)).collect();
    let pids: HashSet<u32> = warm.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    // One worker is busy for 400 ms, the other for 30 ms: the map's chunks
    // queue meanwhile, and the second worker takes the first when it is free.
    let long = apply_async_nap(&pool, 400);
    let short = apply_async_nap(&pool, 30);
    let map = map_async_spin_with(&pool, vec![100u64; 8000], MapOptions::new().chunksize(1000));
    let out = map.get().unwrap();
    let (long, short) = (long.get().unwrap(), short.get().unwrap());
    assert_ne!(long, short);
    let ran: HashSet<u32> = out.into_iter().collect();
    assert!(
        ran.contains(&long),
        "every chunk of the map ran on worker {short}, batched behind its first chunk, \
         while worker {long} was free from 400 ms on"
    );
}
