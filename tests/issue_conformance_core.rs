//! Issues 2, 3 and 4 read sentence by sentence, as a user of Python's
//! `multiprocessing.Pool` would test them first: the promises the other
//! test files prove only in part.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use procpool::{pool_task, MapOptions, Pool};

procpool::enable_test_support!();

/// Sleeps `ms`, then says where it ran: the shape of task a Python user
/// writes first (`time.sleep(x)`) to see how a pool hands out work. Leaves
/// a marker `dir/i` as it starts, and panics if one is there: call `i` ran
/// twice. Returns early once the file [`gate`]`(dir)` exists (the test
/// made it).
#[pool_task]
fn sleep_ms(dir: &Path, i: u64, ms: u64) -> (u32, u64) {
    if let Err(e) = std::fs::File::create_new(dir.join(i.to_string())) {
        panic!("call {i} ran twice ({e})");
    }
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end && !gate(dir).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    (std::process::id(), ms)
}

/// The file that ends the sleeps of the calls given `dir` (beside it, so
/// that `dir` holds only markers).
fn gate(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("gate")
}

/// The slow call's sleep: it ends when the test opens its gate, once the
/// quick calls are all back, however slow the machine (this long only if
/// they never come back while it runs).
const SLOW: u64 = 60_000;

/// The durations of 60 calls of one task: all quick but the 11th.
fn plan() -> impl Iterator<Item = (u64, u64)> {
    (0..60).map(|i| (i, if i == 10 { SLOW } else { 0 }))
}

/// Counts every call of this process's pools as quick (a test hook, for
/// the whole binary): the tests of give-backs need a busy worker to be sent
/// several calls at once, which a pool does only for a task whose calls it
/// measured under 1 ms each, as a slow or loaded machine may never
/// measure them (then no call is ever given back). Called by every test
/// of give-backs, so that none depends on which test ran first; the other
/// tests here make no claim about batching.
fn calls_count_as_quick() {
    procpool::__private::treat_pool_calls_as_quick();
}

/// Issue 2: "Tasks queue FIFO and go to whichever worker is free (no
/// per-worker pre-assignment, so one slow task never blocks others queued
/// behind it while another worker is idle)". One task function, mostly
/// quick calls and one slow one among them, on workers that have run it
/// quickly before (so a busy worker is sent several calls at once): the
/// quick calls queued behind the slow one run on the other worker, not
/// after it (they all come back while it still runs: its gate opens only
/// then), and each call runs once. (Failed before the calls pipelined
/// behind a call that runs long could go back to the queue: "quick call
/// 10 came back after 4.0s with a 4 s call".)
#[test]
fn quick_calls_queued_behind_a_slow_call_of_the_same_task_run_on_the_idle_worker() {
    let _serial = support::serial();
    calls_count_as_quick();
    let pool = Pool::new(2).unwrap();
    let warm_dir = support::marker_dir("conformance", "warm");
    let warm: Vec<_> = (0..200)
        .map(|i| apply_async_sleep_ms(&pool, &warm_dir, i, 0))
        .collect();
    for r in warm {
        assert_eq!(r.get().unwrap().1, 0);
    }
    for round in 0..2 {
        let dir = support::marker_dir("conformance", &format!("fifo{round}"));
        let gate = support::Scratch::new(gate(&dir));
        let mut pending: Vec<_> = plan()
            .map(|(i, ms)| apply_async_sleep_ms(&pool, &dir, i, ms))
            .collect();
        let slow = pending.remove(10);
        for (i, r) in pending.into_iter().enumerate() {
            let (pid, _) = r.get().unwrap();
            assert_ne!(pid, std::process::id());
            assert!(
                !slow.ready(),
                "round {round}: quick call {i} came back after the slow one, \
                 behind it, while the other worker was idle"
            );
        }
        std::fs::write(&*gate, b"").unwrap();
        assert_eq!(slow.get().unwrap().1, SLOW);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 60);
    }
}

/// The same for a map's chunks (`chunksize(1)`, as Python's `imap`):
/// `imap_unordered` yields every quick item before the slow one.
#[test]
fn imap_unordered_yields_the_quick_items_behind_a_slow_one_first() {
    let _serial = support::serial();
    calls_count_as_quick();
    let pool = Pool::new(2).unwrap();
    let warm_dir = support::marker_dir("conformance", "imap-warm");
    let one = MapOptions::new().chunksize(1);
    let warm = map_sleep_ms_with(&pool, (0..200).map(|i| (&*warm_dir, i, 0)), one);
    assert_eq!(warm.unwrap().len(), 200);
    for round in 0..2 {
        let dir = support::marker_dir("conformance", &format!("imap{round}"));
        let gate = support::Scratch::new(gate(&dir));
        let items = plan().map(|(i, ms)| (&*dir, i, ms));
        let mut results = imap_unordered_sleep_ms_with(&pool, items, one);
        // The slow item's gate opens once 59 items came: the quick ones, if
        // they do not wait behind it.
        let mut order: Vec<u64> = results.by_ref().take(59).map(|r| r.unwrap().1).collect();
        std::fs::write(&*gate, b"").unwrap();
        order.extend(results.map(|r| r.unwrap().1));
        assert_eq!(order.len(), 60);
        assert_eq!(
            order.iter().position(|&ms| ms == SLOW),
            Some(59),
            "round {round}: quick items came after the slow one"
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 60);
    }
}

/// Parses a port; `Err` is an ordinary value of the task (issue 2: "`Result<T,
/// E>` (passed back as a value; a panic is not an `Err`)").
#[pool_task]
fn parse_port(text: String) -> Result<u16, String> {
    text.parse::<u16>().map_err(|e| format!("{text:?}: {e}"))
}

/// An `Err` the task returned is a successful call everywhere: `apply`,
/// `apply_async` (`successful()`, `callback` rather than `error_callback`),
/// `map` (no "first error": the `Err` is an item's value), `imap`, and by name.
#[test]
fn a_returned_err_is_a_value_through_every_call() {
    let _serial = support::serial(); // (kills of another test spare it)
    let pool = Pool::new(2).unwrap();
    assert_eq!(apply_parse_port(&pool, "80".into()).unwrap(), Ok(80));
    let err = apply_parse_port(&pool, "x".into()).unwrap().unwrap_err();
    assert!(err.contains("invalid digit"), "{err}");

    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    let r = apply_async_parse_port(&pool, "nope".into())
        .callback(move |v| tx.send(format!("callback {v:?}")).unwrap())
        .error_callback(move |e| tx2.send(format!("error_callback {e}")).unwrap());
    r.wait();
    assert!(r.ready());
    assert_eq!(r.successful(), Some(true));
    let seen = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(seen.starts_with("callback Err("), "{seen}");
    assert!(rx.try_recv().is_err(), "both callbacks ran");
    assert!(r.get().unwrap().is_err());

    let items = ["1", "two", "3"].map(String::from);
    let mapped = map_parse_port(&pool, items.clone()).unwrap();
    assert_eq!(mapped[0], Ok(1));
    assert!(mapped[1].is_err());
    assert_eq!(mapped[2], Ok(3));
    let lazily: Vec<_> = imap_parse_port(&pool, items.clone())
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(lazily, mapped);
    let by_name: Result<u16, String> = pool
        .apply_by_name(
            "issue_conformance_core::parse_port",
            &("70000".to_string(),),
        )
        .unwrap();
    assert!(by_name.is_err());
}

/// Divides; panics on a zero divisor, as the quickstart's `divide(10, 0)`.
#[pool_task]
fn divide(a: i64, b: i64) -> i64 {
    a / b
}

/// Issue 2: "Messages name the task", for each failure a first test meets
/// (`Display`, and `Error::task`).
#[test]
fn every_error_message_names_its_task() {
    let _serial = support::serial();
    let pool = Pool::new(1).unwrap();
    // No time limit for the panic: its report (a backtrace) can take longer
    // than the limit below to make on a loaded machine.
    let panic = apply_divide(&pool, 10, 0).unwrap_err();
    assert!(matches!(panic, procpool::Error::Panic { .. }), "{panic:?}");
    let dir = support::marker_dir("conformance", "names");
    let impatient = pool.with_task_timeout(Some(Duration::from_millis(300)));
    let timeout = apply_sleep_ms(&impatient, &dir, 0, 5_000).unwrap_err();
    assert!(
        matches!(timeout, procpool::Error::Timeout { .. }),
        "{timeout:?}"
    );
    let slow = apply_async_sleep_ms(&pool, &dir, 1, 60_000);
    let waited = slow.get_timeout(Duration::from_millis(10)).unwrap_err();
    pool.terminate();
    let terminated = slow.get().unwrap_err();
    let closed = apply_divide(&pool, 1, 1).unwrap_err();
    let unknown = pool
        .apply_by_name::<u8>("issue_conformance_core::no_such_task", &())
        .unwrap_err();
    for (e, task) in [
        (&panic, "issue_conformance_core::divide"),
        (&timeout, "issue_conformance_core::sleep_ms"),
        (&waited, "issue_conformance_core::sleep_ms"),
        (&terminated, "issue_conformance_core::sleep_ms"),
        (&closed, "issue_conformance_core::divide"),
        (&unknown, "issue_conformance_core::no_such_task"),
    ] {
        assert!(e.to_string().contains(task), "{e} does not name {task}");
        assert_eq!(e.task(), Some(task));
    }
    assert!(matches!(terminated, procpool::Error::Terminated { .. }));
    assert!(matches!(closed, procpool::Error::PoolClosed { .. }));
}

/// Issue 3: "no other task is lost or duplicated", with calls given back
/// from busy workers again and again: waves of quick calls with a slow one
/// among them, on 3 workers, while a thread SIGKILLs a random worker now
/// and then. Every call ends `Ok` or `WorkerDied` (or `WorkerStart`, its
/// worker killed while starting three times in a row, and the call never
/// ran), and none ran twice (its marker would be there: `Panic`).
#[test]
fn calls_given_back_under_kills_run_at_most_once() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let _serial = support::serial();
    calls_count_as_quick();
    let log = support::capture_log();
    let pool = Pool::new(3).unwrap();
    let warm_dir = support::marker_dir("conformance", "chaos-warm");
    let warm = map_sleep_ms(&pool, (0..300).map(|i| (&*warm_dir, i, 0)));
    assert_eq!(warm.unwrap().len(), 300);
    let dir = support::marker_dir("conformance", "chaos");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut kills, mut n) = (0, 1u64);
            while !stop.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(30));
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let workers = support::children();
                if let Some(&pid) = workers.get((n >> 33) as usize % workers.len().max(1)) {
                    // SAFETY: kill(2) of a worker of this test; no memory involved.
                    if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                        kills += 1;
                    }
                }
            }
            kills
        })
    };
    let (mut ok, mut died, mut start_failed) = (0, 0, 0);
    let given_back = || {
        log.lines_with("go back to the queue for an idle worker")
            .len()
    };
    // 40 waves, and more until calls were given back (400 at most): a
    // give-back needs a slow call running with calls batched behind it
    // while another worker waits idle with nothing queued, which the kills
    // and a loaded machine's timing may deny a wave.
    let mut wave = 0u64;
    while wave < 40 || given_back() == 0 {
        assert!(wave < 400, "no call was ever given back in {wave} waves");
        let slow_at = wave * 7 % 60;
        let pending: Vec<_> = (0..60u64)
            .map(|i| {
                let ms = if i == slow_at { 30 } else { 0 };
                let i = wave * 60 + i;
                (i, ms, apply_async_sleep_ms(&pool, &dir, i, ms))
            })
            .collect();
        for (i, ms, r) in pending {
            match r.get() {
                Ok((_, slept)) => {
                    assert_eq!(slept, ms);
                    ok += 1;
                }
                Err(procpool::Error::WorkerDied { .. }) => died += 1,
                // Its worker killed while starting, three times in a row
                // (the pool gives up then): the call never ran.
                Err(procpool::Error::WorkerStart { .. }) => {
                    assert!(
                        !dir.join(i.to_string()).exists(),
                        "wave {wave}: call {i} ran, yet its worker never started"
                    );
                    start_failed += 1;
                }
                Err(e) => panic!("wave {wave}: {e}"),
            }
        }
        wave += 1;
    }
    stop.store(true, SeqCst);
    let kills = killer.join().unwrap();
    let given_back = given_back();
    eprintln!(
        "waves {wave}: ok {ok}, WorkerDied {died}, WorkerStart {start_failed}, kills {kills}, \
         batches given back {given_back}"
    );
    assert!(
        ok > 0 && died <= kills,
        "ok {ok}, died {died}, kills {kills}"
    );
    assert!(given_back > 0, "no call was ever given back");
    drop(pool);
    support::assert_no_children();
}
