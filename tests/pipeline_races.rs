//! The two mechanisms of the local pool's pipelining that act on calls
//! already sent to a busy worker, raced against each other and against
//! the pool's other events, with real workers and many rounds: a cancel of
//! a call pipelined behind a running one (held before it starts), and the
//! give-back of the calls behind a call that runs long to an idle worker.
//! Each call leaves a marker as it starts and panics if its marker is
//! there (it ran twice); a watchdog aborts a run that hangs.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use procpool::{pool_task, AsyncResult, CancelOutcome, Error, MapOptions, Pool};

procpool::enable_test_support!();

/// Leaves marker `dir/i`, panicking if it is there (call `i` ran twice),
/// sleeps `ms` and returns `value(i, ms)`.
#[pool_task]
fn mark(dir: &Path, i: u64, ms: u64) -> u64 {
    if let Err(e) = std::fs::File::create_new(dir.join(i.to_string())) {
        panic!("call {i} ran twice ({e})");
    }
    std::thread::sleep(Duration::from_millis(ms));
    value(i, ms)
}

fn value(i: u64, ms: u64) -> u64 {
    i * 1000 + ms
}

fn ran(dir: &Path, i: u64) -> bool {
    dir.join(i.to_string()).exists()
}

/// Aborts the test binary if it is not dropped within `limit`: a hang
/// fails the run instead of stopping it.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(what: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        std::thread::spawn(move || {
            let begun = std::time::Instant::now();
            while !seen.load(SeqCst) {
                if begun.elapsed() > limit {
                    eprintln!("{what}: still running after {limit:?}: hung");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Sets its flag when dropped, also when a test panics: the thread that
/// kills or stops workers ends, and does not disturb the tests after.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A small deterministic generator (no dependency for it).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// A pool of two workers that have run `mark` quickly (so a busy one is
/// sent batches of its calls).
fn warm(builder: procpool::PoolBuilder) -> Pool {
    // However slow the machine: a call measured over 1 ms is not batched,
    // so nothing is behind it to give back. Workers retired after every
    // batch (each batch on a fresh worker) gave none back in 400 waves
    // under four busy loops on one CPU; 42 in 100 with this.
    procpool::__private::treat_pool_calls_as_quick();
    let pool = builder.processes(2).build().unwrap();
    let dir = support::marker_dir("races", "warm");
    let warm = map_mark(&pool, (0..200).map(|i| (&*dir, i, 0)));
    assert_eq!(warm.unwrap().len(), 200);
    pool
}

/// Cancels three calls of `calls` picked at random (one may be picked
/// twice): the answer each got first, by position. A call whose cancel
/// said `Finished` must have begun (its marker is there) or failed; `what`
/// names the wave in the panic.
fn cancel_three(
    calls: &[(u64, u64, AsyncResult<u64>)],
    dir: &Path,
    rng: &mut Rng,
    what: &str,
) -> Vec<Option<CancelOutcome>> {
    let mut answers = vec![None; calls.len()];
    for _ in 0..3 {
        let k = rng.below(calls.len() as u64) as usize;
        let (i, _, r) = &calls[k];
        let answer = r.cancel();
        // A call that failed before its first line (its worker killed, or
        // stopped past the start limit, or a time limit counted from the
        // reply before it) finished without its marker; the caller's match
        // says which failures each test allows.
        if answer == CancelOutcome::Finished && !ran(dir, *i) {
            assert!(
                r.wait_timeout(Duration::from_secs(30)) && r.successful() == Some(false),
                "{what}: call {i} not begun, its cancel said Finished, and it did not fail"
            );
        }
        answers[k].get_or_insert(answer);
    }
    answers
}

/// A wave of `n` calls, quick but for one of `slow_ms` near the front: the
/// calls pipelined behind it are given back once the other worker is idle.
fn wave(
    pool: &Pool,
    dir: &Path,
    first: u64,
    n: u64,
    rng: &mut Rng,
    slow_ms: u64,
) -> Vec<(u64, u64, AsyncResult<u64>)> {
    let slow = first + rng.below(8);
    (first..first + n)
        .map(|i| {
            let ms = if i == slow { slow_ms } else { 0 };
            (i, ms, apply_async_mark(pool, dir, i, ms))
        })
        .collect()
}

/// Cancels of calls pipelined behind a slow one, at random moments while
/// those calls are given back to the idle worker, on four pools: plain;
/// workers retired after 5 calls, and after every batch (by memory), with
/// calls given back still to skip; a time limit the slow call runs past.
/// A thread makes direct `apply` calls meanwhile. Each cancel's answer
/// holds: `NotStarted` never ran; `Stopped` ends `Cancelled` (or keeps
/// the value of a call that finished in that instant); `Finished` had
/// begun when `cancel` returned (its marker is there) and keeps its
/// value, or failed (`Timeout`, under the time limit); a call not
/// cancelled has its value (or `Timeout` under the time limit); none ran
/// twice, none hangs.
#[test]
fn cancels_racing_give_backs_keep_their_answers() {
    let _serial = support::serial();
    let log = support::capture_log();
    let _watchdog = Watchdog::new("cancels racing give-backs", Duration::from_secs(300));
    let limit = Duration::from_millis(40);
    for (p, builder) in [
        Pool::builder(),
        Pool::builder().max_tasks_per_child(5),
        Pool::builder().max_memory_per_child(1),
        Pool::builder().task_timeout(limit),
    ]
    .into_iter()
    .enumerate()
    {
        log.clear();
        let timed = p == 3;
        let mut slow_ms = if timed { 60 } else { 12 };
        let pool = warm(builder);
        let dir = support::marker_dir("races", &format!("cancel{p}"));
        let mut rng = Rng(p as u64 + 7);
        let (mut cancelled, mut kept, mut timeouts) = (0, 0, 0);
        let done = Arc::new(AtomicBool::new(false));
        std::thread::scope(|scope| {
            // Stops the direct calls also when an assertion below fails:
            // the scope waits for them before it unwinds (it hung until
            // the watchdog aborted the binary).
            let _stop_direct = SetOnDrop(done.clone());
            let direct = scope.spawn(|| {
                let mut i = 1_000_000;
                while !done.load(SeqCst) {
                    match apply_mark(&pool, &dir, i, 0) {
                        Ok(v) => assert_eq!(v, value(i, 0)),
                        Err(Error::Timeout { .. }) if timed => {}
                        Err(e) => panic!("pool {p}: direct call {i}: {e}"),
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                i - 1_000_000
            });
            let given_back = || {
                log.lines_with("go back to the queue for an idle worker")
                    .len()
            };
            // 100 waves, and more until calls were given back: a give-back
            // needs the other worker idle, the queue empty, while the slow
            // call runs. Workers retired after 5 calls restart about three
            // times for the rest of a wave, which took longer than 12 ms
            // under four busy loops on one CPU (none given back in 1,000
            // waves, all calls counted quick): the slow call is made twice
            // as long every 25 waves past 100 without a give-back, up to
            // 768 ms (given back at 48 ms there).
            let mut w = 0u64;
            while w < 100 || given_back() == 0 {
                assert!(
                    w < 400,
                    "pool {p}: no call was ever given back in {w} waves"
                );
                if w >= 100 && w.is_multiple_of(25) && !timed {
                    slow_ms = (slow_ms * 2).min(768);
                }
                let calls = wave(&pool, &dir, w * 100, 24, &mut rng, slow_ms);
                let pause = rng.below(slow_ms + 4);
                std::thread::sleep(Duration::from_micros(pause * 1000 + rng.below(1000)));
                let answers = cancel_three(&calls, &dir, &mut rng, &format!("pool {p} wave {w}"));
                for ((i, ms, r), answer) in calls.into_iter().zip(answers) {
                    let got = r.get_timeout(Duration::from_secs(30));
                    let what = format!("pool {p} wave {w} call {i} ({answer:?}): {got:?}");
                    match (answer, got) {
                        (None | Some(CancelOutcome::Finished), Ok(v)) => {
                            assert_eq!(v, value(i, ms), "{what}")
                        }
                        (Some(CancelOutcome::NotStarted), Err(Error::Cancelled { .. })) => {
                            assert!(!ran(&dir, i), "{what}: ran");
                            cancelled += 1;
                        }
                        (Some(CancelOutcome::Stopped), Err(Error::Cancelled { .. })) => {
                            cancelled += 1
                        }
                        (Some(CancelOutcome::Stopped), Ok(v)) => {
                            assert_eq!(v, value(i, ms), "{what}");
                            kept += 1;
                        }
                        (
                            None | Some(CancelOutcome::Finished | CancelOutcome::Stopped),
                            Err(Error::Timeout { .. }),
                            // Its marker may be missing: a call's limit counts
                            // from the reply before it (or its sending), and a
                            // worker held off the CPU that long under load has
                            // not reached the task's first line (the limit
                            // kills "its worker, if it had started it").
                        ) if timed => timeouts += 1,
                        // A time limit that kills a worker in a batch fails
                        // the call behind, which may have started, as died.
                        (
                            None | Some(CancelOutcome::Finished | CancelOutcome::Stopped),
                            Err(Error::WorkerDied { .. }),
                        ) if timed => timeouts += 1,
                        _ => panic!("{what}"),
                    }
                }
                w += 1;
            }
            done.store(true, SeqCst);
            let direct = direct.join().unwrap();
            let given_back = given_back();
            eprintln!(
                "pool {p}: waves {w}, slow call {slow_ms} ms, cancelled {cancelled}, kept {kept}, \
                 timeouts {timeouts}, direct calls {direct}, batches given back {given_back}"
            );
            assert!(given_back > 0, "pool {p}: no call was ever given back");
        });
        drop(pool);
    }
    support::assert_no_children();
}

/// How a round of [`stops_racing_give_backs_settle_every_call`] stops its pool.
#[derive(Debug, Clone, Copy)]
enum Stop {
    CloseJoin,
    CloseAndCancel,
    Terminate,
}

/// `close` + `join`, `close_and_cancel` + `join` and `terminate`, each at
/// a random moment of a wave whose calls behind a slow one are being
/// given back (calls and an `imap_unordered` of chunksize 1 read on
/// another thread): every call ends with its value or the stop's error
/// (`Cancelled` only for a call that never began), none ran twice, the
/// stop returns and no worker is left.
#[test]
fn stops_racing_give_backs_settle_every_call() {
    let _serial = support::serial();
    let _watchdog = Watchdog::new("stops racing give-backs", Duration::from_secs(240));
    let mut rng = Rng(11);
    for round in 0..36u64 {
        let stop = [Stop::CloseJoin, Stop::CloseAndCancel, Stop::Terminate][round as usize % 3];
        let pool = Arc::new(warm(Pool::builder()));
        let dir = support::marker_dir("races", &format!("stop{round}"));
        let calls = wave(&pool, &dir, 0, 30, &mut rng, 15);
        let reader = {
            let pool = pool.clone();
            let dir: &'static Path = Box::leak(dir.to_path_buf().into_boxed_path());
            let slow = 1000 + rng.below(6);
            std::thread::spawn(move || {
                let items = (1000..1020u64).map(|i| (dir, i, if i == slow { 15 } else { 0 }));
                imap_unordered_mark_with(&pool, items, MapOptions::new().chunksize(1))
                    .collect::<Vec<_>>()
            })
        };
        std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        let n = match stop {
            Stop::CloseJoin => {
                pool.close();
                0
            }
            Stop::CloseAndCancel => pool.close_and_cancel(),
            Stop::Terminate => {
                pool.terminate();
                0
            }
        };
        pool.join();
        let mut cancelled = 0;
        for (i, ms, r) in calls {
            let got = r.get_timeout(Duration::from_secs(30));
            let what = format!("round {round} ({stop:?}) call {i}: {got:?}");
            match (stop, got) {
                (_, Ok(v)) => assert_eq!(v, value(i, ms), "{what}"),
                (Stop::CloseAndCancel, Err(Error::Cancelled { .. })) => {
                    assert!(!ran(&dir, i), "{what}: ran");
                    cancelled += 1;
                }
                (Stop::Terminate, Err(Error::Terminated { .. })) => {}
                _ => panic!("{what}"),
            }
        }
        let yielded = reader.join().unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut stopped = false;
        for r in &yielded {
            match (stop, r) {
                (_, Ok(v)) if !stopped => assert!(seen.insert(*v), "round {round}: {v} twice"),
                (Stop::CloseAndCancel, Err(Error::Cancelled { .. }))
                | (_, Err(Error::PoolClosed { .. }))
                | (Stop::Terminate, Err(Error::Terminated { .. }))
                    if !stopped =>
                {
                    stopped = true
                }
                _ => panic!("round {round} ({stop:?}): imap yielded {yielded:?}"),
            }
        }
        if !stopped {
            assert_eq!(seen.len(), 20, "round {round}: {yielded:?}");
        }
        for v in seen {
            let (i, ms) = (v / 1000, v % 1000);
            assert!(i >= 1000 && ms == if ms == 15 { 15 } else { 0 } && ran(&dir, i));
        }
        if let Stop::CloseAndCancel = stop {
            assert!(
                n >= cancelled,
                "round {round}: close_and_cancel said {n}, {cancelled} calls Cancelled"
            );
        }
        drop(pool);
        support::assert_no_children();
    }
}

/// Cancels of pipelined calls and give-backs while a thread SIGKILLs a
/// random worker every 15 ms: a death may fail the call it ran
/// (`WorkerDied`, also after a cancel in that instant said `Stopped`; or
/// `WorkerStart`, three starts in a row killed, unbegun), but a call
/// cancelled `NotStarted` still never ran, one cancelled `Stopped` ends
/// `Cancelled`, with its value or died, a `Finished`
/// one had begun or died (a worker killed after it was sent the call, and
/// before its first line, fails it `WorkerDied` unbegun), and none ran
/// twice.
#[test]
fn cancels_and_give_backs_under_kills_keep_their_answers() {
    let _serial = support::serial();
    let _watchdog = Watchdog::new("cancels under kills", Duration::from_secs(240));
    let pool = warm(Pool::builder());
    let dir = support::marker_dir("races", "kills");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_killer = SetOnDrop(stop.clone());
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rng, mut kills) = (Rng(3), 0);
            while !stop.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(15));
                let workers = support::children();
                if let Some(&pid) = workers.get(rng.below(workers.len() as u64) as usize) {
                    // SAFETY: kill(2) of a worker of this test; no memory involved.
                    if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                        kills += 1;
                    }
                }
            }
            kills
        })
    };
    let mut rng = Rng(5);
    let (mut died, mut unstarted, mut cancelled) = (0, 0, 0);
    for w in 0..300u64 {
        let calls = wave(&pool, &dir, w * 100, 24, &mut rng, 12);
        std::thread::sleep(Duration::from_micros(rng.below(14_000)));
        let answers = cancel_three(&calls, &dir, &mut rng, &format!("wave {w}"));
        for ((i, ms, r), answer) in calls.into_iter().zip(answers) {
            let got = r.get_timeout(Duration::from_secs(30));
            let what = format!("wave {w} call {i} ({answer:?}): {got:?}");
            match (answer, got) {
                (None | Some(CancelOutcome::Finished | CancelOutcome::Stopped), Ok(v)) => {
                    assert_eq!(v, value(i, ms), "{what}")
                }
                // `Stopped`: the cancel came in the instant the slot had
                // seen the death and not yet settled the call (as with a
                // time limit in that instant, the call keeps that outcome).
                (
                    None | Some(CancelOutcome::Finished | CancelOutcome::Stopped),
                    Err(Error::WorkerDied { .. }),
                ) => died += 1,
                // Three starts in a row killed before their hello.
                (None | Some(CancelOutcome::Finished), Err(Error::WorkerStart { .. })) => {
                    assert!(!ran(&dir, i), "{what}: ran");
                    unstarted += 1;
                }
                (Some(CancelOutcome::NotStarted), Err(Error::Cancelled { .. })) => {
                    assert!(!ran(&dir, i), "{what}: ran");
                    cancelled += 1;
                }
                (Some(CancelOutcome::Stopped), Err(Error::Cancelled { .. })) => cancelled += 1,
                _ => panic!("{what}"),
            }
        }
    }
    stop.store(true, SeqCst);
    let kills = killer.join().unwrap();
    eprintln!("kills {kills}, WorkerDied {died}, WorkerStart {unstarted}, cancelled {cancelled}");
    assert!(died <= kills, "{died} calls died of {kills} kills");
    drop(pool);
    support::assert_no_children();
}

/// Cancels of pipelined calls and give-backs while a thread stops a random
/// worker (SIGSTOP) for 250 ms every 80 ms, with a start limit (the frame
/// stall limit) of 100 ms: a stopped worker's calls it had not begun go
/// to another worker, and one it began waits for it. Every call ends with
/// its value, the error its cancel promises, or (two workers stopped in
/// turn before it began, also after a cancel in that instant said
/// `Stopped`) `Protocol`; none ran twice, none hangs.
#[test]
fn cancels_and_give_backs_with_stopped_workers_keep_their_answers() {
    let _serial = support::serial();
    let _watchdog = Watchdog::new("cancels with stopped workers", Duration::from_secs(240));
    let log = support::capture_log();
    log.clear();
    let pool = warm(Pool::builder().frame_stall_timeout(Duration::from_millis(100)));
    let dir = support::marker_dir("races", "stops");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_stopper = SetOnDrop(stop.clone());
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut rng, mut stops) = (Rng(9), 0);
            while !stop.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(80));
                let workers = support::children();
                if let Some(&pid) = workers.get(rng.below(workers.len() as u64) as usize) {
                    // SAFETY: kill(2) of a worker of this test; no memory involved.
                    if unsafe { libc::kill(pid as i32, libc::SIGSTOP) } == 0 {
                        stops += 1;
                        std::thread::sleep(Duration::from_millis(250));
                        // SAFETY: as above.
                        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                    }
                }
            }
            stops
        })
    };
    let mut rng = Rng(13);
    let (mut unstarted, mut cancelled) = (0, 0);
    let moved = || {
        log.lines_with("it is stopped and the call goes to another worker")
            .len()
    };
    let given_back = || {
        log.lines_with("go back to the queue for an idle worker")
            .len()
    };
    // 150 waves, and more until both acted: the stopper thread, starved on
    // a loaded machine, may have stopped a worker only a few times by then
    // (5 stops, 2 calls moved, on one CPU beside a busy loop), none of them
    // with calls it had not begun.
    let mut w = 0u64;
    while w < 150 || moved() == 0 || given_back() == 0 {
        assert!(
            w < 3000,
            "the start limit or the give-back never acted in {w} waves"
        );
        let calls = wave(&pool, &dir, w * 100, 24, &mut rng, 12);
        std::thread::sleep(Duration::from_micros(rng.below(14_000)));
        let answers = cancel_three(&calls, &dir, &mut rng, &format!("wave {w}"));
        for ((i, ms, r), answer) in calls.into_iter().zip(answers) {
            let got = r.get_timeout(Duration::from_secs(30));
            let what = format!("wave {w} call {i} ({answer:?}): {got:?}");
            match (answer, got) {
                (None | Some(CancelOutcome::Finished | CancelOutcome::Stopped), Ok(v)) => {
                    assert_eq!(v, value(i, ms), "{what}")
                }
                // (`Stopped`: the cancel came in the instant the slot had
                // given up on the stopped worker and not yet settled it.)
                (
                    None | Some(CancelOutcome::Finished | CancelOutcome::Stopped),
                    Err(Error::Protocol { message, .. }),
                ) if message.contains("did not start") => {
                    assert!(!ran(&dir, i), "{what}: ran");
                    unstarted += 1;
                }
                (Some(CancelOutcome::NotStarted), Err(Error::Cancelled { .. })) => {
                    assert!(!ran(&dir, i), "{what}: ran");
                    cancelled += 1;
                }
                (Some(CancelOutcome::Stopped), Err(Error::Cancelled { .. })) => cancelled += 1,
                _ => panic!("{what}"),
            }
        }
        w += 1;
    }
    stop.store(true, SeqCst);
    let stops = stopper.join().unwrap();
    let (moved, given_back) = (moved(), given_back());
    eprintln!(
        "waves {w}, stops {stops}, calls moved off a stopped worker {moved}, batches \
         given back {given_back}, unstarted {unstarted}, cancelled {cancelled}"
    );
    assert!(
        moved > 0 && given_back > 0,
        "the start limit or the give-back never acted"
    );
    drop(pool);
    support::assert_no_children();
}

/// An `imap_unordered` of chunksize 1 (each item a pipelined call) is
/// cancelled after a few results, at random moments while the items
/// behind its slow one are given back: each value yielded is its item's,
/// once; an error, if any, is `Cancelled` and comes last; every marker
/// left is an item that yielded, or one that ran in the cancel's instant
/// (at most one per worker, and one held call that had begun); none ran
/// twice, nothing hangs.
#[test]
fn a_cancelled_imap_unordered_racing_give_backs_runs_nothing_twice() {
    let _serial = support::serial();
    let _watchdog = Watchdog::new("imap cancels", Duration::from_secs(240));
    let log = support::capture_log();
    let pool = warm(Pool::builder());
    log.clear();
    let mut rng = Rng(17);
    for round in 0..150u64 {
        let dir = support::marker_dir("races", &format!("imap{round}"));
        let slow = rng.below(8);
        let items = (0..40u64).map(|i| (&*dir, i, if i == slow { 12 } else { 0 }));
        let mut results = imap_unordered_mark_with(&pool, items, MapOptions::new().chunksize(1));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..rng.below(6) {
            match results.next() {
                Some(Ok(v)) => assert!(seen.insert(v), "round {round}: {v} twice"),
                other => panic!("round {round}: {other:?} before the cancel"),
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(12_000)));
        let answer = results.cancel();
        let rest: Vec<_> = results.collect();
        for (k, r) in rest.iter().enumerate() {
            match r {
                Ok(v) => assert!(seen.insert(*v), "round {round}: {v} twice"),
                Err(Error::Cancelled { .. }) if k + 1 == rest.len() => {}
                _ => panic!("round {round} ({answer:?}): {rest:?}"),
            }
        }
        for &v in &seen {
            let (i, ms) = (v / 1000, v % 1000);
            assert_eq!(v, value(i, if i == slow { 12 } else { 0 }), "round {round}");
            assert!(ms == 0 || i == slow && ran(&dir, i));
        }
        let marked = std::fs::read_dir(&*dir).unwrap().count();
        assert!(
            marked <= seen.len() + 3,
            "round {round} ({answer:?}): {marked} calls ran, {} yielded",
            seen.len()
        );
    }
    let given_back = log
        .lines_with("go back to the queue for an idle worker")
        .len();
    eprintln!("imap: batches given back {given_back}");
    assert!(given_back > 0, "no item was ever given back");
    drop(pool);
    support::assert_no_children();
}
