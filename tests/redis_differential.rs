//! A differential audit of the distributed mode: each scenario runs, as
//! written, on a local `Pool` of two processes and on a `Pool` built with
//! `.redis(url)` whose one node runs two processes, and both must see the
//! same thing: results and their order, each failure's `Error` variant and
//! its fields and message, `AsyncResult` states, callbacks (how often,
//! with what, on which thread), what `cancel` answers, the pool after
//! `close` and `terminate`, what a task can read of where it runs, and the
//! caller's log events. Each scenario also asserts what it sees, so the two
//! cannot agree on a wrong answer. Where the README documents a difference
//! (a frame's length and the limit's edge, events of workers logged by the
//! node, a node stopping a cancelled call a moment after its result is
//! `Cancelled`), the documented behaviour is asserted instead.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use procpool::{Error, MapOptions, Pool, PoolBuilder};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// Runs `scenario` on a local pool of two processes, then on a pool
/// through a fresh Redis with one node of two processes (nothing claimed
/// ahead, so a call waits in Redis while both are busy, as a local one
/// waits in the queue), each pool built by `builder` from
/// `Pool::builder()`; asserts that both saw the same, and returns it.
fn both<T: Debug + PartialEq>(
    builder: impl Fn(PoolBuilder) -> PoolBuilder,
    scenario: impl Fn(&Pool) -> T,
) -> T {
    both_logged(builder, None, scenario)
}

/// [`both`], the node logging procpool's records to `node_log` if given.
fn both_logged<T: Debug + PartialEq>(
    builder: impl Fn(PoolBuilder) -> PoolBuilder,
    node_log: Option<&str>,
    scenario: impl Fn(&Pool) -> T,
) -> T {
    let local = {
        let pool = builder(Pool::builder().processes(2)).build().unwrap();
        let seen = scenario(&pool);
        pool.terminate();
        seen
    };
    let server = RedisServer::start();
    let mut options = vec![("processes", "2"), ("prefetch", "0")];
    options.extend(node_log.map(|file| ("log", file)));
    let _node = NodeProc::code(&server.url(), &options, &[]);
    let remote = {
        let pool = builder(Pool::builder().redis(&server.url()))
            .build()
            .unwrap();
        wait_for(Duration::from_secs(30), "the node's processes", || {
            pool.processes() == 2
        });
        let seen = scenario(&pool);
        pool.terminate();
        seen
    };
    assert_eq!(
        local, remote,
        "the local pool (left) and the Redis pool (right) differ"
    );
    local
}

fn same(b: PoolBuilder) -> PoolBuilder {
    b
}

/// An outcome as a user can compare it: the value, or the error's `Debug`
/// and `Display`, less what differs between any two runs (a dead worker's
/// pid, a backtrace).
fn norm<T: Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(Error::WorkerDied { task, status, .. }) => format!("WorkerDied({task}, {status})"),
        Err(Error::Panic {
            task,
            message,
            location,
            ..
        }) => format!("Panic({task}, {message:?}, {location})"),
        // `len` counts the frame as its transport carries it: the value
        // and a few bytes of header, which differ (see the README).
        Err(Error::FrameTooLarge { task, len, max }) if *len > 2 << 20 => {
            format!("FrameTooLarge({task}, over 2 MiB, max {max})")
        }
        Err(e) => format!("Err({e:?}) = {e}"),
    }
}

fn norms<T: Debug>(rs: &[Result<T, Error>]) -> Vec<String> {
    rs.iter().map(norm).collect()
}

/// The calls of one task, by `apply_<fn>` and by `apply_async_<fn>`, must
/// agree with each other too.
fn twice<T: Debug>(
    apply: impl Fn() -> Result<T, Error>,
    apply_async: impl Fn() -> Result<T, Error>,
) -> String {
    let (a, b) = (norm(&apply()), norm(&apply_async()));
    assert_eq!(a, b, "apply and apply_async differ");
    a
}

#[test]
fn a_calls_value_or_error_is_the_same_on_both() {
    let seen = both(same, |pool| {
        let mut seen = vec![
            twice(
                || apply_square(pool, 7),
                || apply_async_square(pool, 7).get(),
            ),
            twice(|| apply_halve(pool, 4), || apply_async_halve(pool, 4).get()),
            twice(|| apply_halve(pool, 3), || apply_async_halve(pool, 3).get()),
            twice(
                || apply_boom(pool, "kaboom".into()),
                || apply_async_boom(pool, "kaboom".into()).get(),
            ),
            twice(
                || apply_picky(pool, Picky(13)),
                || apply_async_picky(pool, Picky(13)).get(),
            ),
            twice(
                || apply_picky_back(pool, 13),
                || apply_async_picky_back(pool, 13).get(),
            ),
            twice(
                || apply_unlucky(pool, 13),
                || apply_async_unlucky(pool, 13).get(),
            ),
            twice(
                || apply_nest(pool, 1000),
                || apply_async_nest(pool, 1000).get(),
            ),
            twice(
                || apply_nest_len(pool, Nest::of(1000)),
                || apply_async_nest_len(pool, Nest::of(1000)).get(),
            ),
            twice(
                || apply_nest(pool, 100).map(|n| n.nodes()),
                || apply_async_nest(pool, 100).get().map(|n| n.nodes()),
            ),
            norm(&pool.apply_by_name::<u64>("t/sqare", &(3u64,))),
            norm(&pool.apply_by_name::<u32>("t/square", &(3u64,))),
        ];
        // A name only the worker checks (no generated function sends one).
        let unknown = procpool::__private::TaskInfo {
            name: "t/sqaure",
            signature: "fn(u64) -> u64",
            fingerprint: procpool::__private::fingerprint("fn(u64) -> u64"),
        };
        let args = procpool::__private::submit::<u64>(pool, &unknown, Ok(vec![3])).get();
        seen.push(norm(&args));
        // Where the task ran, as it sees it.
        let (slot, worker) = apply_whereami(pool).unwrap();
        assert!(slot.is_some_and(|s| s < 2), "{slot:?}");
        seen.push(format!(
            "in a worker: {worker}; in the caller: {:?}",
            procpool::worker_index()
        ));
        seen
    });
    let expected_start = ["Ok(49)", "Ok(Ok(2))", "Ok(Err(\"3 is odd\"))"];
    assert_eq!(seen[..3], expected_start);
    assert!(
        seen[3].starts_with("Panic(t/boom, \"kaboom\", tests/helpers/redis_tasks.rs:"),
        "{}",
        seen[3]
    );
    for (at, what) in [
        (
            4,
            "Decode { task: \"t/picky\", what: \"arguments\", message: \"13 is refused\" }",
        ),
        (
            5,
            "Decode { task: \"t/picky_back\", what: \"result\", message: \"13 is refused\" }",
        ),
        (
            6,
            "Encode { task: \"t/unlucky\", what: \"result\", message: \"13 is unlucky\" }",
        ),
    ] {
        assert!(
            seen[at].starts_with(&format!("Err({what})")),
            "{}",
            seen[at]
        );
    }
    assert!(
        seen[7].starts_with("Err(Encode { task: \"t/nest\", what: \"result\""),
        "{}",
        seen[7]
    );
    assert!(
        seen[8].starts_with("Err(Encode { task: \"t/nest_len\", what: \"arguments\""),
        "{}",
        seen[8]
    );
    assert_eq!(seen[9], "Ok(100)");
    assert!(
        seen[10].starts_with("Err(UnknownTask { task: \"t/sqare\""),
        "{}",
        seen[10]
    );
    assert!(seen[10].contains("\"t/square\""), "{}", seen[10]);
    assert!(
        seen[11].starts_with("Err(SignatureMismatch { task: \"t/square\""),
        "{}",
        seen[11]
    );
    assert!(
        seen[12].starts_with("Err(UnknownTask { task: \"t/sqaure\""),
        "{}",
        seen[12]
    );
    assert_eq!(seen[13], "in a worker: true; in the caller: None");
}

/// A time limit under or between whole milliseconds: a node is sent it in
/// whole milliseconds (rounded up), and the error named those, 2ms for a
/// limit of 1.5ms, where a local pool names the limit as set.
#[test]
fn a_time_limit_fails_the_same_way() {
    let seen = both(same, |pool| {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let mut seen = Vec::new();
        for limit in [Duration::from_millis(300), Duration::from_micros(1500)] {
            let impatient = pool.with_task_timeout(Some(limit));
            seen.push(twice(
                || apply_mark(&impatient, file.clone(), "slow".into(), 10_000),
                || apply_async_mark(&impatient, file.clone(), "slow".into(), 10_000).get(),
            ));
            // In a map, the limit is each item's.
            let items = || vec![(file.clone(), "slow".to_string(), 10_000u64)];
            let one = MapOptions::new().chunksize(1);
            seen.push(norm(&map_mark_with(&impatient, items(), one)));
            seen.extend(norms(
                &imap_mark_with(&impatient, items(), one).collect::<Vec<_>>(),
            ));
        }
        seen.push(norm(&apply_square(pool, 5)));
        seen
    });
    for (at, limit) in [(0, "300ms"), (3, "1.5ms")] {
        for s in &seen[at..at + 3] {
            assert!(
                s.starts_with(&format!(
                    "Err(Timeout {{ task: \"t/mark\", limit: {limit} }})"
                )),
                "{s}"
            );
        }
    }
    assert_eq!(seen[6], "Ok(25)");
}

/// Arguments or a result over `max_frame_bytes` (set alike on both):
/// `FrameTooLarge` naming the limit; its `len` is the frame's as it
/// travels, a few bytes of header over the value, which differ between a
/// local channel and a Redis entry, as the README says.
#[test]
fn a_frame_over_the_limit_fails_the_same_way() {
    let seen = both(
        |b| b.max_frame_bytes(1 << 20),
        |pool| {
            vec![
                twice(
                    || apply_echo(pool, vec![1; 2 << 20]).map(|v| v.len()),
                    || {
                        apply_async_echo(pool, vec![1; 2 << 20])
                            .get()
                            .map(|v| v.len())
                    },
                ),
                twice(
                    || apply_fill(pool, 2 << 20).map(|v| v.len()),
                    || apply_async_fill(pool, 2 << 20).get().map(|v| v.len()),
                ),
                norm(&apply_fill(pool, 1000).map(|v| v.len())),
            ]
        },
    );
    assert_eq!(
        seen,
        [
            "FrameTooLarge(t/echo, over 2 MiB, max 1048576)",
            "FrameTooLarge(t/fill, over 2 MiB, max 1048576)",
            "Ok(1000)"
        ]
    );
}

#[test]
fn maps_yield_the_same_items_in_the_same_order() {
    let seen = both(same, |pool| {
        let mut seen: Vec<(String, Vec<String>)> = Vec::new();
        let mut put = |what: &str, outcomes: Vec<String>| seen.push((what.to_string(), outcomes));
        let one = MapOptions::new().chunksize(1);
        let big = MapOptions::new().chunksize(1000);
        for (size, opts) in [("default", MapOptions::new()), ("1", one), ("1000", big)] {
            put(
                &format!("map square, chunks of {size}"),
                vec![norm(&map_square_with(pool, 0..40, opts))],
            );
            put(
                &format!("map fragile, chunks of {size}"),
                vec![norm(&map_fragile_with(pool, 0..40, opts))],
            );
            put(
                &format!("starmap fragile, chunks of {size}"),
                vec![norm(&starmap_fragile_with(
                    pool,
                    (0..40).map(|x| (x,)).collect::<Vec<_>>(),
                    opts,
                ))],
            );
            put(
                &format!("map_async fragile, chunks of {size}"),
                vec![norm(&map_async_fragile_with(pool, 0..40, opts).get())],
            );
            put(
                &format!("imap fragile, chunks of {size}"),
                norms(&imap_fragile_with(pool, 8..18, opts).collect::<Vec<_>>()),
            );
            let mut unordered =
                norms(&imap_unordered_fragile_with(pool, 8..18, opts).collect::<Vec<_>>());
            unordered.sort();
            put(
                &format!("imap_unordered fragile, chunks of {size}, sorted"),
                unordered,
            );
            put(
                &format!("imap picky, chunks of {size}"),
                norms(&imap_picky_with(pool, [12, 13, 14].map(Picky), opts).collect::<Vec<_>>()),
            );
            put(
                &format!("imap picky_back, chunks of {size}"),
                norms(&imap_picky_back_with(pool, 12..15, opts).collect::<Vec<_>>()),
            );
            put(
                &format!("imap unlucky, chunks of {size}"),
                norms(&imap_unlucky_with(pool, 12..15, opts).collect::<Vec<_>>()),
            );
            put(
                &format!("map halve, chunks of {size}"),
                vec![norm(&map_halve_with(pool, 0..5, opts))],
            );
        }
        let none: Vec<u64> = Vec::new();
        put(
            "map of nothing",
            vec![norm(&map_square(pool, none.clone()))],
        );
        put(
            "map_async of nothing",
            vec![norm(&map_async_square(pool, none.clone()).get())],
        );
        put(
            "starmap of nothing",
            vec![norm(&starmap_square(pool, Vec::<(u64,)>::new()))],
        );
        put(
            "imap of nothing",
            norms(&imap_square(pool, none.clone()).collect::<Vec<_>>()),
        );
        put(
            "imap_unordered of nothing",
            norms(&imap_unordered_square(pool, none).collect::<Vec<_>>()),
        );
        seen
    });
    let find = |what: &str| &seen.iter().find(|(w, _)| w == what).unwrap().1;
    for size in ["default", "1", "1000"] {
        let squares: Vec<u64> = (0..40).map(|x| x * x).collect();
        assert_eq!(
            find(&format!("map square, chunks of {size}"))[0],
            format!("Ok({squares:?})")
        );
        for form in ["map", "starmap", "map_async"] {
            let first_error = &find(&format!("{form} fragile, chunks of {size}"))[0];
            assert!(
                first_error.starts_with("Panic(t/fragile, \"item 13 fails\""),
                "{first_error}"
            );
        }
        let imap = find(&format!("imap fragile, chunks of {size}"));
        assert_eq!(imap.len(), 10);
        assert!(
            imap[5].starts_with("Panic(t/fragile, \"item 13 fails\""),
            "{imap:?}"
        );
        let others: Vec<&String> = imap
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .map(|(_, s)| s)
            .collect();
        let expected: Vec<String> = (8..18u64)
            .filter(|x| *x != 13)
            .map(|x| format!("Ok({})", x + 1))
            .collect();
        assert_eq!(others, expected.iter().collect::<Vec<_>>());
        let picky = find(&format!("imap picky, chunks of {size}"));
        assert_eq!((picky[0].as_str(), picky[2].as_str()), ("Ok(12)", "Ok(14)"));
        assert!(
            picky[1].contains("what: \"arguments\", message: \"13 is refused\""),
            "{picky:?}"
        );
        let back = find(&format!("imap picky_back, chunks of {size}"));
        assert!(
            back[1].contains("what: \"result\", message: \"13 is refused\""),
            "{back:?}"
        );
        let unlucky = find(&format!("imap unlucky, chunks of {size}"));
        assert!(
            unlucky[1].contains("Encode { task: \"t/unlucky\", what: \"result\""),
            "{unlucky:?}"
        );
        assert_eq!(unlucky[0], "Ok(Unlucky(12))");
    }
    assert_eq!(find("map of nothing")[0], "Ok([])");
    assert!(find("imap of nothing").is_empty());
}

/// The name of the thread it runs on.
fn here() -> String {
    std::thread::current()
        .name()
        .unwrap_or("(unnamed)")
        .to_string()
}

#[test]
fn callbacks_and_result_states_are_the_same() {
    let seen = both(same, |pool| {
        let mut seen = Vec::new();
        let (tx, rx) = mpsc::channel::<String>();
        let ok = |tag: &'static str| {
            let tx = tx.clone();
            move |v: &dyn Debug| {
                tx.send(format!("{tag}: callback {v:?} on {}", here()))
                    .unwrap()
            }
        };
        let bad = |tag: &'static str| {
            let tx = tx.clone();
            move |e: Error| {
                tx.send(format!(
                    "{tag}: error_callback {} on {}",
                    norm(&Err::<(), _>(e)),
                    here()
                ))
                .unwrap()
            }
        };
        let (c, e) = (ok("square"), bad("square"));
        let square = apply_async_square(pool, 3)
            .callback(move |v| c(&v))
            .error_callback(e);
        let (c, e) = (ok("boom"), bad("boom"));
        let boom = apply_async_boom(pool, "cb".into())
            .callback(move |v| c(&v))
            .error_callback(e);
        let (c, e) = (ok("picky_back"), bad("picky_back"));
        let undecodable = apply_async_picky_back(pool, 13)
            .callback(move |v| c(&v))
            .error_callback(e);
        let (c, e) = (ok("map"), bad("map"));
        let map = map_async_square(pool, 0..4)
            .callback(move |v| c(&v))
            .error_callback(e);
        let (c, e) = (ok("map fragile"), bad("map fragile"));
        let failed_map = map_async_fragile(pool, 10..20)
            .callback(move |v| c(&v))
            .error_callback(e);
        let t = tx.clone();
        let completed = apply_async_halve(pool, 5).on_complete(move |r| {
            t.send(format!("halve: on_complete {} on {}", norm(&r), here()))
                .unwrap()
        });
        seen.push(norm(&square.get()));
        seen.push(norm(&boom.get()));
        seen.push(norm(&undecodable.get()));
        seen.push(norm(&map.get()));
        seen.push(norm(&failed_map.get()));
        seen.push(norm(&completed.get()));
        // Attached to a result that is already in.
        let late = apply_async_square(pool, 6);
        late.wait();
        let (c, e) = (ok("late"), bad("late"));
        let late = late.callback(move |v| c(&v)).error_callback(e);
        seen.push(norm(&late.get()));
        drop(tx);
        let mut calls: Vec<String> = rx.iter().collect();
        calls.sort();
        seen.extend(calls);

        // States of a result before and after it is in.
        let (held, r) = Held::start(pool);
        seen.push(format!(
            "held: ready {} successful {:?} wait_timeout {} get_timeout {} task {}",
            r.ready(),
            r.successful(),
            r.wait_timeout(Duration::from_millis(20)),
            norm(&r.get_timeout(Duration::from_millis(20))),
            r.task()
        ));
        held.release();
        r.wait();
        let pid = r.get_timeout(Duration::from_secs(1)).unwrap();
        seen.push(format!(
            "released: ready {} successful {:?} pid is the worker's {}",
            r.ready(),
            r.successful(),
            pid == held.worker()
        ));
        let boom = apply_async_boom(pool, "s".into());
        boom.wait();
        let failed_map = map_async_fragile(pool, 10..20);
        failed_map.wait();
        let undecodable = apply_async_picky_back(pool, 13);
        undecodable.wait();
        seen.push(format!(
            "failed: boom {} {:?}, map {} {:?}, undecodable {} {:?}",
            boom.ready(),
            boom.successful(),
            failed_map.ready(),
            failed_map.successful(),
            undecodable.ready(),
            undecodable.successful()
        ));
        seen
    });
    // Each callback once, with its value or error, on the callback thread.
    let calls: Vec<&str> = seen[7..14].iter().map(String::as_str).collect();
    let on = " on procpool-callbacks";
    let tag = |line: &str| line.split(':').next().unwrap().to_string();
    let tags: Vec<String> = calls.iter().map(|l| tag(l)).collect();
    assert_eq!(
        tags,
        [
            "boom",
            "halve",
            "late",
            "map fragile",
            "map",
            "picky_back",
            "square"
        ]
    );
    assert!(calls.iter().all(|l| l.ends_with(on)), "{calls:?}");
    assert_eq!(calls[2], format!("late: callback 36{on}"));
    assert_eq!(calls[4], format!("map: callback [0, 1, 4, 9]{on}"));
    assert_eq!(calls[6], format!("square: callback 9{on}"));
    assert!(
        calls[0].starts_with("boom: error_callback Panic(t/boom"),
        "{}",
        calls[0]
    );
    assert!(calls[3].starts_with("map fragile: error_callback Panic(t/fragile, \"item 13 fails\""));
    assert!(calls[5].starts_with("picky_back: error_callback Err(Decode"));
    assert_eq!(
        calls[1],
        format!("halve: on_complete Ok(Err(\"5 is odd\")){on}")
    );
    assert!(seen[14].starts_with("held: ready false successful None wait_timeout false get_timeout Err(WaitTimeout { task: \"t/hold\", waited: 20ms })"), "{}", seen[14]);
    assert_eq!(
        seen[15],
        "released: ready true successful Some(true) pid is the worker's true"
    );
    assert_eq!(
        seen[16],
        "failed: boom true Some(false), map true Some(false), undecodable true Some(false)"
    );
}

/// `n` items for `t/mark` on `file`, tagged `<tag><k>`, of no time.
fn mark_items(file: &str, tag: &str, n: u64) -> Vec<(String, String, u64)> {
    (0..n)
        .map(|k| (file.to_string(), format!("{tag}{k}"), 0))
        .collect()
}

#[test]
fn cancels_answer_the_same() {
    let seen = both(same, |pool| {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let mut seen = Vec::new();
        // Both processes held: what comes next waits.
        let (running, r_running) = Held::start(pool);
        let (finishing, r_finishing) = Held::start(pool);
        let (etx, erx) = mpsc::channel();
        let queued = apply_async_mark(pool, file.clone(), "queued".into(), 0)
            .error_callback(move |e| etx.send(norm(&Err::<(), _>(e))).unwrap());
        let map = map_async_mark_with(
            pool,
            mark_items(&file, "map", 4),
            MapOptions::new().chunksize(1),
        );
        let mut imap = imap_mark_with(
            pool,
            mark_items(&file, "imap", 3),
            MapOptions::new().chunksize(1),
        );
        let next = imap.next_timeout(Duration::from_millis(50));
        seen.push(format!(
            "imap before: {}",
            next.as_ref().map_or("None".into(), norm)
        ));
        seen.push(format!(
            "queued: {:?} {:?}",
            queued.cancel(),
            queued.cancel()
        ));
        seen.push(format!("map: {:?} {:?}", map.cancel(), map.cancel()));
        seen.push(format!("imap: {:?} {:?}", imap.cancel(), imap.cancel()));
        seen.push(format!(
            "running: {:?} {:?}",
            r_running.cancel(),
            r_running.cancel()
        ));
        finishing.release();
        r_finishing.wait();
        seen.push(format!(
            "finished: {:?} {:?}",
            r_finishing.cancel(),
            r_finishing.cancel()
        ));
        seen.push(norm(&queued.get()));
        seen.push(norm(&map.get()));
        seen.extend(norms(&imap.collect::<Vec<_>>()));
        seen.push(norm(&r_running.get()));
        seen.push(format!(
            "finished: {}",
            r_finishing.get().is_ok_and(|pid| pid == finishing.worker())
        ));
        seen.extend(erx.try_iter());
        // close_and_cancel: the queued calls and each queued chunk, once.
        let (held, r_held) = Held::start(pool);
        let (held2, r_held2) = Held::start(pool);
        let a = apply_async_mark(pool, file.clone(), "a".into(), 0);
        let m = map_async_mark_with(
            pool,
            mark_items(&file, "cc", 3),
            MapOptions::new().chunksize(1),
        );
        seen.push(format!("close_and_cancel: {}", pool.close_and_cancel()));
        held.release();
        held2.release();
        pool.join();
        seen.push(norm(&a.get()));
        seen.push(norm(&m.get()));
        seen.push(format!(
            "held to the end: {} {}",
            r_held.get().is_ok(),
            r_held2.get().is_ok()
        ));
        drop(running);
        seen.push(format!("ran: {:?}", marks(&file, "start")));
        seen
    });
    let cancelled =
        |task: &str| format!("Err(Cancelled {{ task: \"{task}\" }}) = task `{task}` was cancelled");
    assert!(
        seen[0].starts_with("imap before: Err(WaitTimeout { task: \"t/mark\""),
        "{}",
        seen[0]
    );
    assert_eq!(
        seen[1..6],
        [
            "queued: NotStarted NotStarted",
            "map: NotStarted NotStarted",
            "imap: NotStarted NotStarted",
            "running: Stopped Stopped",
            "finished: Finished Finished",
        ]
    );
    // queued, map, the imap's one cancelled item, the running call, the
    // finished one, the error callback of the queued one.
    assert_eq!(
        seen[6..9],
        [
            cancelled("t/mark"),
            cancelled("t/mark"),
            cancelled("t/mark")
        ]
    );
    assert_eq!(seen[9], cancelled("t/hold"));
    assert_eq!(seen[10], "finished: true");
    assert_eq!(seen[11], cancelled("t/mark"));
    assert_eq!(seen[12], "close_and_cancel: 4");
    assert_eq!(seen[13..15], [cancelled("t/mark"), cancelled("t/mark")]);
    assert_eq!(seen[15], "held to the end: true true");
    assert_eq!(seen[16], "ran: []", "a cancelled call never ran");
    assert_eq!(seen.len(), 17);
}

#[test]
fn a_closed_or_terminated_pool_answers_the_same() {
    let seen = both(same, |pool| {
        let mut seen = Vec::new();
        let (held, r) = Held::start(pool);
        // Calls accepted before `close`: one still running at `join`, the
        // others done on the idle process.
        let before = apply_async_square(pool, 4);
        let map_before = map_async_square(pool, 0..3);
        before.wait();
        map_before.wait();
        pool.close();
        seen.push(norm(&apply_square(pool, 1)));
        seen.push(norm(&apply_async_square(pool, 1).get()));
        seen.push(norm(&map_square(pool, 0..3)));
        seen.push(norm(&map_async_square(pool, 0..3).get()));
        seen.push(norm(&starmap_square(pool, vec![(1,)])));
        seen.extend(norms(&imap_square(pool, 0..3).collect::<Vec<_>>()));
        seen.extend(norms(
            &imap_unordered_square(pool, 0..3).collect::<Vec<_>>(),
        ));
        seen.push(norm(&pool.apply_by_name::<u64>("t/square", &(2u64,))));
        seen.push(format!(
            "close_and_cancel after close: {}",
            pool.close_and_cancel()
        ));
        held.release();
        pool.join();
        seen.push(format!(
            "after join: ready {} {} {}",
            r.ready(),
            before.ready(),
            map_before.ready()
        ));
        seen.push(norm(&r.get().map(|pid| pid == held.worker())));
        seen.push(norm(&before.get()));
        seen.push(norm(&map_before.get()));
        seen.push(norm(&apply_square(pool, 1)));
        seen
    });
    let closed =
        "Err(PoolClosed { task: \"t/square\" }) = task `t/square` was not run: the pool is closed";
    // apply, apply_async, map, map_async, starmap, imap (once, then it
    // ends), imap_unordered (likewise), by name.
    assert_eq!(seen[..8], [closed; 8]);
    assert_eq!(seen[8], "close_and_cancel after close: 0");
    assert_eq!(seen[9], "after join: ready true true true");
    assert_eq!(seen[10..13], ["Ok(true)", "Ok(16)", "Ok([0, 1, 4])"]);
    assert_eq!(seen[13], closed);
}

#[test]
fn terminate_answers_the_same() {
    let seen = both(same, |pool| {
        let mut seen = Vec::new();
        let (_held, r) = Held::start(pool);
        let (_held2, r2) = Held::start(pool);
        let (etx, erx) = mpsc::channel();
        let queued = apply_async_square(pool, 2)
            .error_callback(move |e| etx.send(norm(&Err::<(), _>(e))).unwrap());
        let map = map_async_square(pool, 0..4);
        let mut imap = imap_square_with(pool, 0..4, MapOptions::new().chunksize(1));
        let next = imap.next_timeout(Duration::from_millis(50));
        seen.push(format!(
            "imap before: {}",
            next.as_ref().map_or("None".into(), norm)
        ));
        pool.terminate();
        seen.push(norm(&r.get()));
        seen.push(norm(&r2.get()));
        seen.push(norm(&queued.get()));
        seen.push(norm(&map.get()));
        seen.extend(norms(&imap.collect::<Vec<_>>()));
        seen.extend(erx.try_iter());
        seen.push(norm(&apply_square(pool, 1)));
        seen.push(norm(&apply_async_square(pool, 1).get()));
        seen.push(norm(&map_square(pool, 0..3)));
        seen.extend(norms(&imap_square(pool, 0..3).collect::<Vec<_>>()));
        seen.push(format!(
            "close_and_cancel after terminate: {}",
            pool.close_and_cancel()
        ));
        pool.join();
        seen
    });
    let terminated = |task: &str| {
        format!("Err(Terminated {{ task: \"{task}\" }}) = task `{task}` did not finish: the pool was terminated")
    };
    let closed =
        "Err(PoolClosed { task: \"t/square\" }) = task `t/square` was not run: the pool is closed";
    assert!(
        seen[0].starts_with("imap before: Err(WaitTimeout { task: \"t/square\""),
        "{}",
        seen[0]
    );
    assert_eq!(seen[1..3], [terminated("t/hold"), terminated("t/hold")]);
    // The queued call, the map, the imap (once, then it ends), the queued
    // call's error callback.
    assert_eq!(
        seen[3..7],
        [
            terminated("t/square"),
            terminated("t/square"),
            terminated("t/square"),
            terminated("t/square")
        ]
    );
    assert_eq!(seen[7..11], [closed; 4]);
    assert_eq!(seen[11], "close_and_cancel after terminate: 0");
    assert_eq!(seen.len(), 12);
}

/// The caller logs what happens in the caller the same way on both (here a
/// panicking callback); what happens to a worker (here a time limit's kill
/// and a cancel's stop) is logged by the process that owns the worker: the
/// caller's own for a local pool, the node's for a Redis pool, as the
/// README says.
#[test]
fn log_events_are_the_same_where_the_readme_says() {
    let log = support::capture_log();
    let dir = TempDir::new();
    let node_log = dir.file("node.log");
    let killed = "ran past its time limit of 333ms";
    let stopped = "stopped: task `t/mark` was cancelled";
    let in_caller = std::sync::Mutex::new(Vec::new());
    let seen = both_logged(same, Some(&node_log), |pool| {
        let before = log.lines_with(killed).len();
        let impatient = pool.with_task_timeout(Some(Duration::from_millis(333)));
        let timed_out = apply_mark(&impatient, dir.file("marks"), "slow".into(), 10_000);
        in_caller
            .lock()
            .unwrap()
            .push(log.lines_with(killed).len() - before);
        let before = log.lines_with("callback bug 21").len();
        let r = apply_async_square(pool, 21).callback(|_| panic!("callback bug 21"));
        r.wait();
        let warned = log.lines_with("callback bug 21");
        assert_eq!(warned.len(), before + 1, "{warned:?}");
        // A worker stopped by a cancel (only this test cancels a running
        // `t/mark`).
        let before = log.lines_with(stopped).len();
        let own = TempDir::new(); // one file per pool, read fresh
        let file = own.file("stop-marks");
        let running = apply_async_mark(pool, file.clone(), "stop".into(), 10_000);
        wait_for(Duration::from_secs(20), "the call to start", || {
            marks(&file, "start").len() == 1
        });
        let cancel = format!("{:?}", running.cancel());
        // Every worker stopped: whatever the pool logs of it is logged.
        pool.join();
        in_caller
            .lock()
            .unwrap()
            .push(log.lines_with(stopped).len() - before);
        vec![
            norm(&timed_out),
            warned.last().unwrap().clone(),
            norm(&r.get()),
            cancel,
        ]
    });
    assert!(
        seen[0].starts_with("Err(Timeout { task: \"t/mark\", limit: 333ms })"),
        "{}",
        seen[0]
    );
    assert_eq!(
        seen[1],
        "WARN a callback of task `t/square` panicked: callback bug 21; the pool carries on"
    );
    assert_eq!(seen[2..], ["Ok(441)", "Stopped"]);
    assert_eq!(
        *in_caller.lock().unwrap(),
        [1, 1, 0, 0],
        "the caller logs the kill and the stop only for a local pool"
    );
    // The node logs both, in its own time (a cancel settles the caller's
    // result before the node stops the worker).
    let node_lines = |what: &str| -> Vec<String> {
        std::fs::read_to_string(&node_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .map(String::from)
            .collect()
    };
    wait_for(
        Duration::from_secs(20),
        "the node's log of the stop",
        || !node_lines(stopped).is_empty(),
    );
    assert_eq!(node_lines(stopped).len(), 1);
    let on_node = node_lines(killed);
    assert_eq!(on_node.len(), 1, "the node logs it: {on_node:?}");
    let here = log.lines_with(killed);
    let (local, remote) = (&here[here.len() - 1], &on_node[0]);
    let shape = |l: &str| {
        l.split(' ')
            .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        shape(local),
        shape(remote),
        "the same event, the same words"
    );
}

/// A worker that exits in a call, in a map's chunk, or runs past a time
/// limit in a chunk: the call, or each item of that chunk, fails alike, and
/// the other chunks' items keep their results.
#[test]
fn a_death_or_a_time_limit_in_a_chunk_fails_the_same_items() {
    let seen = both(same, |pool| {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let mut seen = vec![norm(&apply_exit13(pool, 13)), norm(&apply_exit13(pool, 12))];
        for size in [1, 3] {
            let opts = MapOptions::new().chunksize(size);
            seen.extend(norms(
                &imap_exit13_with(pool, 10..16, opts).collect::<Vec<_>>(),
            ));
            seen.push(norm(&map_exit13_with(pool, 10..16, opts)));
            let impatient = pool.with_task_timeout(Some(Duration::from_millis(300)));
            let items: Vec<(String, String, u64)> = [0, 0, 0, 10_000, 0, 0]
                .iter()
                .enumerate()
                .map(|(k, ms)| (file.clone(), format!("c{size}i{k}"), *ms))
                .collect();
            let got = imap_mark_with(&impatient, items, opts).collect::<Vec<_>>();
            seen.extend(got.into_iter().map(|r| norm(&r.map(|_| "pid"))));
        }
        // One item's arguments that cannot be encoded fail alone.
        let lists = vec![Nest::of(3), Nest::of(1000), Nest::of(4)];
        seen.extend(norms(
            &imap_nest_len_with(pool, lists, MapOptions::new().chunksize(3)).collect::<Vec<_>>(),
        ));
        seen
    });
    let died = "WorkerDied(t/exit13, exit code 3)";
    let timeout = "Err(Timeout { task: \"t/mark\", limit: 300ms }) = task `t/mark` ran past its time limit of 300ms";
    let ok = "Ok(\"pid\")";
    assert_eq!(seen[..2], [died, "Ok(12)"]);
    // Chunks of 1: the item alone fails; map: the first error.
    assert_eq!(
        seen[2..8],
        ["Ok(10)", "Ok(11)", "Ok(12)", died, "Ok(14)", "Ok(15)"]
    );
    assert_eq!(seen[8], died);
    assert_eq!(seen[9..15], [ok, ok, ok, timeout, ok, ok]);
    // Chunks of 3: each item of the chunk that died, or overran, fails.
    assert_eq!(
        seen[15..21],
        ["Ok(10)", "Ok(11)", "Ok(12)", died, died, died]
    );
    assert_eq!(seen[21], died);
    assert_eq!(seen[22..28], [ok, ok, ok, timeout, timeout, timeout]);
    assert_eq!(seen[28], "Ok(3)");
    assert!(
        seen[29].starts_with("Err(Encode { task: \"t/nest_len\", what: \"arguments\""),
        "{}",
        seen[29]
    );
    assert_eq!(seen[30], "Ok(4)");
    assert_eq!(seen.len(), 31);
}

/// A panic's message, or a map chunk's, too large for the caller's
/// `max_frame_bytes`: cut to fit it, as a local worker cuts it, and each
/// item of the chunk keeps its own error. (Through Redis the node cut to
/// its own limit only: the message arrived whole, over the caller's limit,
/// and the chunk failed every item with `FrameTooLarge`.)
#[test]
fn a_failure_too_large_for_the_callers_frame_is_cut_the_same_way() {
    let seen = both(
        |b| b.max_frame_bytes(1 << 20),
        |pool| {
            let show = |r: &Result<u64, Error>| match r {
                Err(Error::Panic { message, .. }) => format!(
                    "panic of {} bytes, ending {:?}",
                    message.len(),
                    message
                        .chars()
                        .skip(message.chars().count().saturating_sub(40))
                        .collect::<String>()
                ),
                Err(Error::FrameTooLarge { task, max, .. }) => {
                    format!("FrameTooLarge({task}, max {max})")
                }
                other => norm(other),
            };
            let mut seen = vec![
                show(&apply_shout(pool, 2 << 20)),
                show(&apply_async_shout(pool, 2 << 20).get()),
            ];
            let opts = MapOptions::new().chunksize(3);
            let items = imap_shout_with(pool, [10u64, 2 << 20, 10], opts);
            seen.extend(items.map(|r| show(&r)));
            seen.push(show(
                &map_shout_with(pool, [10u64, 2 << 20, 10], opts).map(|v| v[0]),
            ));
            // Values are not cut: a chunk whose values are too large fails
            // whole.
            let fills = imap_fill_with(pool, [400_000u64, 400_000, 400_000, 10], opts);
            seen.extend(fills.map(|r| show(&r.map(|v| v.len() as u64))));
            seen
        },
    );
    // 2097152 bytes kept as 524288 (halved twice, as a chunk's texts are):
    // 1572864 cut.
    let cut = "panic of 524326 bytes, ending \"xxxx… (1572864 bytes cut to fit a frame)\"";
    let whole = "FrameTooLarge(t/fill, max 1048576)";
    assert_eq!(seen[..2], [cut, cut]);
    assert_eq!(seen[2], "panic of 10 bytes, ending \"xxxxxxxxxx\"");
    assert!(
        seen[3].starts_with("panic of 524326 bytes, ending"),
        "{}",
        seen[3]
    );
    assert_eq!(seen[4], seen[2]);
    assert_eq!(seen[5], seen[2], "map: the first error");
    assert_eq!(seen[6..], [whole, whole, whole, "Ok(10)"]);
}

/// A pool-wide time limit, a handle that lifts it, a callback that calls
/// back into its pool, and a `map` blocked in another thread when
/// `close_and_cancel` comes.
#[test]
fn pool_wide_limits_callbacks_into_the_pool_and_a_cut_map_are_the_same() {
    let seen = both(
        |b| b.task_timeout(Duration::from_millis(300)),
        |pool| {
            let dir = TempDir::new();
            let file = dir.file("marks");
            let mut seen = vec![
                norm(&apply_mark(pool, file.clone(), "limited".into(), 10_000).map(|_| "pid")),
                norm(
                    &apply_mark(
                        &pool.with_task_timeout(None),
                        file.clone(),
                        "free".into(),
                        500,
                    )
                    .map(|_| "pid"),
                ),
            ];
            // A callback that submits and waits.
            let (tx, rx) = mpsc::channel();
            let again = pool.clone();
            let r = apply_async_square(pool, 3).callback(move |v| {
                tx.send(norm(&apply_square(&again, v)).to_string()).unwrap();
                tx.send(norm(&apply_async_square(&again, v + 1).get()))
                    .unwrap();
            });
            seen.push(norm(&r.get()));
            seen.extend(rx.iter());
            // A map whose first item holds the second process, the others
            // waiting behind it, cut by close_and_cancel. The held call has
            // no time limit: it must outlast the map's start and the cut
            // (under the pool's 300 ms, a loaded machine could end it first).
            let (held, r1) = Held::start(&pool.with_task_timeout(None));
            let gate = dir.file("gate");
            let items: Vec<(String, String, String)> = (0..4)
                .map(|k| (file.clone(), format!("cut{k}"), gate.clone()))
                .collect();
            let (items, read_all) = support::ReadToEnd::new(items);
            let cut = std::thread::scope(|s| {
                let map = s.spawn(|| {
                    let free = pool.with_task_timeout(None);
                    map_hold_with(&free, items, MapOptions::new().chunksize(1))
                });
                // And every item queued: the map queues them as it goes,
                // and its thread, held up between two (a loaded machine),
                // left close_and_cancel fewer than three to cancel.
                wait_for(
                    Duration::from_secs(20),
                    "the map's first item to start, every item queued",
                    || marks(&file, "start cut0").len() == 1 && read_all.load(Ordering::SeqCst),
                );
                let n = pool.close_and_cancel();
                let outcome = norm(&map.join().unwrap());
                (n, outcome)
            });
            seen.push(format!("close_and_cancel {} map {}", cut.0, cut.1));
            std::fs::write(&gate, b"").unwrap();
            held.release();
            pool.join();
            seen.push(format!("held: {}", r1.get().is_ok()));
            seen.push(format!("cut ran: {}", marks(&file, "start cut").len()));
            seen
        },
    );
    assert!(
        seen[0].starts_with("Err(Timeout { task: \"t/mark\", limit: 300ms })"),
        "{}",
        seen[0]
    );
    assert_eq!(seen[1..5], ["Ok(\"pid\")", "Ok(9)", "Ok(81)", "Ok(100)"]);
    assert_eq!(
        seen[5],
        "close_and_cancel 3 map Err(Cancelled { task: \"t/hold\" }) = task `t/hold` was cancelled"
    );
    assert_eq!(seen[6..], ["held: true", "cut ran: 1"]);
}

/// An `imap` whose input panics, one read with `next_timeout`, one not read
/// to its end when the pool is closed and joined, and results of a pool
/// whose last handle is dropped.
#[test]
fn imaps_cut_short_and_a_dropped_pool_are_the_same() {
    let seen = both(same, |pool| {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let mut seen = Vec::new();
        // The input panics at its fourth item.
        let input = (0..10u64).inspect(|x| {
            if *x == 3 {
                panic!("input ends at {x}");
            }
        });
        let mut it = imap_square_with(pool, input, MapOptions::new().chunksize(1));
        loop {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next())) {
                Ok(Some(r)) => seen.push(norm(&r)),
                Ok(None) => break seen.push("end".into()),
                Err(p) => seen.push(format!("panic: {:?}", p.downcast_ref::<String>())),
            }
        }
        // next_timeout: nothing yet, then the value, then the end.
        let mut it = imap_mark_with(
            pool,
            vec![(file.clone(), "slow".to_string(), 300)],
            MapOptions::new(),
        );
        seen.push(norm(&it.next_timeout(Duration::from_millis(10)).unwrap()));
        seen.push(norm(
            &it.next_timeout(Duration::from_secs(30))
                .unwrap()
                .map(|_| "pid"),
        ));
        seen.push(format!(
            "{:?}",
            it.next_timeout(Duration::from_millis(10))
                .map(|r| r.is_ok())
        ));
        // Not read to its end when join begins: the results of the chunks
        // it had queued, then PoolClosed, then the end.
        let other = pool.clone();
        let mut it = imap_square_with(&other, 0..100u64, MapOptions::new().chunksize(1));
        seen.push(norm(&it.next().unwrap()));
        pool.close();
        pool.join();
        // (How many chunks it had queued depends on timing.)
        let rest: Vec<Result<u64, Error>> = it.collect();
        let values: Vec<u64> = rest
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        let squares: Vec<u64> = (1..=values.len() as u64).map(|x| x * x).collect();
        seen.push(format!("then values in order: {}", values == squares));
        seen.extend(rest[values.len()..].iter().map(norm));
        seen
    });
    assert_eq!(
        seen[..5],
        [
            "Ok(0)",
            "Ok(1)",
            "Ok(4)",
            "panic: Some(\"input ends at 3\")",
            "end"
        ]
    );
    assert!(
        seen[5].starts_with("Err(WaitTimeout { task: \"t/mark\", waited: 10ms })"),
        "{}",
        seen[5]
    );
    assert_eq!(
        seen[6..10],
        ["Ok(\"pid\")", "None", "Ok(0)", "then values in order: true"]
    );
    assert_eq!(
        seen[10..],
        ["Err(PoolClosed { task: \"t/square\" }) = task `t/square` was not run: the pool is closed"]
    );
}

#[test]
fn dropping_the_last_handle_waits_for_the_calls_on_both() {
    let local = {
        let pool = Pool::new(2).unwrap();
        let r = apply_async_square(&pool, 5);
        let m = map_async_square(&pool, 0..3);
        drop(pool);
        (r.ready(), m.ready(), norm(&r.get()), norm(&m.get()))
    };
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "2"), ("prefetch", "0")], &[]);
    let remote = {
        let pool = Pool::builder().redis(&server.url()).build().unwrap();
        let r = apply_async_square(&pool, 5);
        let m = map_async_square(&pool, 0..3);
        drop(pool);
        (r.ready(), m.ready(), norm(&r.get()), norm(&m.get()))
    };
    assert_eq!(local, remote);
    assert_eq!(local, (true, true, "Ok(25)".into(), "Ok([0, 1, 4])".into()));
}

/// A signature the worker does not know (only a call not made by the
/// generated functions can send one), and map items so large that a chunk
/// of them would pass the frame limit: both make smaller chunks, whatever
/// chunk size was asked for, and every item comes back.
#[test]
fn a_worker_side_mismatch_and_large_map_items_are_the_same() {
    let seen = both(
        |b| b.max_frame_bytes(1 << 20),
        |pool| {
            let wrong = procpool::__private::TaskInfo {
                name: "t/square",
                signature: "fn(i8) -> u64",
                fingerprint: procpool::__private::fingerprint("fn(i8) -> u64"),
            };
            let mut seen = vec![norm(
                &procpool::__private::submit::<u64>(pool, &wrong, Ok(vec![3])).get(),
            )];
            let show = |r: Result<Vec<Vec<u8>>, Error>| match r {
                Ok(v) => format!("Ok({:?})", v.iter().map(Vec::len).collect::<Vec<_>>()),
                Err(Error::FrameTooLarge { task, max, .. }) => {
                    format!("FrameTooLarge({task}, {max})")
                }
                Err(e) => norm(&Err::<(), _>(e)),
            };
            let items = || vec![vec![1u8; 400_000]; 3];
            seen.push(show(map_echo(pool, items())));
            seen.push(show(map_echo_with(
                pool,
                items(),
                MapOptions::new().chunksize(3),
            )));
            seen.push(show(map_echo_with(
                pool,
                items(),
                MapOptions::new().chunksize(2),
            )));
            for r in imap_echo_with(pool, items(), MapOptions::new().chunksize(3)) {
                seen.push(show(r.map(|v| vec![v])));
            }
            seen
        },
    );
    assert_eq!(
        seen[0],
        "Err(SignatureMismatch { task: \"t/square\", caller: \"fn(i8) -> u64\", worker: \"fn(u64) -> u64\" }) = task `t/square`: the caller's signature `fn(i8) -> u64` differs from the worker's `fn(u64) -> u64`"
    );
    let all = "Ok([400000, 400000, 400000])";
    let one = "Ok([400000])";
    assert_eq!(seen[1..], [all, all, all, one, one, one]);
}

/// A value just under `max_frame_bytes`: the frame that carries it adds a
/// header whose size depends on the transport (a local channel's call
/// header names the task), so within a header's size of the limit one pool
/// may take what the other refuses (a result of the limit less 14 bytes
/// passed through Redis and failed locally), as the README says; a value the limit holds
/// with 64 bytes to spare passes both, one of the limit's size fails both.
#[test]
fn a_value_at_or_well_under_the_frame_limit_is_treated_alike() {
    let seen = both(
        |b| b.max_frame_bytes(1 << 20),
        |pool| {
            let mut seen = Vec::new();
            for len in [1 << 20, (1 << 20) - 64] {
                let result = apply_fill(pool, len as u64).map(|v| v.len());
                let args = apply_echo(pool, vec![0; len]).map(|v| v.len());
                seen.push(format!(
                    "{len}: result {} arguments {}",
                    kind(&result),
                    kind(&args)
                ));
            }
            seen
        },
    );
    assert_eq!(
        seen,
        [
            "1048576: result Err(FrameTooLarge) arguments Err(FrameTooLarge)",
            "1048512: result Ok arguments Ok"
        ]
    );
}

/// `Ok`, or the error's kind.
fn kind<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(e) => format!("Err({:?})", e.kind()),
    }
}

/// A cancelled result's states and its `.await`; `join` without `close`
/// closes; calls after it, and after a `terminate` that follows it.
#[test]
fn a_cancelled_future_and_join_without_close_are_the_same() {
    let seen = both(same, |pool| {
        let mut seen = Vec::new();
        let (held, r) = Held::start(pool);
        let (held2, r2) = Held::start(pool);
        let q = apply_async_square(pool, 3);
        seen.push(format!("{:?}", q.cancel()));
        seen.push(format!(
            "ready {} successful {:?}",
            q.ready(),
            q.successful()
        ));
        seen.push(norm(&futures::executor::block_on(q)));
        held.release();
        held2.release();
        seen.push(format!("{:?}", r.get().is_ok()));
        seen.push(format!("{:?}", r2.get().is_ok()));
        pool.join();
        seen.push(norm(&apply_square(pool, 2)));
        pool.terminate();
        seen.push(norm(&apply_square(pool, 2)));
        seen.push(format!("{:?}", apply_async_square(pool, 2).successful()));
        seen
    });
    let closed =
        "Err(PoolClosed { task: \"t/square\" }) = task `t/square` was not run: the pool is closed";
    assert_eq!(
        seen,
        [
            "NotStarted",
            "ready true successful Some(false)",
            "Err(Cancelled { task: \"t/square\" }) = task `t/square` was cancelled",
            "true",
            "true",
            closed,
            closed,
            "Some(false)"
        ]
    );
}

/// A replacement worker whose initializer fails: the call that needed it
/// fails with `InitializerFailed` naming the initializer (through Redis it
/// named the call's task as the initializer: "the pool's initializer
/// `t/square` failed").
#[test]
fn a_failing_initializer_is_named_the_same() {
    let scenario = |pool: &Pool, flag: &str| {
        let mut seen = vec![norm(&apply_square(pool, 3))];
        std::fs::write(flag, b"").unwrap();
        seen.push(norm(&apply_exit13(pool, 13)));
        seen.push(norm(&apply_square(pool, 4)).replace(flag, "FLAG"));
        seen
    };
    let dir = TempDir::new();
    let flag = dir.file("local-flag");
    let local = {
        let pool = Pool::builder()
            .processes(1)
            .initializer("t/init_unless", &(flag.clone(),))
            .build()
            .unwrap();
        scenario(&pool, &flag)
    };
    let server = RedisServer::start();
    let flag = dir.file("node-flag");
    let options = [
        ("processes", "1"),
        ("prefetch", "0"),
        ("init-unless", flag.as_str()),
    ];
    let _node = NodeProc::code(&server.url(), &options, &[]);
    let remote = {
        let pool = Pool::builder().redis(&server.url()).build().unwrap();
        scenario(&pool, &flag)
    };
    assert_eq!(
        local, remote,
        "the local pool (left) and the Redis pool (right) differ"
    );
    assert_eq!(local[..2], ["Ok(9)", "WorkerDied(t/exit13, exit code 3)"]);
    assert!(
        local[2].starts_with(
            "Err(InitializerFailed { task: \"t/init_unless\", message: \"it returned Err(\\\"FLAG exists\\\")\""
        ),
        "{}",
        local[2]
    );
    let said = local[2].split(" = ").nth(1).unwrap();
    assert!(
        said.starts_with(
            "the pool's initializer `t/init_unless` failed at tests/helpers/redis_tasks.rs:"
        ),
        "{said}"
    );
    assert!(
        said.ends_with(": it returned Err(\"FLAG exists\")"),
        "{said}"
    );
}

/// A `map_async` whose first two items run (chunks of 1, both processes
/// held) and two wait, cancelled: `Stopped`, its result and error callback
/// `Cancelled` once, the waiting items never started. A local pool has
/// stopped the running items when `get` returns; a node stops them when it
/// reads the stop, a moment later, so there they may still run to their
/// end if let (their gate is opened right after `get`), as the README
/// says.
#[test]
fn cancelling_a_running_map_async_is_the_same() {
    let ended = std::sync::Mutex::new(Vec::new());
    let seen = both(same, |pool| {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let gate = dir.file("gate");
        let items: Vec<(String, String, String)> = (0..4)
            .map(|k| (file.clone(), format!("m{k}"), gate.clone()))
            .collect();
        let (tx, rx) = mpsc::channel();
        let m = map_async_hold_with(pool, items, MapOptions::new().chunksize(1))
            .error_callback(move |e| tx.send(norm(&Err::<(), _>(e))).unwrap());
        wait_for(Duration::from_secs(20), "two items to start", || {
            marks(&file, "start").len() == 2
        });
        let mut seen = vec![format!("{:?} {:?}", m.cancel(), m.cancel())];
        seen.push(norm(&m.get()));
        std::fs::write(&gate, b"").unwrap();
        pool.join();
        seen.extend(rx.try_iter());
        let mut started: Vec<String> = marks(&file, "start")
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect();
        started.sort();
        seen.push(format!("started {started:?}"));
        ended.lock().unwrap().push(marks(&file, "end").len());
        seen
    });
    let cancelled = "Err(Cancelled { task: \"t/hold\" }) = task `t/hold` was cancelled";
    assert_eq!(
        seen,
        [
            "Stopped Stopped",
            cancelled,
            cancelled,
            "started [\"m0\", \"m1\"]"
        ]
    );
    let ended = ended.into_inner().unwrap();
    assert_eq!(ended[0], 0, "stopped by the local pool before get returned");
    assert!(ended[1] <= 2, "{ended:?}");
}

/// Results of a pool terminated and dropped: one already in keeps its
/// value, one running is `Terminated`, and callbacks attached after that
/// still run, once, on the callback thread.
#[test]
fn results_and_callbacks_outlive_a_terminated_and_dropped_pool_alike() {
    let seen = both(same, |pool| {
        let mut seen = Vec::new();
        let other = pool.clone();
        let done = apply_async_square(&other, 7);
        done.wait();
        let (_held, running) = Held::start(&other);
        pool.terminate();
        drop(other);
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        let done = done.callback(move |v| t.send(format!("callback {v} on {}", here())).unwrap());
        let running = running.error_callback(move |e| {
            tx.send(format!(
                "error_callback {} on {}",
                norm(&Err::<(), _>(e)),
                here()
            ))
            .unwrap()
        });
        seen.push(norm(&done.get()));
        seen.push(norm(&running.get()));
        let mut got: Vec<String> = rx.iter().collect();
        got.sort();
        seen.extend(got);
        seen
    });
    let terminated =
        "Err(Terminated { task: \"t/hold\" }) = task `t/hold` did not finish: the pool was terminated";
    assert_eq!(
        seen,
        [
            "Ok(49)".to_string(),
            terminated.to_string(),
            "callback 49 on procpool-callbacks".to_string(),
            format!("error_callback {terminated} on procpool-callbacks"),
        ]
    );
}

/// A handle with a zero time limit: every call form fails at once with
/// `Timeout { limit: 0ns }` (never sent), the pool itself is unaffected.
#[test]
fn a_zero_time_limit_fails_every_call_form_alike() {
    let seen = both(same, |pool| {
        let zero = pool.with_task_timeout(Some(Duration::ZERO));
        let mut seen = vec![
            norm(&apply_square(&zero, 2)),
            norm(&apply_async_square(&zero, 2).get()),
        ];
        seen.push(norm(&map_square(&zero, 0..3)));
        seen.extend(norms(&imap_square(&zero, 0..3).collect::<Vec<_>>()));
        seen.push(norm(&pool.apply_by_name::<u64>("t/square", &(2u64,))));
        seen.push(norm(&zero.apply_by_name::<u64>("t/square", &(2u64,))));
        seen.push(format!("{}", zero.processes()));
        seen
    });
    let zero = "Err(Timeout { task: \"t/square\", limit: 0ns }) = task `t/square` ran past its time limit of 0ns";
    // apply, apply_async, map, imap (each of its 3 items); by name on the
    // pool (no limit) and on the handle; the handle's processes.
    assert_eq!(seen[..6], [zero; 6]);
    assert_eq!(seen[6..], ["Ok(4)", zero, "2"]);
}
