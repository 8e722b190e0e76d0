//! The practical-use issue (13) and the reliability issue (10), read
//! sentence by sentence, where no other test file proved a promise or
//! proved less than it says: a cancel stops what the task started and
//! reaches a caller already waiting, on every way of waiting; its error
//! callback has returned by then; memory recycling in maps and pipelined
//! batches loses and repeats nothing and keeps slot numbers; the log
//! events of timeouts, deaths and retirements carry their reasons at the
//! documented levels; borrowed items in the `starmap` forms.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procpool::{pool_task, AsyncResult, CancelOutcome, Error, MapOptions, Pool};
use support::{
    assert_no_children, capture_log, gone_within, serial, wait_for, LogCapture, Scratch,
};

procpool::enable_test_support!();

const MIB: usize = 1 << 20;

/// Starts `sleep 37` (its pid written to `pid_file`, not waited for), then
/// sleeps a minute: a task stopped only by a cancel.
#[pool_task]
#[allow(clippy::zombie_processes)]
fn spawn_then_hang(pid_file: PathBuf) -> u32 {
    let child = Command::new("sleep")
        .arg("37")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    child.id()
}

/// Writes its worker's pid to `marker` (if not empty), then sleeps `ms`.
#[pool_task]
fn hold(marker: PathBuf, ms: u64) -> u64 {
    if !marker.as_os_str().is_empty() {
        std::fs::write(&marker, std::process::id().to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Marks item `i` as run in `dir` (`twice-i` if it already was), leaks
/// `kib` KiB of touched memory, and says who ran it.
#[pool_task]
fn leak(dir: PathBuf, i: u32, kib: usize) -> (u32, u32, Option<usize>) {
    let create = |name: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
    };
    if create(i.to_string()).is_err() {
        let _ = create(format!("twice-{i}"));
    }
    let mut block = vec![0u8; kib * 1024];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::mem::forget(block);
    // At least 150 µs a call, on any machine: a pipelined batch holds about
    // 2 ms of a quick task's calls, so at most about 13 of these, and a
    // bound on the calls a worker runs past a memory limit checked per
    // batch does not depend on how fast the machine is.
    std::thread::sleep(std::time::Duration::from_micros(150));
    (i, std::process::id(), procpool::worker_index())
}

#[pool_task]
fn pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn whoami(_i: u32) -> (Option<usize>, bool, u32) {
    (
        procpool::worker_index(),
        procpool::is_worker(),
        std::process::id(),
    )
}

#[pool_task]
fn path_len(path: &Path) -> usize {
    path.as_os_str().len()
}

#[pool_task]
fn repeat_len(text: &str, times: usize) -> usize {
    text.len() * times
}

#[pool_task]
fn fails_on(x: u64, bad: u64) -> u64 {
    assert_ne!(x, bad, "item {x} is bad");
    x
}

/// The pid a task wrote to `path`, once it is there (30 s at most).
fn read_pid(path: &Path) -> u32 {
    let mut pid = 0;
    wait_for(Duration::from_secs(30), "the task's child", || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// "A running one has its worker stopped and replaced (with everything it
/// started, see the reliability issue)": a cancelled task's own child
/// process dies with its worker, for a call and for an `imap_unordered`'s
/// running chunk (`Stopped`, then `Cancelled` once, then the end), and the
/// pool serves on.
#[test]
fn a_cancel_kills_the_processes_the_running_task_started() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let file = Scratch::temp("conformance-cancel-child");
    let r = apply_async_spawn_then_hang(&pool, file.to_path_buf());
    let sleep = read_pid(&file);
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    match r.get() {
        Err(Error::Cancelled { task }) => {
            assert_eq!(task, "issue_conformance_practical::spawn_then_hang")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        gone_within(sleep, Duration::from_secs(10)),
        "the cancelled task's child {sleep} lives on"
    );

    let file = Scratch::temp("conformance-cancel-imap-child");
    let mut it =
        imap_unordered_spawn_then_hang_with(&pool, [file.to_path_buf()], MapOptions::new());
    assert!(it.next_timeout(Duration::ZERO).is_some_and(|r| r.is_err()));
    let sleep = read_pid(&file);
    assert_eq!(it.cancel(), CancelOutcome::Stopped);
    let rest: Vec<_> = it.collect();
    match rest.as_slice() {
        [Err(Error::Cancelled { task })] => {
            assert_eq!(task, "issue_conformance_practical::spawn_then_hang")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        gone_within(sleep, Duration::from_secs(10)),
        "the cancelled chunk's child {sleep} lives on"
    );
    assert_ne!(apply_pid(&pool).unwrap(), std::process::id());
    drop(pool);
    assert_no_children();
}

/// "Its result becomes `Err(Cancelled { task })`": for a caller already
/// blocked in `get_timeout`, `wait` or `.await` on another thread too, which
/// returns with it at once; an error callback has returned by then (the
/// reliability issue's ordering), and the error names the task. Cancelled
/// here by `cancel` (queued and running) and by `close_and_cancel`.
#[test]
fn a_cancel_reaches_callers_already_waiting_in_every_way_after_the_error_callback() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let marker = Scratch::temp("conformance-cancel-waiters");
    let running = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    read_pid(&marker);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b) = (seen.clone(), seen.clone());
    let queued = apply_async_hold(&pool, PathBuf::new(), 0)
        .error_callback(move |e| a.lock().unwrap().push(format!("queued: {:?}", e.kind())));
    let awaited = apply_async_hold(&pool, PathBuf::new(), 0)
        .error_callback(move |e| b.lock().unwrap().push(format!("awaited: {:?}", e.kind())));
    std::thread::scope(|s| {
        let getter = s.spawn(|| running.get_timeout(Duration::from_secs(120)));
        let waiter = s.spawn(|| {
            queued.wait();
            seen.lock().unwrap().clone()
        });
        let awaiter = s.spawn(|| {
            let r = futures::executor::block_on(awaited);
            (r, seen.lock().unwrap().clone())
        });
        // Let every waiter start waiting.
        std::thread::sleep(Duration::from_millis(200));
        let begun = Instant::now();
        assert_eq!(queued.cancel(), CancelOutcome::NotStarted);
        let seen_by_waiter = waiter.join().unwrap();
        assert!(
            seen_by_waiter.iter().any(|l| l == "queued: Cancelled"),
            "wait() returned before the error callback: {seen_by_waiter:?}"
        );
        // `awaited` moved into its thread: the pool-wide cancel takes it.
        assert_eq!(pool.close_and_cancel(), 1);
        let (r, seen_by_awaiter) = awaiter.join().unwrap();
        assert!(matches!(r, Err(Error::Cancelled { .. })), "{r:?}");
        assert!(
            seen_by_awaiter.iter().any(|l| l == "awaited: Cancelled"),
            ".await returned before the error callback: {seen_by_awaiter:?}"
        );
        assert_eq!(running.cancel(), CancelOutcome::Stopped);
        match getter.join().unwrap() {
            Err(Error::Cancelled { task }) => {
                assert_eq!(task, "issue_conformance_practical::hold")
            }
            other => panic!("get() in another thread: {other:?}"),
        }
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "the waiters were not released at once"
        );
    });
    pool.join();
    drop(pool);
    assert_no_children();
}

/// "Its result becomes `Err(Cancelled { task })`", read as a user of
/// `concurrent.futures` reads it (a cancelled future is `done()` as
/// `cancel()` returns): right after a cancel that did not answer
/// `Finished`, queued or running, alone, in a `map_async` or through a
/// `CancelHandle`, a result without callbacks is ready, unsuccessful and
/// `Cancelled` without waiting; one with an error callback is so once that
/// callback ran on the callback thread, in its turn, and the cancel does not
/// wait for it. (A running task's result used to arrive only once the slot
/// saw its worker die: `ready()` was false after every cancel that answered
/// `Stopped`.)
#[test]
fn a_cancelled_result_is_ready_as_cancel_returns_its_callbacks_in_their_turn() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let marker = Scratch::temp("conformance-cancel-ready");
    let settled_at_once = |what: &str, outcome: CancelOutcome, r: &AsyncResult<_>| {
        assert!(
            r.ready(),
            "{what}: not ready after cancel answered {outcome:?}"
        );
        assert_eq!(r.successful(), Some(false), "{what}");
        match r.get_timeout(Duration::ZERO) {
            Err(Error::Cancelled { task }) => {
                assert_eq!(task, "issue_conformance_practical::hold", "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
    };
    let running = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    read_pid(&marker);
    let queued = apply_async_hold(&pool, PathBuf::new(), 0);
    let outcome = queued.cancel();
    assert_eq!(outcome, CancelOutcome::NotStarted);
    settled_at_once("queued", outcome, &queued);
    let outcome = running.cancel();
    assert_eq!(outcome, CancelOutcome::Stopped);
    settled_at_once("running", outcome, &running);

    let _ = std::fs::remove_file(&*marker);
    let map = map_async_hold_with(
        &pool,
        vec![(marker.to_path_buf(), 60_000), (PathBuf::new(), 0)],
        MapOptions::new().chunksize(1),
    );
    read_pid(&marker);
    let outcome = map.cancel();
    assert_eq!(outcome, CancelOutcome::Stopped);
    assert!(
        map.ready(),
        "map_async: not ready after cancel answered {outcome:?}"
    );
    assert_eq!(map.successful(), Some(false));
    assert!(matches!(
        map.get_timeout(Duration::ZERO),
        Err(Error::Cancelled { .. })
    ));

    let _ = std::fs::remove_file(&*marker);
    let running = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    read_pid(&marker);
    let handle = running.cancel_handle();
    let outcome = std::thread::spawn(move || handle.cancel()).join().unwrap();
    assert_eq!(outcome, CancelOutcome::Stopped);
    settled_at_once("by handle", outcome, &running);

    // With an error callback: ready once it ran, on the callback thread,
    // behind a slow callback of another result, which holds a lock this
    // thread holds: the cancel returns without waiting for either (it once
    // waited for the callbacks, so here for ever).
    let _ = std::fs::remove_file(&*marker);
    let gate = Arc::new(Mutex::new(()));
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let held = gate.lock().unwrap();
    let (began_tx, began_rx) = std::sync::mpsc::channel();
    let blocked = {
        let gate = gate.clone();
        apply_async_hold(&pool, PathBuf::new(), 0).callback(move |_| {
            began_tx.send(()).unwrap();
            drop(gate.lock().unwrap())
        })
    };
    // The slow callback has begun before the cancel.
    began_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let running = {
        let seen = seen.clone();
        apply_async_hold(&pool, marker.to_path_buf(), 60_000).error_callback(move |e| {
            assert_eq!(e.kind(), procpool::ErrorKind::Cancelled);
            seen.lock().unwrap().push("error callback");
        })
    };
    read_pid(&marker);
    // On another thread, so that a cancel that waited would fail the test
    // rather than hang it.
    let handle = running.cancel_handle();
    let (answer_tx, answer_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || answer_tx.send(handle.cancel()));
    let answer = answer_rx.recv_timeout(Duration::from_secs(5));
    assert_eq!(
        answer,
        Ok(CancelOutcome::Stopped),
        "the cancel waited behind the callbacks"
    );
    assert!(seen.lock().unwrap().is_empty(), "ran behind the slow one");
    drop(held);
    assert!(running.wait_timeout(Duration::from_secs(30)));
    assert_eq!(*seen.lock().unwrap(), ["error callback"]);
    settled_at_once("with an error callback", CancelOutcome::Stopped, &running);
    assert_eq!(blocked.get().unwrap(), 0);
    // The pool runs on, with a worker in place of each stopped one.
    assert_eq!(apply_hold(&pool, PathBuf::new(), 1).unwrap(), 1);
    drop(pool);
    assert_no_children();
}

/// `max_memory_per_child` in a map: "a worker whose resident memory
/// exceeds it after a task is retired cleanly (no task lost or run twice)".
/// Each item of a `map` (one item per chunk) and of an `imap_unordered`
/// leaks 20 MiB: workers are replaced as they pass 60 MiB, every item runs
/// exactly once with its own result, and each replacement keeps its
/// slot's number.
#[test]
fn memory_recycling_in_maps_runs_every_item_once_and_keeps_slot_numbers() {
    let _serial = serial();
    let (_, unclean_before) = procpool::__private::retirements();
    let pool = Pool::builder()
        .processes(2)
        .max_memory_per_child(60 * MIB as u64)
        .build()
        .unwrap();
    let dir = support::marker_dir("conformance", "memory-map");
    let items: Vec<(PathBuf, u32, usize)> =
        (0..16).map(|i| (dir.to_path_buf(), i, 20 << 10)).collect();
    let out = map_leak_with(&pool, items, MapOptions::new().chunksize(1)).unwrap();
    let mut per_pid: std::collections::HashMap<u32, usize> = Default::default();
    for (i, (echo, pid, slot)) in out.iter().enumerate() {
        assert_eq!(*echo as usize, i);
        assert!(matches!(slot, Some(0 | 1)), "item {i} on slot {slot:?}");
        *per_pid.entry(*pid).or_default() += 1;
    }
    // 16 × 20 MiB cannot fit in two workers under 60 MiB each.
    assert!(per_pid.len() >= 4, "workers were not recycled: {per_pid:?}");
    assert!(
        per_pid.values().all(|&n| n <= 3),
        "a worker ran on past the limit: {per_pid:?}"
    );
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..16).map(|i: u32| i.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&dir), expected, "an item was lost or ran twice");

    let dir = support::marker_dir("conformance", "memory-imap");
    let items: Vec<(PathBuf, u32, usize)> =
        (0..12).map(|i| (dir.to_path_buf(), i, 20 << 10)).collect();
    let mut got: Vec<u32> = imap_unordered_leak_with(&pool, items, MapOptions::new().chunksize(1))
        .map(|r| r.unwrap().0)
        .collect();
    got.sort();
    assert_eq!(got, (0..12).collect::<Vec<_>>());
    assert!(names(&dir).iter().all(|n| !n.starts_with("twice")));
    drop(pool);
    let (_, unclean) = procpool::__private::retirements();
    assert_eq!(unclean, unclean_before, "a retirement was not clean");
    assert_no_children();
}

/// The same for quick calls, which a busy worker gets pipelined in
/// batches: each leaks 256 KiB, 400 of them queued behind a blocker (about
/// 100 MiB in all, against a 24 MiB limit). Workers are recycled, and each
/// call runs once with its own argument.
#[test]
fn memory_recycling_of_pipelined_quick_calls_loses_and_repeats_nothing() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_memory_per_child(24 * MIB as u64)
        .build()
        .unwrap();
    let dir = support::marker_dir("conformance", "memory-pipelined");
    let warm = support::marker_dir("conformance", "memory-pipelined-warm");
    // Teach the pool that `leak` is quick.
    for i in 0..8 {
        apply_leak(&pool, warm.to_path_buf(), i, 0).unwrap();
    }
    let blocker = apply_async_hold(&pool, PathBuf::new(), 50);
    let calls: Vec<_> = (0..400)
        .map(|i| apply_async_leak(&pool, dir.to_path_buf(), i, 256))
        .collect();
    blocker.get().unwrap();
    let mut pids = std::collections::BTreeSet::new();
    let mut per_pid = std::collections::BTreeMap::new();
    for (i, r) in calls.into_iter().enumerate() {
        let (echo, pid, slot) = r.get().unwrap();
        assert_eq!(echo as usize, i);
        assert_eq!(slot, Some(0));
        pids.insert(pid);
        *per_pid.entry(pid).or_insert(0usize) += 1;
    }
    // 96 calls leak the 24 MiB alone: a worker checked after each task (or
    // each short batch of them, at most about 13 calls here) runs not many
    // more.
    assert!(
        per_pid.values().all(|&n| n <= 112),
        "a worker ran on far past the limit: {per_pid:?}"
    );
    assert!(pids.len() >= 3, "workers were not recycled: {pids:?}");
    let names = names(&dir);
    assert_eq!(names.len(), 400, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with("twice")), "{names:?}");
    drop(pool);
    assert_no_children();
}

/// "Worker starts, deaths, replacements, timeout kills and retirements ...
/// as events of a standard facade ..., with reasons", at the README's
/// levels: a death is `warn`, naming the signal and the task; a timeout
/// kill `warn`, naming the limit and the task; the replacement's start
/// `debug`; a retirement by `max_tasks_per_child` or by
/// `max_memory_per_child` `debug` (the latter saying it was memory), and
/// no warning names a retired worker.
#[test]
fn deaths_timeouts_and_retirements_are_logged_with_reasons_at_their_levels() {
    let _serial = serial();
    let log = capture_log();
    // Only this test's lines: a pid of an earlier test's worker may have
    // been given again to one of this test's.
    log.clear();
    let line = |what: &str| -> String {
        let mut found = Vec::new();
        wait_for(Duration::from_secs(10), what, || {
            found = log.lines_with(what);
            !found.is_empty()
        });
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    };
    let task = "issue_conformance_practical::hold";

    let pool = Pool::new(1).unwrap();
    let marker = Scratch::temp("conformance-log-death");
    let r = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    let victim = read_pid(&marker);
    // SAFETY: kill(2) on this test's own worker.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(matches!(r.get(), Err(Error::WorkerDied { .. })));
    let died = line(&format!("worker {victim} died"));
    assert!(died.starts_with("WARN"), "{died}");
    assert!(died.contains("SIGKILL") && died.contains(task), "{died}");
    let next = apply_pid(&pool).unwrap();
    let started = line(&format!("worker {next} ready"));
    assert!(started.starts_with("DEBUG"), "{started}");

    let impatient = pool.with_task_timeout(Some(Duration::from_millis(150)));
    assert!(matches!(
        apply_hold(&impatient, PathBuf::new(), 60_000),
        Err(Error::Timeout { .. })
    ));
    let timed_out = line("ran past its time limit of 150ms");
    assert!(timed_out.starts_with("WARN"), "{timed_out}");
    assert!(timed_out.contains(task), "{timed_out}");
    // It names the worker killed: `next`, unless `next` had not even read
    // the call within the limit (not scheduled, on a loaded machine); then
    // a line of its own says so, and the call ran past its limit on a new
    // worker, which that line names.
    if !timed_out.starts_with(&format!("WARN worker {next} ran past")) {
        let unread = line(&format!("worker {next} never read call `{task}`"));
        assert!(unread.starts_with("WARN"), "{unread}");
    }
    // Its last handle: `impatient` shares the pool.
    drop((impatient, pool));

    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let counted = apply_pid(&pool).unwrap();
    assert_ne!(apply_pid(&pool).unwrap(), counted);
    let retired = line(&format!("worker {counted} retired"));
    assert!(retired.starts_with("DEBUG"), "{retired}");
    drop(pool);

    let pool = Pool::builder()
        .processes(1)
        .max_memory_per_child(8 * MIB as u64)
        .build()
        .unwrap();
    let dir = support::marker_dir("conformance", "log-memory");
    let (_, grown, _) = apply_leak(&pool, dir.to_path_buf(), 0, 20 << 10).unwrap();
    assert_ne!(apply_pid(&pool).unwrap(), grown);
    let over = line(&format!("worker {grown} uses"));
    assert!(over.starts_with("DEBUG"), "{over}");
    assert!(over.contains("max_memory_per_child"), "{over}");
    let retired = line(&format!("worker {grown} retired"));
    assert!(retired.starts_with("DEBUG"), "{retired}");
    drop(pool);

    for pid in [counted, grown] {
        let warned: Vec<_> = log
            .lines_with(&pid.to_string())
            .into_iter()
            .filter(|l| l.starts_with("WARN"))
            .collect();
        assert!(warned.is_empty(), "{warned:?}");
    }
    assert_no_children();
}

/// Borrowed items "in every map form": the `starmap` forms take a tuple per
/// call, whose reference items may be borrowed too (`(&PathBuf,)` for a
/// task taking `&Path`, `(&String, usize)` for `(&str, usize)`), and an
/// `imap` over borrowed items is `Send` (checked at compile time).
#[test]
fn starmap_forms_take_borrowed_items() {
    fn assert_send<T: Send>(_: &T) {}
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let files: Vec<PathBuf> = (1..=9).map(|i| PathBuf::from("/x".repeat(i))).collect();
    let lens: Vec<usize> = (1..=9).map(|i| 2 * i).collect();
    assert_eq!(
        starmap_path_len(&pool, files.iter().map(|f| (f,))).unwrap(),
        lens
    );
    assert_eq!(
        starmap_async_path_len(&pool, files.iter().map(|f| (f,)))
            .get()
            .unwrap(),
        lens
    );
    let options = MapOptions::new().chunksize(2);
    assert_eq!(
        starmap_path_len_with(&pool, files.iter().map(|f| (f,)), options).unwrap(),
        lens
    );
    let words: Vec<String> = ["a", "bb", "ccc"].map(String::from).to_vec();
    let items: Vec<(&String, usize)> = words.iter().zip(1..).collect();
    assert_eq!(starmap_repeat_len(&pool, items.clone()).unwrap(), [1, 4, 9]);
    assert_eq!(
        starmap_async_repeat_len_with(&pool, items.clone(), options)
            .get()
            .unwrap(),
        [1, 4, 9]
    );
    let it = imap_repeat_len(&pool, items);
    assert_send(&it);
    let got: Vec<usize> = std::thread::scope(|s| {
        s.spawn(move || it.map(Result::unwrap).collect())
            .join()
            .unwrap()
    });
    assert_eq!(got, [1, 4, 9]);
}

/// "`procpool::worker_index()` (which slot of the pool runs this task)" in
/// maps, and across replacements by `max_tasks_per_child`: every item of
/// a `map` and an `imap` sees `Some(slot)` with `slot < processes` and
/// `is_worker()`, though each worker runs one chunk and is replaced.
#[test]
fn worker_index_in_map_items_and_across_retirements() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let out = map_whoami_with(&pool, 0..12, MapOptions::new().chunksize(1)).unwrap();
    let pids: std::collections::BTreeSet<u32> = out.iter().map(|(_, _, pid)| *pid).collect();
    assert_eq!(pids.len(), 12, "one worker per chunk: {out:?}");
    assert!(
        out.iter()
            .all(|(slot, worker, _)| matches!(slot, Some(0 | 1)) && *worker),
        "{out:?}"
    );
    let seen: Vec<_> = imap_whoami_with(&pool, 0..6, MapOptions::new().chunksize(2))
        .map(Result::unwrap)
        .collect();
    assert!(
        seen.iter()
            .all(|(slot, worker, _)| matches!(slot, Some(0 | 1)) && *worker),
        "{seen:?}"
    );
    assert_eq!(procpool::worker_index(), None);
    assert!(!procpool::is_worker());
    drop(pool);
    assert_no_children();
}

/// "An item ... fails alone" (reliability issue, item 4) as the caller of
/// `map_async` sees it with a callback: its error callback gets the first
/// failing item's `Panic`, has returned by the time `get` reports it, and
/// the `imap` over the same input yields every other item's value.
#[test]
fn a_failing_map_item_reaches_the_error_callback_before_get() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let items: Vec<(u64, u64)> = (0..10).map(|x| (x, 7)).collect();
    let r = map_async_fails_on_with(&pool, items.clone(), MapOptions::new().chunksize(5))
        .error_callback(move |e| sink.lock().unwrap().push(e.to_string()));
    match r.get() {
        Err(Error::Panic { message, .. }) => assert!(message.contains("item 7 is bad")),
        other => panic!("{other:?}"),
    }
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() == 1 && seen[0].contains("item 7 is bad"),
        "the error callback had not returned: {seen:?}"
    );
    let out: Vec<_> = imap_fails_on_with(&pool, items, MapOptions::new().chunksize(5)).collect();
    for (x, r) in out.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, x as u64),
            Err(Error::Panic { .. }) => assert_eq!(x, 7),
            Err(e) => panic!("item {x}: {e}"),
        }
    }
}

/// Stops its worker with SIGSTOP after writing its pid to `marker`.
#[pool_task]
fn stop_self(marker: PathBuf) -> u32 {
    std::fs::write(&marker, std::process::id().to_string()).unwrap();
    // SAFETY: raise(3) in this worker.
    unsafe { libc::raise(libc::SIGSTOP) };
    std::process::id()
}

/// A cancel of a task whose worker is stopped (SIGSTOP) mid-task returns
/// (`Stopped`), its result is `Cancelled`, and the pool serves on: the
/// cancel kills a worker that cannot answer.
#[test]
fn cancelling_a_task_whose_worker_is_stopped_returns_and_replaces_it() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let marker = Scratch::temp("conformance-cancel-stopped");
    let r = apply_async_stop_self(&pool, marker.to_path_buf());
    let victim = read_pid(&marker);
    wait_for(Duration::from_secs(10), "the worker to stop", || {
        support::state(victim) == Some('T')
    });
    let begun = Instant::now();
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    assert!(matches!(
        r.get_timeout(Duration::from_secs(30)),
        Err(Error::Cancelled { .. })
    ));
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );
    assert!(gone_within(victim, Duration::from_secs(10)));
    assert_ne!(apply_pid(&pool).unwrap(), victim);
    drop(pool);
    assert_no_children();
}

/// Waits while the file `hold` exists (a minute at most): the initializer
/// of a worker slow to start, for as long as the test needs.
#[pool_task]
fn slow_init(hold: PathBuf) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while hold.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A task queued while its slot starts a new worker (a slow initializer,
/// after the old worker died) never ran: cancelled then, it answers
/// `NotStarted` and never runs.
#[test]
fn a_task_waiting_for_a_starting_worker_is_not_started_when_cancelled() {
    let _serial = serial();
    let hold = Scratch::temp("conformance-slow-init");
    let pool = Pool::builder()
        .processes(1)
        .initializer(
            "issue_conformance_practical::slow_init",
            &(hold.to_path_buf(),),
        )
        .build()
        .unwrap();
    let first = apply_pid(&pool).unwrap();
    // The replacement's initializer waits until the cancel is done.
    std::fs::write(&*hold, b"").unwrap();
    // SAFETY: kill(2) on this test's own idle worker.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    // The idle slot (checking every 100 ms) reaps it and starts the
    // replacement, which waits in its initializer: a task queued then waits
    // for it. (A fixed 300 ms left it to the slot's speed: a slot that had
    // not noticed the death yet took the task, found the worker dead and
    // started the replacement for it, and the task, its call, was
    // `Stopped`.)
    wait_for(Duration::from_secs(30), "the replacement to start", || {
        support::children().iter().any(|&pid| pid != first)
    });
    let marker = Scratch::temp("conformance-cancel-starting");
    let r = apply_async_hold(&pool, marker.to_path_buf(), 0);
    std::thread::sleep(Duration::from_millis(200));
    let answer = r.cancel();
    std::fs::remove_file(&*hold).unwrap();
    assert_eq!(answer, CancelOutcome::NotStarted);
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    assert_ne!(apply_pid(&pool).unwrap(), first);
    assert!(!marker.exists(), "the cancelled task ran");
    drop(pool);
    assert_no_children();
}

/// A callback may cancel another task (a "first one wins" pattern): no
/// deadlock, the other task is `Cancelled`.
#[test]
fn a_callback_may_cancel_another_task() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let marker = Scratch::temp("conformance-cancel-from-callback");
    let slow = Arc::new(apply_async_hold(&pool, marker.to_path_buf(), 60_000));
    read_pid(&marker);
    let (tx, rx) = std::sync::mpsc::channel();
    let other = slow.clone();
    let quick = apply_async_hold(&pool, PathBuf::new(), 10).callback(move |_| {
        tx.send(other.cancel()).unwrap();
    });
    quick.wait();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        CancelOutcome::Stopped
    );
    let slow = Arc::try_unwrap(slow).ok().unwrap();
    assert!(matches!(slow.get(), Err(Error::Cancelled { .. })));
    drop(pool);
    assert_no_children();
}

/// `terminate` with a task running: its result is `Terminated`, and a
/// cancel afterwards changes nothing (`Finished`).
#[test]
fn a_cancel_after_terminate_changes_nothing() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let marker = Scratch::temp("conformance-cancel-terminated");
    let running = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    read_pid(&marker);
    let queued = apply_async_hold(&pool, PathBuf::new(), 0);
    pool.terminate();
    for r in [&running, &queued] {
        assert_eq!(r.cancel(), CancelOutcome::Finished);
        assert!(matches!(
            r.get_timeout(Duration::from_secs(10)),
            Err(Error::Terminated { .. })
        ));
    }
    drop(pool);
    assert_no_children();
}

/// Marks task `i` as started in `dir` (`twice-i` if it already was), then
/// sleeps `us` microseconds, or less once the file [`gate`]`(dir)` exists.
#[pool_task]
fn mark(dir: PathBuf, i: u64, us: u64) -> u64 {
    let create = |name: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
    };
    if create(i.to_string()).is_err() {
        let _ = create(format!("twice-{i}"));
    }
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end && !gate(&dir).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    i
}

/// The file that ends the sleeps of the `mark` calls given `dir` (beside
/// it: `dir` holds only markers).
fn gate(dir: &Path) -> PathBuf {
    dir.with_extension("gate")
}

/// Teaches `pool` (one worker) that `mark` is quick: rounds of calls queued
/// behind a short `hold`, until a round went out in a batch of several.
fn learn_mark_is_quick(pool: &Pool, warm: &Path) {
    let log = capture_log();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    loop {
        log.clear();
        let gate = apply_async_hold(pool, PathBuf::new(), 1);
        let round: Vec<_> = (i..i + 32)
            .map(|i| apply_async_mark(pool, warm.to_path_buf(), i, 0))
            .collect();
        i += 32;
        gate.get().unwrap();
        for r in round {
            r.get().unwrap();
        }
        let batches = log.lines_with("pipelined to worker");
        if batches.iter().any(|l| !l.contains(": 1 calls")) {
            return;
        }
        assert!(Instant::now() < deadline, "no batch: {batches:?}");
    }
}

/// On a pool of one worker that has learnt `mark` is quick: ten `mark`
/// calls sent behind a gate, call 0 running once the gate is done until
/// the test opens the file [`gate`] (a minute at most: however slow the
/// machine, it runs while the test looks) and 1..10 quick, so that they go
/// to the worker in a batch behind it; returns once call 0 runs, with its
/// marker directory (named after `name`), its gate file (not made yet),
/// the ten results and the log's batch lines.
fn slow_call_with_quick_ones_behind(
    pool: &Pool,
    log: &LogCapture,
    name: &str,
) -> (Scratch, Scratch, Vec<AsyncResult<u64>>, Vec<String>) {
    let warm = support::marker_dir("conformance", &format!("{name}-warm"));
    learn_mark_is_quick(pool, &warm);
    let dir = support::marker_dir("conformance", name);
    let open = Scratch::new(gate(&dir));
    log.clear();
    let gate = apply_async_hold(pool, PathBuf::new(), 300);
    let calls: Vec<_> = (0..10u64)
        .map(|i| {
            apply_async_mark(
                pool,
                dir.to_path_buf(),
                i,
                if i == 0 { 60_000_000 } else { 0 },
            )
        })
        .collect();
    gate.get().unwrap();
    wait_for(Duration::from_secs(30), "call 0 to start", || {
        dir.join("0").exists()
    });
    let batches = log.lines_with("pipelined to worker");
    (dir, open, calls, batches)
}

/// `close_and_cancel` "drops everything queued, lets running tasks finish"
/// (`shutdown(cancel_futures=True)`, which cancels every future not yet
/// running): calls pipelined to a busy worker behind the one it runs had
/// not started, so they are cancelled too and never run; the running one
/// finishes with its value.
#[test]
fn close_and_cancel_also_drops_calls_pipelined_behind_a_running_one() {
    let _serial = serial();
    let log = capture_log();
    let pool = Pool::new(1).unwrap();
    let (dir, gate, calls, batches) =
        slow_call_with_quick_ones_behind(&pool, log, "close-pipelined");
    let cancelled = pool.close_and_cancel();
    // Each answers as a call `close_and_cancel` took from the queue does:
    // it never ran (asked before they settle: call 0 runs on).
    let answers: Vec<CancelOutcome> = calls[1..].iter().map(|r| r.cancel()).collect();
    std::fs::write(&*gate, b"").unwrap();
    assert_eq!(answers, [CancelOutcome::NotStarted; 9]);
    pool.join();
    let outcomes: Vec<String> = calls
        .into_iter()
        .map(|r| match r.get() {
            Ok(i) => format!("ok {i}"),
            Err(e) => format!("{:?}", e.kind()),
        })
        .collect();
    assert_eq!(outcomes[0], "ok 0");
    assert_eq!(
        names(&dir),
        ["0"],
        "calls behind the running one ran after close_and_cancel \
         (batches {batches:?}, {cancelled} cancelled, outcomes {outcomes:?})"
    );
    assert_eq!(cancelled, 9, "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|o| o == "Cancelled"),
        "{outcomes:?}"
    );
    drop(pool);
    assert_no_children();
}

/// "A queued task never runs; a running one has its worker stopped and
/// replaced; its result becomes `Err(Cancelled)`": a quick call pipelined
/// to a busy worker behind a call that runs long is neither (it has not
/// started). Cancelled while the call in front still runs, it must not
/// run when that one ends: the worker used to race through the quick calls
/// before the pool read the reply in front, so the cancel answered
/// `Stopped` and the call ran all the same, its result `Ok`. The calls
/// behind it run once, on the replacement.
#[test]
fn a_quick_call_cancelled_while_pipelined_behind_a_slow_one_never_runs() {
    let _serial = serial();
    let log = capture_log();
    let pool = Pool::new(1).unwrap();
    let (dir, gate, calls, batches) =
        slow_call_with_quick_ones_behind(&pool, log, "pipelined-cancel");
    let outcome = calls[5].cancel();
    std::fs::write(&*gate, b"").unwrap();
    let results: Vec<String> = calls
        .into_iter()
        .map(|r| match r.get() {
            Ok(i) => format!("ok {i}"),
            Err(e) => format!("{:?}", e.kind()),
        })
        .collect();
    let expected: Vec<String> = (0..10)
        .map(|i| match i {
            5 => "Cancelled".to_string(),
            i => format!("ok {i}"),
        })
        .collect();
    assert_eq!(
        results, expected,
        "cancel answered {outcome:?}; batches {batches:?}"
    );
    assert!(
        matches!(outcome, CancelOutcome::Stopped | CancelOutcome::NotStarted),
        "{outcome:?}"
    );
    let mut ran: Vec<String> = (0..10)
        .filter(|&i| i != 5)
        .map(|i: u64| i.to_string())
        .collect();
    ran.sort();
    assert_eq!(names(&dir), ran, "the cancelled call ran, or one ran twice");
    drop(pool);
    assert_no_children();
}

/// This process's live workers (zombies aside).
fn live_workers() -> usize {
    support::children()
        .into_iter()
        .filter(|&pid| support::alive(pid))
        .count()
}

/// "Its worker stopped and replaced", "retired cleanly ... as with
/// `max_tasks_per_child`": after a cancel that stops a running task, and
/// after a retirement by memory, the pool is back to its number of live
/// workers with nothing queued, ready for the next call.
#[test]
fn after_a_cancel_or_a_memory_retirement_the_pool_has_all_its_workers() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(2)
        .max_memory_per_child(8 * MIB as u64)
        .build()
        .unwrap();
    wait_for(Duration::from_secs(10), "2 workers", || live_workers() == 2);
    let marker = Scratch::temp("conformance-replaced");
    let r = apply_async_hold(&pool, marker.to_path_buf(), 60_000);
    let victim = read_pid(&marker);
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    assert!(gone_within(victim, Duration::from_secs(10)));
    wait_for(
        Duration::from_secs(10),
        "2 workers after the cancel",
        || live_workers() == 2,
    );
    let dir = support::marker_dir("conformance", "replaced-memory");
    let (_, grown, _) = apply_leak(&pool, dir.to_path_buf(), 0, 20 << 10).unwrap();
    assert!(gone_within(grown, Duration::from_secs(10)), "not retired");
    wait_for(
        Duration::from_secs(10),
        "2 workers after the retirement",
        || live_workers() == 2,
    );
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[pool_task]
fn sum(values: &[u64]) -> u64 {
    values.iter().sum()
}

/// "Accept both owned and borrowed items for reference arguments", beyond
/// `&String` and `&PathBuf`: what the README promises for `&str` (any
/// `AsRef<str>`, at any depth of references) and `&[T]` (any
/// `AsRef<[T]>`), through `map` and `imap_unordered`.
#[test]
fn str_and_slice_tasks_take_any_as_ref_item() {
    use std::borrow::Cow;
    use std::rc::Rc;
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let strs: Vec<&str> = vec!["a", "a b", "a b c"];
    assert_eq!(map_words(&pool, strs.iter()).unwrap(), [1, 2, 3]);
    let boxed: Vec<Box<str>> = strs.iter().map(|&s| Box::from(s)).collect();
    assert_eq!(map_words(&pool, boxed.iter()).unwrap(), [1, 2, 3]);
    assert_eq!(map_words(&pool, boxed).unwrap(), [1, 2, 3]);
    let cows: Vec<Cow<'_, str>> = strs.iter().map(|&s| Cow::Borrowed(s)).collect();
    assert_eq!(map_words(&pool, cows).unwrap(), [1, 2, 3]);
    let shared: Vec<Rc<str>> = strs.iter().map(|&s| Rc::from(s)).collect();
    assert_eq!(map_words(&pool, shared).unwrap(), [1, 2, 3]);
    let arrays = [[1u64, 2], [3, 4]];
    assert_eq!(map_sum(&pool, arrays.iter()).unwrap(), [3, 7]);
    let slices: Vec<&[u64]> = vec![&[1, 2, 3], &[]];
    assert_eq!(map_sum(&pool, slices.iter()).unwrap(), [6, 0]);
    let boxed: Vec<Box<[u64]>> = vec![Box::from([5u64, 5].as_slice())];
    let mut got: Vec<u64> = imap_unordered_sum(&pool, boxed.iter())
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, [10]);
}

/// `close_and_cancel` from another thread while an `imap` over an endless
/// input is being read (the Ctrl-C recipe's shape): the reader gets the
/// results of chunks already running, then an error, then the end; no
/// hang, and the running task finishes.
#[test]
fn close_and_cancel_ends_an_endless_imap_read_in_another_thread() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let items = (0u64..).map(|i| (PathBuf::new(), 20 + i % 3));
    let it = imap_hold_with(&pool, items, MapOptions::new().chunksize(1));
    let (first_in, first) = std::sync::mpsc::channel();
    let (count, last) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut count = 0usize;
            let mut last = None;
            for r in it {
                match r {
                    Ok(_) => {
                        count += 1;
                        if count == 1 {
                            let _ = first_in.send(());
                        }
                    }
                    Err(e) => {
                        last = Some(e.kind());
                    }
                }
            }
            (count, last)
        });
        // Once results come in (a fixed 300 ms left it to the machine's
        // speed that the reader had chunks running by then).
        first
            .recv_timeout(Duration::from_secs(30))
            .expect("no result within 30 s");
        pool.close_and_cancel();
        reader.join().unwrap()
    });
    assert!(count > 0, "nothing ran before the cancel");
    assert!(
        matches!(
            last,
            Some(procpool::ErrorKind::Cancelled | procpool::ErrorKind::PoolClosed)
        ),
        "{last:?} after {count} results"
    );
    pool.join();
    drop(pool);
    assert_no_children();
}

/// "Silent unless the user installs a subscriber/logger" (and the
/// reliability issue: "the library writes nothing to stderr in normal
/// operation"): a program with no logger whose worker dies mid-task (a
/// `warn` event) and is replaced prints nothing on stderr.
#[test]
fn without_a_logger_a_worker_death_prints_nothing() {
    let _serial = serial();
    let out = Command::new(env!("CARGO_BIN_EXE_procpool-fault-helper"))
        .args(["exit", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("WorkerDied"), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_children();
}

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

/// Reliability issue, item 6, read through `next_timeout` (the imap's
/// other way to pull): an input that panics at item k yields the k results
/// first, then the panic resumes in that call, then the iterator ends.
#[test]
fn an_input_panic_resumes_in_next_timeout_at_its_position() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let input = (0..50u64).inspect(|&x| assert_ne!(x, 23, "input item {x} is broken"));
    let mut it = imap_square_with(&pool, input, MapOptions::new().chunksize(4));
    let mut values = Vec::new();
    let message = loop {
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            it.next_timeout(Duration::from_secs(30))
        }));
        match step {
            Ok(Some(Ok(v))) => values.push(v),
            Ok(other) => panic!("{other:?} after {values:?}"),
            Err(payload) => {
                break payload
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default()
            }
        }
    };
    assert!(message.contains("input item 23 is broken"), "{message}");
    assert_eq!(values, (0..23).map(|x| x * x).collect::<Vec<_>>());
    assert!(it.next_timeout(Duration::from_secs(1)).is_none());
    assert!(it.next().is_none());
}
