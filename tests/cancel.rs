//! Cancelling: `AsyncResult::cancel` on a queued task (it never runs), on a
//! running one (its worker is killed and replaced), on one running inside a
//! pipelined batch and on a running map chunk, on one waiting for its
//! worker to start (it never runs, the worker is kept), and
//! `Pool::close_and_cancel`.
//! Every task leaves a marker file when it starts (`dir/i`, or
//! `dir/twice-i` if it already ran once), so the tests see exactly which
//! tasks ran: nothing else is lost or run twice.

mod support;

use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use procpool::{pool_task, CancelOutcome, Error, MapOptions, Pool};
use support::{assert_no_children, capture_log, serial, LogCapture, Scratch};

procpool::enable_test_support!();

/// Marks that task `i` started, then sleeps `ms`; returns `i` and its pid.
#[pool_task]
fn mark(dir: PathBuf, i: u64, ms: u64) -> (u64, u32) {
    mark_micros(dir, i, ms * 1000)
}

/// [`mark`], sleeping `us` microseconds.
#[pool_task]
fn mark_micros(dir: PathBuf, i: u64, us: u64) -> (u64, u32) {
    let create = |name: String| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
    };
    if create(i.to_string()).is_err() {
        let _ = create(format!("twice-{i}"));
    }
    std::thread::sleep(Duration::from_micros(us));
    (i, std::process::id())
}

#[pool_task]
fn blocker(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// [`mark`], then waits (a minute at most) until the file `gate` exists:
/// holds a worker for as long as a test needs, however slow the machine.
#[pool_task]
fn gated_mark(dir: PathBuf, i: u64, gate: PathBuf) -> (u64, u32) {
    let marked = mark(dir, i, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    marked
}

/// The gate file of the test using `dir`: beside it, not among its
/// markers; removed when the guard drops.
fn gate_of(dir: &Path) -> Scratch {
    Scratch::new(dir.with_extension("gate"))
}

/// A pool of one worker, held by task 0 (`gated_mark`) until the test
/// writes the gate: the serial guard, the pool, the marker directory, the
/// gate and task 0's result.
fn one_worker_held(
    name: &str,
) -> (
    MutexGuard<'static, ()>,
    Pool,
    Scratch,
    Scratch,
    procpool::AsyncResult<(u64, u32)>,
) {
    let serial = serial();
    let dir = support::marker_dir("cancel", name);
    let pool = Pool::new(1).unwrap();
    let gate = gate_of(&dir);
    let running = apply_async_gated_mark(&pool, dir.clone(), 0, gate.clone());
    wait_for(&dir.join("0"));
    (serial, pool, dir, gate, running)
}

/// Drops a gated test's pool and checks that it left no process behind
/// (the test's markers and gate go with their guards).
fn ends_clean(pool: Pool) {
    drop(pool);
    assert_no_children();
}

/// The names of the marker files in `dir`, sorted.
fn markers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A pipelining test's pool of one worker, which has learnt that `mark`
/// and `mark_micros` are quick (so it pipelines them), and its marker
/// directory.
struct Pipelining {
    _serial: MutexGuard<'static, ()>,
    log: &'static LogCapture,
    dir: Scratch,
    /// Held to be removed with the test.
    _warm: Scratch,
    pool: Pool,
}

impl Pipelining {
    fn new(name: &str) -> Pipelining {
        let _serial = serial();
        let log = capture_log();
        let (dir, warm) = (
            support::marker_dir("cancel", name),
            support::marker_dir("cancel", &format!("{name}-warm")),
        );
        let pool = Pool::new(1).unwrap();
        // Rounds of calls queued behind a short blocker, until a round of
        // each task went out in a batch: the slot batches a task only once
        // its mean run time is under 1 ms, which a loaded machine may take
        // a few rounds to show.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut i = 0;
        for micros in [false, true] {
            loop {
                log.clear();
                let gate = apply_async_blocker(&pool, 1);
                let round: Vec<_> = (i..i + 32)
                    .map(|i| match micros {
                        false => apply_async_mark(&pool, warm.clone(), i, 0),
                        true => apply_async_mark_micros(&pool, warm.clone(), i, 0),
                    })
                    .collect();
                i += 32;
                gate.get().unwrap();
                for r in round {
                    r.get().unwrap();
                }
                let batches = log.lines_with("pipelined to worker");
                if batches.iter().any(|l| !l.contains(": 1 calls")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no batch after 60 s of warm-up: {batches:?}"
                );
            }
        }
        // The checks look at the test's own batches only.
        log.clear();
        Pipelining {
            _serial,
            log,
            dir,
            _warm: warm,
            pool,
        }
    }

    /// Checks that calls were pipelined (to worker `pid`, if given; else to
    /// any), then that the pool leaves no process behind.
    fn finish(self, pid: Option<u32>) {
        let to = pid.map_or(String::new(), |pid| pid.to_string());
        let batches = self.log.lines_with(&format!("pipelined to worker {to}"));
        assert!(
            batches.iter().any(|l| !l.contains(": 1 calls")),
            "the tasks were not pipelined: {batches:?}"
        );
        drop(self.pool);
        assert_no_children();
    }
}

#[test]
fn a_queued_task_never_runs_and_the_others_run_once() {
    let _serial = serial();
    let dir = support::marker_dir("cancel", "queued");
    let pool = Pool::new(1).unwrap();
    let gate = gate_of(&dir);
    let busy = apply_async_gated_mark(&pool, dir.clone(), 100, gate.clone());
    let queued: Vec<_> = (0..6)
        .map(|i| apply_async_mark(&pool, dir.clone(), i, 0))
        .collect();
    assert_eq!(queued[3].cancel(), CancelOutcome::NotStarted);
    // Cancelled once; a second cancel answers the same (Python's
    // `Future.cancel()` answers True again).
    assert_eq!(queued[3].cancel(), CancelOutcome::NotStarted);
    std::fs::write(&gate, b"").unwrap();
    busy.get().unwrap();
    for (i, r) in queued.into_iter().enumerate() {
        match r.get() {
            Ok((echo, _)) => assert_eq!(echo, i as u64),
            Err(Error::Cancelled { task }) => {
                assert_eq!(i, 3);
                assert_eq!(task, "cancel::mark");
            }
            Err(e) => panic!("task {i}: {e}"),
        }
    }
    assert_eq!(markers(&dir), ["0", "1", "100", "2", "4", "5"]);
    ends_clean(pool);
}

#[test]
fn a_running_task_is_stopped_its_worker_replaced_and_the_queue_runs_on() {
    let _serial = serial();
    let log = capture_log();
    let dir = support::marker_dir("cancel", "running");
    let pool = Pool::new(1).unwrap();
    let running = apply_async_mark(&pool, dir.clone(), 0, 60_000);
    let behind: Vec<_> = (1..4)
        .map(|i| apply_async_mark(&pool, dir.clone(), i, 0))
        .collect();
    wait_for(&dir.join("0"));
    log.clear();
    let begun = Instant::now();
    assert_eq!(running.cancel(), CancelOutcome::Stopped);
    running.wait();
    assert_eq!(running.cancel(), CancelOutcome::Stopped, "the same again");
    assert!(matches!(running.get(), Err(Error::Cancelled { .. })));
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "the running task was not stopped"
    );
    let mut pids = Vec::new();
    for (i, r) in behind.into_iter().enumerate() {
        let (echo, pid) = r.get().unwrap();
        assert_eq!(echo, i as u64 + 1);
        pids.push(pid);
    }
    assert_eq!(markers(&dir), ["0", "1", "2", "3"]);
    // One worker took the killed one's place (not one, then another).
    let starts = log.lines_with("slot 0: worker");
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0].contains("ready"), "{starts:?}");
    // A finished result is kept.
    let done = apply_async_mark(&pool, dir.clone(), 9, 0);
    let (_, pid) = done.get_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(done.cancel(), CancelOutcome::Finished);
    assert_eq!(done.cancel(), CancelOutcome::Finished);
    assert_eq!(done.get().unwrap().1, pid);
    drop(pool);
    assert_no_children();
}

/// A worker retired by `max_tasks_per_child` after a direct `apply` is
/// ended by the calling thread while the slot thread starts its successor:
/// ending it must not make the slot forget the successor, or a cancel of
/// the successor's task reports `Stopped` and stops nothing.
#[test]
fn a_running_task_is_stopped_on_the_worker_that_replaced_a_retired_one() {
    let _serial = serial();
    let dir = support::marker_dir("cancel", "after-retirement");
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    for round in 0..5u64 {
        // Directly on the idle worker, which then retires.
        assert!(apply_blocker(&pool, 0).is_ok());
        let running = apply_async_mark(&pool, dir.clone(), round, 60_000);
        wait_for(&dir.join(round.to_string()));
        let begun = Instant::now();
        assert_eq!(running.cancel(), CancelOutcome::Stopped, "round {round}");
        match running.get_timeout(Duration::from_secs(10)) {
            Err(Error::Cancelled { .. }) => {}
            other => panic!("round {round}: the cancelled task went on: {other:?}"),
        }
        assert!(begun.elapsed() < Duration::from_secs(5), "round {round}");
    }
    drop(pool);
    assert_no_children();
}

/// (Whether the tasks go out in batches is the slot's choice, from the run
/// times it observed: a loaded machine may make `mark` look slow then. A
/// round that sent none is run again on a new pool, up to 5 rounds: every
/// outcome is the same without batches, but the batch is what is tested.)
#[test]
fn a_running_task_inside_a_pipelined_batch_is_stopped_and_the_calls_behind_run_once() {
    for round in 0..5 {
        let t = Pipelining::new(&format!("batch-{round}"));
        let (pool, dir) = (&t.pool, &t.dir);
        let first = apply_async_blocker(pool, 300);
        // Queued behind the blocker, then sent as one batch: 0-4 quick, 5 slow.
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let ms = if i == 5 { 60_000 } else { 0 };
                apply_async_mark(pool, dir.to_path_buf(), i, ms)
            })
            .collect();
        let old_pid = first.get().unwrap();
        wait_for(&dir.join("5"));
        // 7 is behind 5: if the batch holding 5 also holds 7 (how many calls
        // a batch takes depends on the run times the slot observed), it is
        // marked and goes back to the queue with the others when 5 is
        // stopped, to be settled as cancelled there; otherwise it is still
        // queued. Either way it never runs.
        let seven = tasks[7].cancel();
        assert!(
            matches!(seven, CancelOutcome::Stopped | CancelOutcome::NotStarted),
            "{seven:?}"
        );
        assert_eq!(tasks[5].cancel(), CancelOutcome::Stopped);
        let mut new_pids = Vec::new();
        for (i, r) in tasks.into_iter().enumerate() {
            match r.get() {
                Ok((echo, pid)) => {
                    assert_eq!(echo, i as u64);
                    if i > 5 {
                        new_pids.push(pid);
                    } else {
                        assert_eq!(pid, old_pid, "task {i} ran before the cancel");
                    }
                }
                Err(Error::Cancelled { .. }) => assert!(i == 5 || i == 7, "task {i}"),
                Err(e) => panic!("task {i}: {e}"),
            }
        }
        // 6, 8, 9 were sent behind 5 (or queued), had not started, and ran
        // once on the new worker.
        assert!(new_pids.iter().all(|&p| p != old_pid), "{new_pids:?}");
        let expected: Vec<String> = (0..10).filter(|&i| i != 7).map(|i| i.to_string()).collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(markers(dir), expected, "each task ran exactly once");
        let batches = t.log.lines_with(&format!("pipelined to worker {old_pid}"));
        if batches.iter().any(|l| !l.contains(": 1 calls")) {
            t.finish(Some(old_pid));
            return;
        }
        println!("round {round}: no batch went out ({batches:?}); again");
    }
    panic!("in 5 rounds, the tasks never went out in a batch");
}

/// A task pipelined behind a running one is cancelled: once the one in
/// front finishes, its worker is killed before it can get far, and the
/// tasks behind it run once on the replacement.
///
/// Whether task 1 goes out in task 0's batch is the slot's choice, from
/// the run times it observed (a loaded machine may make `mark` look slow
/// then); if it did not, it is still queued: its cancel answers
/// `NotStarted` and it never runs, and the round is tried again on a new
/// pool (up to 5 rounds) until one pipelines it.
#[test]
fn a_task_pipelined_behind_a_running_one_is_stopped_when_its_turn_comes() {
    for round in 0..5 {
        let t = Pipelining::new(&format!("behind-{round}"));
        let (pool, dir) = (&t.pool, &t.dir);
        let first = apply_async_blocker(pool, 300);
        // 0 runs for 400 ms; 1 (cancelled while 0 runs) sleeps long if it runs.
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let ms = [400, 60_000, 0, 0, 0, 0][i as usize];
                apply_async_mark(pool, dir.to_path_buf(), i, ms)
            })
            .collect();
        let old_pid = first.get().unwrap();
        wait_for(&dir.join("0"));
        let cancel = tasks[1].cancel();
        let pipelined = match cancel {
            CancelOutcome::Stopped => true,
            CancelOutcome::NotStarted => false,
            other => panic!("round {round}: {other:?}"),
        };
        let begun = Instant::now();
        for (i, r) in tasks.into_iter().enumerate() {
            match r.get() {
                Ok((echo, pid)) => {
                    assert_eq!(echo, i as u64);
                    if pipelined {
                        assert_eq!(pid == old_pid, i == 0, "task {i} on pid {pid}");
                    }
                }
                Err(Error::Cancelled { .. }) => assert_eq!(i, 1),
                Err(e) => panic!("round {round}, task {i}: {e}"),
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "task 1 was not stopped"
        );
        let names = markers(dir);
        assert!(names.iter().all(|n| !n.starts_with("twice")), "{names:?}");
        // (Stopped at its turn, it may have begun: its marker is then there.)
        assert!(pipelined || !names.contains(&"1".to_string()), "{names:?}");
        for i in [0, 2, 3, 4, 5] {
            assert!(
                names.contains(&i.to_string()),
                "task {i} never ran: {names:?}"
            );
        }
        if pipelined {
            t.finish(Some(old_pid));
            return;
        }
        println!("round {round}: task 1 was still queued (NotStarted); again");
    }
    panic!("in 5 rounds, task 1 never went out in task 0's batch");
}

/// A cancel that reaches a call the moment it finishes, while the worker
/// already runs the call pipelined behind it, must not stop that one: the
/// parent has not read the first reply yet, so the first call still looks
/// running. Round after round (a gate call keeps the worker busy while
/// quick call `a` and call `b` are queued, so they go out as one batch;
/// `a` is cancelled as soon as it has started, or a little later), `b`
/// always returns and every task runs at most once.
///
/// Where a cancel lands depends on the machine (how soon this thread sees
/// `a`'s marker, how soon the parent reads `a`'s reply), so the rounds
/// also make sure both ends of the race are reached: every fourth `a`
/// sleeps after its marker, for 50 µs at first and twice as long after
/// each 100 rounds in which no cancel stopped it (a cancel always lands
/// in time once the sleep outlasts this thread's delay). Whether a cancel
/// found the worker already past `a` is the halt's decision, proved
/// without timing in `shm::halt`'s unit tests.
#[test]
fn a_cancel_as_the_call_finishes_never_stops_the_call_behind_it() {
    const ROUNDS: u64 = 1000;
    const MAX_ROUNDS: u64 = 10_000;
    let t = Pipelining::new("just-finished");
    let (pool, dir) = (&t.pool, &t.dir);
    let (mut stopped, mut finished) = (0, 0);
    // On one CPU the test's thread only gets to cancel once `a` is over
    // (unless it slept): the race is not there.
    let racing = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let (mut slow_micros, mut since_stop) = (50, 0);
    let mut rounds = 0;
    while rounds < ROUNDS || (racing && stopped == 0 && rounds < MAX_ROUNDS) {
        let round = rounds;
        rounds += 1;
        let (a, b) = (2 * round, 2 * round + 1);
        let gate = apply_async_blocker(pool, 1);
        let a_micros = if round % 4 == 3 { slow_micros } else { 0 };
        let first = apply_async_mark_micros(pool, dir.to_path_buf(), a, a_micros);
        let second = apply_async_mark_micros(pool, dir.to_path_buf(), b, 100);
        // Once `a` has started (its marker is there), plus 0 to 30 µs: as
        // it ends, and as `b` starts.
        let marker = dir.join(a.to_string());
        while !marker.exists() {
            std::hint::spin_loop();
        }
        let delay = Duration::from_nanos(round * 7919 % 30_000);
        let begun = Instant::now();
        while begun.elapsed() < delay {
            std::hint::spin_loop();
        }
        let cancel = first.cancel();
        match (cancel, first.get()) {
            (CancelOutcome::Finished, Ok((echo, _))) => {
                finished += 1;
                assert_eq!(echo, a);
            }
            (CancelOutcome::Finished, Err(e)) => panic!("round {round}: finished, yet {e}"),
            // Stopped as it finished: its result is kept.
            (CancelOutcome::Stopped, Ok(_)) => stopped += 1,
            (CancelOutcome::Stopped | CancelOutcome::NotStarted, Err(Error::Cancelled { .. })) => {
                stopped += usize::from(cancel == CancelOutcome::Stopped)
            }
            (cancel, outcome) => panic!("round {round}: {cancel:?} and {outcome:?}"),
        }
        gate.get().unwrap();
        match second.get() {
            Ok((echo, _)) => assert_eq!(echo, b),
            Err(e) => panic!("round {round}: the call behind the cancelled one failed: {e}"),
        }
        since_stop = if stopped > 0 { 0 } else { since_stop + 1 };
        if since_stop == 100 {
            since_stop = 0;
            slow_micros = (slow_micros * 2).min(100_000);
        }
    }
    let names = markers(dir);
    assert!(
        names.iter().all(|n| !n.starts_with("twice")),
        "ran twice: {names:?}"
    );
    for round in 0..rounds {
        let b = (2 * round + 1).to_string();
        assert!(names.contains(&b), "task {b} never ran");
    }
    // Both ends of the race were reached: some cancels stopped `a`, some
    // came once it had finished.
    if racing {
        assert!(
            stopped > 0 && finished > 0,
            "after {rounds} rounds: stopped {stopped}, finished {finished}"
        );
    }
    t.finish(None);
}

#[test]
fn a_map_async_with_a_running_chunk_is_cancelled_as_a_whole() {
    let _serial = serial();
    let dir = support::marker_dir("cancel", "map");
    let pool = Pool::new(2).unwrap();
    let items: Vec<(PathBuf, u64, u64)> = (0..8).map(|i| (dir.clone(), i, 60_000)).collect();
    let r = map_async_mark_with(&pool, items, MapOptions::new().chunksize(1));
    wait_for(&dir.join("0"));
    wait_for(&dir.join("1"));
    assert_eq!(r.cancel(), CancelOutcome::Stopped);
    assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
    // Only the two running chunks started; the pool carries on.
    assert_eq!(markers(&dir), ["0", "1"]);
    assert_eq!(
        map_mark(&pool, vec![(dir.clone(), 100, 0)]).unwrap()[0].0,
        100
    );
    drop(pool);
    assert_no_children();
}

/// The pool's initializer in the tests of a call that waits for its
/// worker's start, given a directory `aside` and the file `gate`: each
/// start leaves a file `start-<pid>` there; the first worker also makes
/// `first` and starts at once; each later one makes `waiting`, then waits
/// (a minute at most) for `gate`, so a call waiting for that worker stays
/// unsent.
#[pool_task]
fn slow_after_first(aside: PathBuf, gate: PathBuf) {
    std::fs::write(aside.join(format!("start-{}", std::process::id())), b"").unwrap();
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(aside.join("first"))
        .is_ok()
    {
        return;
    }
    std::fs::write(aside.join("waiting"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !gate.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many workers the pool of [`slow_after_first`] with `aside` started.
fn starts(aside: &Path) -> usize {
    markers(aside)
        .iter()
        .filter(|name| name.starts_with("start-"))
        .count()
}

/// A pool of one worker whose replacements wait for `gate` in their
/// initializer (see [`slow_after_first`]), replaced after each task if
/// `retire`, and the directory of its initializer's files (removed when
/// the test ends, passed or failed).
fn slow_replacements(name: &str, gate: &Path, retire: bool) -> (Pool, Scratch) {
    let aside = support::marker_dir("cancel", &format!("{name}-aside"));
    let mut builder = Pool::builder().processes(1).initializer(
        "cancel::slow_after_first",
        &(aside.to_path_buf(), gate.to_path_buf()),
    );
    if retire {
        builder = builder.max_tasks_per_child(1);
    }
    (builder.build().unwrap(), aside)
}

/// The directories of a test of a call waiting for its worker's start:
/// the calls' markers, the gate the replacement's initializer waits for,
/// and that initializer's files (see [`slow_after_first`]).
struct Waiting {
    dir: Scratch,
    gate: Scratch,
    aside: Scratch,
}

/// A pool of one worker whose replacements wait for a gate (see
/// [`slow_replacements`]); its worker, after call 0, dies idle, and call 1
/// then waits, unsent, while the slot starts the replacement (whose
/// initializer is waiting when this returns).
fn a_call_waiting_for_a_start(name: &str) -> (Pool, procpool::AsyncResult<(u64, u32)>, Waiting) {
    let (pool, scene) = slow_scene(name, false);
    let dir = scene.dir.to_path_buf();
    let (_, pid) = apply_mark(&pool, dir.clone(), 0, 0).unwrap();
    // SAFETY: kill(2) of our own worker.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let waits = apply_async_mark(&pool, dir.clone(), 1, 0);
    wait_for(&scene.aside.join("waiting"));
    // (Give the slot the moment it needs to take the call, if it has not.)
    std::thread::sleep(Duration::from_millis(50));
    (pool, waits, scene)
}

/// A pool of [`slow_replacements`] (retired after each task if `retire`)
/// and the directories of its test, named `name`.
fn slow_scene(name: &str, retire: bool) -> (Pool, Waiting) {
    let dir = support::marker_dir("cancel", name);
    let gate = gate_of(&dir);
    let (pool, aside) = slow_replacements(name, &gate, retire);
    (pool, Waiting { dir, gate, aside })
}

/// A call waiting for the worker that replaces a dead one (its slot holds
/// it while the new worker starts and runs the pool's initializer) was
/// never sent: cancelling it answers `NotStarted`, its result is
/// `Cancelled` at once, and the worker being started is kept. (A cancel
/// took such a call for a running one: it answered `Stopped` and killed
/// the new worker once up, so the pool ran the initializer again, from the
/// start, for a call no worker had.)
#[test]
fn a_call_waiting_for_its_workers_start_is_cancelled_not_started() {
    let _serial = serial();
    let (pool, waits, Waiting { dir, gate, aside }) = a_call_waiting_for_a_start("waits-start");
    assert_eq!(waits.cancel(), CancelOutcome::NotStarted);
    // Settled at once, not once the worker it waited for is up.
    assert!(matches!(
        waits.get_timeout(Duration::from_secs(10)),
        Err(Error::Cancelled { .. })
    ));
    std::fs::write(&*gate, b"").unwrap();
    assert_eq!(apply_mark(&pool, dir.clone(), 2, 0).unwrap().0, 2);
    assert_eq!(markers(&dir), ["0", "2"], "call 1 never ran");
    assert_eq!(starts(&aside), 2, "the replacement was started once");
    ends_clean(pool);
}

/// `close_and_cancel` cancels a call waiting for the worker that replaces
/// a dead one, as a cancel of it does: it was never sent (`cancel` answers
/// `NotStarted` for it). It is counted, never runs, and the worker being
/// started is kept; the calls queued behind it are cancelled as usual.
#[test]
fn close_and_cancel_cancels_a_call_waiting_for_its_workers_start() {
    let _serial = serial();
    let (pool, waits, Waiting { dir, gate, aside }) =
        a_call_waiting_for_a_start("close-waits-start");
    let queued = apply_async_mark(&pool, dir.clone(), 2, 0);
    assert_eq!(pool.close_and_cancel(), 2);
    assert!(matches!(queued.get(), Err(Error::Cancelled { .. })));
    std::fs::write(&*gate, b"").unwrap();
    assert!(matches!(
        waits.get_timeout(Duration::from_secs(30)),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(waits.cancel(), CancelOutcome::NotStarted);
    pool.join();
    assert_eq!(markers(&dir), ["0"], "calls 1 and 2 never ran");
    assert_eq!(starts(&aside), 2, "the replacement was started once");
    ends_clean(pool);
}

/// A `map_async` whose first chunk ran to its end while its next one waits
/// for the worker that replaces the retired one answers `NotStarted` (no
/// chunk was running: see `AsyncResult::cancel`), and its result is
/// `Cancelled` as a whole; the worker being started is kept.
#[test]
fn a_map_async_partly_run_answers_not_started() {
    let _serial = serial();
    let (pool, Waiting { dir, gate, aside }) = slow_scene("partly-run", true);
    let items: Vec<(PathBuf, u64, u64)> = (0..3).map(|i| (dir.clone(), i, 0)).collect();
    let r = map_async_mark_with(&pool, items, MapOptions::new().chunksize(1));
    // Chunk 0 ran and its worker retired; the replacement waits.
    wait_for(&aside.join("waiting"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(r.cancel(), CancelOutcome::NotStarted);
    assert!(matches!(
        r.get_timeout(Duration::from_secs(10)),
        Err(Error::Cancelled { .. })
    ));
    std::fs::write(&*gate, b"").unwrap();
    pool.close();
    pool.join();
    assert_eq!(markers(&dir), ["0"], "item 0 ran, the others never did");
    assert_eq!(starts(&aside), 2, "the replacement was started once");
    ends_clean(pool);
}

/// `close_and_cancel` counts the calls it cancels, not one that already
/// finished: here call 0 ran to its end and its worker retired
/// (`max_tasks_per_child(1)`), and the slot starts the replacement, whose
/// initializer waits for a gate. Nothing is queued or waiting: it answers
/// 0. (The slot still held the finished call as its batch's running one
/// until it took the next batch: `close_and_cancel` took it for a call
/// waiting for that start, marked it cancelled and counted it, answering
/// 1.)
#[test]
fn close_and_cancel_does_not_count_a_call_that_finished_before_its_slots_next_start() {
    let _serial = serial();
    let (pool, Waiting { dir, gate, aside }) = slow_scene("finished-then-start", true);
    let done = apply_async_mark(&pool, dir.clone(), 0, 0);
    assert_eq!(done.get_timeout(Duration::from_secs(30)).unwrap().0, 0);
    // Its worker retired; the replacement waits in its initializer.
    wait_for(&aside.join("waiting"));
    assert_eq!(pool.close_and_cancel(), 0, "nothing was queued or waiting");
    assert_eq!(done.cancel(), CancelOutcome::Finished);
    std::fs::write(&*gate, b"").unwrap();
    pool.join();
    assert_eq!(done.get().unwrap().0, 0, "its result is kept");
    assert_eq!(markers(&dir), ["0"]);
    assert_eq!(starts(&aside), 2, "the replacement was started once");
    ends_clean(pool);
}

#[test]
fn close_and_cancel_drops_the_queue_and_lets_running_tasks_finish() {
    let _serial = serial();
    let dir = support::marker_dir("cancel", "close");
    let pool = Pool::new(2).unwrap();
    // Held until the queue is dropped, however slow the machine.
    let gate = gate_of(&dir);
    let running: Vec<_> = (0..2)
        .map(|i| apply_async_gated_mark(&pool, dir.clone(), i, gate.clone()))
        .collect();
    wait_for(&dir.join("0"));
    wait_for(&dir.join("1"));
    let queued: Vec<_> = (2..12)
        .map(|i| apply_async_mark(&pool, dir.clone(), i, 0))
        .collect();
    assert_eq!(pool.close_and_cancel(), 10);
    assert!(matches!(
        apply_mark(&pool, dir.clone(), 99, 0),
        Err(Error::PoolClosed { .. })
    ));
    std::fs::write(&gate, b"").unwrap();
    pool.join();
    for (i, r) in running.into_iter().enumerate() {
        assert_eq!(r.get().unwrap().0, i as u64);
    }
    for r in queued {
        let e = r.get().unwrap_err();
        assert_eq!(e.kind(), procpool::ErrorKind::Cancelled);
        assert_eq!(e.task(), Some("cancel::mark"));
    }
    assert_eq!(markers(&dir), ["0", "1"]);
    ends_clean(pool);
}

/// A terminate after `close_and_cancel` leaves the calls it cancelled
/// cancelled: those pipelined behind a running call (counted, and held
/// until that call returns) once failed as `Terminated` when the terminate
/// killed their worker first, so the count named calls that did not end
/// cancelled. The running call fails as terminated.
///
/// Whether calls 1 to 5 go out in call 0's batch is the slot's choice
/// (see `a_task_pipelined_behind_a_running_one_is_stopped_when_its_turn_comes`);
/// the round is tried again on a new pool (up to 5 rounds) until they do.
#[test]
fn calls_close_and_cancel_counted_stay_cancelled_through_a_terminate() {
    for round in 0..5 {
        let t = Pipelining::new(&format!("terminate-{round}"));
        let (pool, dir) = (&t.pool, &t.dir);
        let first = apply_async_blocker(pool, 300);
        let tasks: Vec<_> = (0..6)
            .map(|i| apply_async_mark(pool, dir.to_path_buf(), i, [60_000, 0][i.min(1) as usize]))
            .collect();
        first.get().unwrap();
        wait_for(&dir.join("0"));
        let counted = pool.close_and_cancel();
        assert_eq!(counted, 5, "round {round}");
        pool.terminate();
        let mut outcomes = tasks.into_iter().map(|r| r.get().map_err(|e| e.kind()));
        assert_eq!(
            outcomes.next().unwrap(),
            Err(procpool::ErrorKind::Terminated)
        );
        let cancelled = outcomes
            .inspect(|o| assert_eq!(*o, Err(procpool::ErrorKind::Cancelled), "round {round}"))
            .count();
        assert_eq!(cancelled, counted);
        assert_eq!(markers(dir), ["0"], "round {round}");
        let batches = t.log.lines_with("pipelined to worker");
        if batches.iter().any(|l| !l.contains(": 1 calls")) {
            t.finish(None);
            return;
        }
        println!("round {round}: calls 1 to 5 were still queued; again");
    }
    panic!("in 5 rounds, calls 1 to 5 never went out in call 0's batch");
}

/// `close_and_cancel` racing `terminate`, `join` and `close` on other
/// threads (from helper-103's audit): every call it counted ends
/// `Cancelled`, whichever comes first, and every other call returns or
/// ends `Terminated`. (Before, a terminate that killed the workers first
/// failed the calls counted behind running ones as `Terminated`.)
#[test]
fn close_and_cancel_racing_terminate_counts_exactly_the_calls_that_end_cancelled() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let _serial = serial();
    for round in 0..20 {
        let pool = Pool::new(2).unwrap();
        let results: Vec<_> = (0..200u64)
            .map(|x| apply_async_blocker(&pool, x % 3))
            .collect();
        let counted = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (pool, counted) = (pool.clone(), counted.clone());
                std::thread::spawn(move || match (i + round) % 4 {
                    0 if round % 2 == 0 => pool.terminate(),
                    0 | 1 => pool.join(),
                    2 => {
                        counted.fetch_add(pool.close_and_cancel(), Ordering::SeqCst);
                    }
                    _ => pool.close(),
                })
            })
            .collect();
        let joining = pool.clone();
        support::within(Duration::from_secs(60), "the pool's end", move || {
            for thread in threads {
                thread.join().unwrap();
            }
            joining.join();
        });
        let mut cancelled = 0;
        for r in results {
            match r.get() {
                Ok(_) | Err(Error::Terminated { .. }) => {}
                Err(Error::Cancelled { .. }) => cancelled += 1,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(cancelled, counted.load(Ordering::SeqCst), "round {round}");
    }
    assert_no_children();
}

#[test]
fn an_imap_is_cancelled_its_running_chunks_stopped_and_it_ends() {
    let _serial = serial();
    let dir = support::marker_dir("cancel", "imap");
    let pool = Pool::new(2).unwrap();
    // The first two nap 5 ms: `mark` is then no quick task (under 1 ms),
    // which a slot would pipeline behind the long ones on one worker.
    let items = (0u64..).map(|i| (dir.clone(), i, if i < 2 { 5 } else { 60_000 }));
    let mut results = imap_mark_with(&pool, items, MapOptions::new().chunksize(1));
    assert_eq!(results.next().unwrap().unwrap().0, 0);
    assert_eq!(results.next().unwrap().unwrap().0, 1);
    // Now 2 and 3 run (one per worker) and two more chunks wait.
    wait_for(&dir.join("2"));
    wait_for(&dir.join("3"));
    let begun = Instant::now();
    assert_eq!(results.cancel(), CancelOutcome::Stopped);
    let rest: Vec<_> = results.collect();
    assert!(begun.elapsed() < Duration::from_secs(10), "not stopped");
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(matches!(rest[0], Err(Error::Cancelled { .. })), "{rest:?}");
    let names = markers(&dir);
    assert_eq!(names, ["0", "1", "2", "3"], "queued chunks never ran");
    // The endless input was dropped; the pool carries on.
    let mut unordered = imap_unordered_mark(&pool, vec![(dir.clone(), 50, 0)]);
    assert_eq!(unordered.next().unwrap().unwrap().0, 50);
    assert_eq!(unordered.cancel(), CancelOutcome::Finished);
    drop(unordered);
    drop(pool);
    assert_no_children();
}

/// A cancel that finds every queued chunk finished still stops an endless
/// input: the iterator yields those results, then `Cancelled` once in place
/// of the input it never read, then ends.
#[test]
fn an_imap_cancelled_after_its_chunks_finished_ends_with_cancelled() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let mut results = imap_blocker_with(
        &pool,
        std::iter::repeat(0u64),
        MapOptions::new().chunksize(1),
    );
    assert!(results.next().unwrap().is_ok());
    // Whatever it queued meanwhile finishes (if a chunk is still running
    // on a loaded machine, it is stopped and yields the Cancelled).
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(
        results.cancel(),
        CancelOutcome::Finished,
        "the input was left"
    );
    let rest: Vec<_> = results.collect();
    let (last, done) = rest.split_last().expect("Cancelled at least");
    assert!(matches!(last, Err(Error::Cancelled { .. })), "{rest:?}");
    assert!(done.iter().all(|r| r.is_ok()), "{rest:?}");
    assert!(done.len() < 10, "{} results after the cancel", done.len());
    drop(pool);
    assert_no_children();
}

#[test]
fn a_task_dropped_by_close_and_cancel_answers_not_started_to_cancel() {
    let (_serial, pool, dir, gate, running) = one_worker_held("close-answer");
    let queued = apply_async_mark(&pool, dir.clone(), 1, 0);
    let items: Vec<(PathBuf, u64, u64)> = (2..6).map(|i| (dir.clone(), i, 0)).collect();
    let mapped = map_async_mark_with(&pool, items, MapOptions::new().chunksize(2));
    // The call and the map's two chunks.
    assert_eq!(pool.close_and_cancel(), 3);
    // Python's Future.cancel() answers true for a future cancelled
    // before it ran, however that happened; the first cancel and every
    // later one answer alike.
    for _ in 0..2 {
        assert_eq!(queued.cancel(), CancelOutcome::NotStarted);
        assert_eq!(mapped.cancel(), CancelOutcome::NotStarted);
    }
    assert_eq!(
        queued.get().unwrap_err().kind(),
        procpool::ErrorKind::Cancelled
    );
    assert_eq!(
        mapped.get().unwrap_err().kind(),
        procpool::ErrorKind::Cancelled
    );
    std::fs::write(&gate, b"").unwrap();
    running.wait();
    // It ran: cancelling it now changes nothing.
    assert_eq!(running.cancel(), CancelOutcome::Finished);
    assert_eq!(running.get().unwrap().0, 0);
    assert_eq!(markers(&dir), ["0"]);
    pool.join();
    ends_clean(pool);
}

#[test]
fn threads_cancelling_one_queued_task_at_once_all_get_the_same_answer() {
    let (_serial, pool, dir, gate, running) = one_worker_held("cancel-race");
    const THREADS: usize = 4;
    for i in 1..=200u64 {
        let queued = apply_async_mark(&pool, dir.clone(), i, 0);
        let start = std::sync::Barrier::new(THREADS);
        let answers: Vec<CancelOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        queued.cancel()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            answers,
            [CancelOutcome::NotStarted; THREADS],
            "task {i}: the cancels disagree"
        );
        assert_eq!(
            queued.get().unwrap_err().kind(),
            procpool::ErrorKind::Cancelled
        );
    }
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(running.get().unwrap().0, 0);
    assert_eq!(markers(&dir), ["0"]);
    ends_clean(pool);
}

/// `join` on one thread while `close_and_cancel` on another takes many
/// queued tasks out: when `join` returns, every result is ready, as with
/// Python's `join` (it used to return as the worker stopped, while the
/// other thread was still settling the cancelled tasks).
#[test]
fn join_returns_once_the_tasks_close_and_cancel_took_are_settled() {
    let (_serial, pool, _dir, gate, running) = one_worker_held("join-while-cancel");
    let queued: Vec<_> = (0..100_000)
        .map(|_| apply_async_blocker(&pool, 0))
        .collect();
    let unready = std::thread::scope(|s| {
        let joiner = s.spawn(|| {
            pool.join();
            queued.iter().filter(|r| !r.ready()).count()
        });
        s.spawn(|| pool.close_and_cancel());
        std::fs::write(&gate, b"").unwrap();
        joiner.join().unwrap()
    });
    assert_eq!(unready, 0, "results not ready when join returned");
    running.get().unwrap();
    assert!(queued.iter().all(|r| r.ready()));
    ends_clean(pool);
}

/// A task whose result travels as one block of bytes: `get` takes such an
/// outcome out of its result rather than copy it.
#[pool_task]
fn bytes_of(n: u64) -> Vec<u8> {
    vec![7; n as usize]
}

/// A `CancelHandle` used after its result was consumed by `get`, while the
/// slot still holds the call (it waits for the worker it will never be
/// sent to), answers at once: the result, complete before `get` returned,
/// has no callbacks left to wait for. (Since a cancel waits for the
/// callbacks of the result it settled, it waited here until the slot
/// settled the call again: for as long as the worker's start took, for
/// ever if it never ended.)
#[test]
fn a_cancel_handle_after_the_result_was_consumed_does_not_wait_for_the_slot() {
    let _serial = serial();
    let (pool, scene) = slow_scene("handle-after-get", false);
    let Waiting { dir, gate, aside } = scene;
    let (_, pid) = apply_mark(&pool, dir.to_path_buf(), 0, 0).unwrap();
    // SAFETY: kill(2) of our own worker.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let waits = apply_async_bytes_of(&pool, 3);
    wait_for(&aside.join("waiting"));
    std::thread::sleep(Duration::from_millis(50));
    let handle = waits.cancel_handle();
    assert_eq!(waits.cancel(), CancelOutcome::NotStarted);
    assert!(matches!(waits.get(), Err(Error::Cancelled { .. })));
    let (tx, rx) = std::sync::mpsc::channel();
    let canceller = std::thread::spawn(move || tx.send(handle.cancel()).unwrap());
    let answer = rx.recv_timeout(Duration::from_secs(5));
    // (Let a hung cancel end, whatever happened, before asserting.)
    std::fs::write(&*gate, b"").unwrap();
    canceller.join().unwrap();
    assert!(
        matches!(
            answer,
            Ok(CancelOutcome::NotStarted | CancelOutcome::Finished)
        ),
        "the cancel waited for the worker's start: {answer:?}"
    );
    assert_eq!(apply_bytes_of(&pool, 2).unwrap(), [7, 7]);
    assert_eq!(starts(&aside), 2, "the replacement was started once");
    ends_clean(pool);
}

/// Takes an exclusive `flock` on `path`, fills `mb` MiB of memory in small
/// pages (a process that takes a moment to end once killed), writes its
/// pid to `ready`, then sleeps a minute.
#[pool_task]
fn lock_and_sleep(path: PathBuf, ready: PathBuf, mb: u64) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::create(&path).unwrap();
    // SAFETY: flock(2) on an open file; mmap(2) of fresh anonymous memory,
    // written within its length, never unmapped (the task is killed).
    unsafe {
        assert_eq!(libc::flock(file.as_raw_fd(), libc::LOCK_EX), 0);
        let len = (mb as usize) << 20;
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        libc::madvise(p, len, libc::MADV_NOHUGEPAGE);
        for at in (0..len).step_by(4096) {
            *(p as *mut u8).add(at) = 1;
        }
    }
    std::fs::write(&ready, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(file);
}

/// A cancel that answers `Stopped` settles the result as `Cancelled` as it
/// returns (Python's cancelled future is `done()`): the task must be over
/// by then, its worker gone, holding nothing any more. Right after `get`
/// gives `Cancelled`, the lock the task held is free. (When the cancel
/// began to settle the result itself, it returned as soon as it had sent
/// the SIGKILL: `get` gave `Cancelled` while the killed worker was still
/// ending, its lock held; before, `get` waited for the slot to see the
/// worker die.)
#[test]
fn a_stopped_task_holds_nothing_once_its_cancel_returns() {
    use std::os::fd::AsRawFd;
    let _serial = serial();
    let dir = support::marker_dir("cancel", "stopped-holds-nothing");
    let pool = Pool::new(1).unwrap();
    for round in 0..4 {
        let path = dir.join(format!("lock-{round}"));
        let ready = dir.join(format!("ready-{round}"));
        let r = apply_async_lock_and_sleep(&pool, path.clone(), ready.clone(), 256);
        wait_for(&ready);
        let pid: u32 = std::fs::read_to_string(&ready).unwrap().parse().unwrap();
        assert_eq!(r.cancel(), CancelOutcome::Stopped);
        assert!(matches!(r.get(), Err(Error::Cancelled { .. })));
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: flock(2) on an open file.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        assert!(
            free,
            "round {round}: the stopped task's lock was still held after get() gave Cancelled \
             (its worker {pid}: {:?})",
            support::state(pid)
        );
    }
    ends_clean(pool);
}

/// This worker's pid, as a result that travels as one block of bytes.
#[pool_task]
fn pid_bytes() -> Vec<u8> {
    std::process::id().to_le_bytes().to_vec()
}

/// A `CancelHandle` used right after `get` took a complete block result
/// (a `Vec<u8>`, which `get` takes out of the result rather than copy: an
/// async task's pattern, `spawn_blocking(move || r.get())` beside a
/// timeout that cancels through the handle) answers `Finished` at once and
/// stops nothing: the task finished and its value was returned. (The
/// taken outcome left the result looking unsettled to the handle, which
/// then cancelled the call anew: the pool, still holding the finished
/// call for an instant, killed the worker that had run it (`Stopped`, its
/// replacement running the next task), or the cancel waited two seconds
/// for an outcome that had already been taken.)
#[test]
fn a_cancel_handle_used_as_get_takes_a_block_result_answers_finished_and_stops_nothing() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let first = apply_pid_bytes(&pool).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    while round < 3000 && Instant::now() < deadline {
        let r = apply_async_pid_bytes(&pool);
        r.wait();
        let handle = r.cancel_handle();
        assert_eq!(
            r.get().unwrap(),
            first,
            "round {round}: a new worker ran it"
        );
        let started = Instant::now();
        let answer = handle.cancel();
        let took = started.elapsed();
        assert_eq!(answer, CancelOutcome::Finished, "round {round}");
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
        round += 1;
    }
    ends_clean(pool);
}

/// This worker's pid.
#[pool_task]
fn pid_of(_item: u64) -> u32 {
    std::process::id()
}

/// Cancelling a `map_async` whose result is there answers `Finished`,
/// keeps the result, and kills no worker: its chunks are cancelled all the
/// same (those behind a first error may still run), but a chunk whose
/// result was delivered is finished. (A call run alone was marked settled
/// only when its slot took its next job, after its result was delivered:
/// meanwhile a cancel took it for the running one and killed the worker
/// that had just run it, so the next call ran on a replacement, its
/// initializer run again; nearly every round did. Calls of a pipelined
/// batch were already marked before their results.)
#[test]
fn cancelling_a_map_async_whose_result_is_there_kills_no_worker() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let first = apply_pid_of(&pool, 0).unwrap();
    for round in 0..1000 {
        let map = map_async_pid_of(&pool, [round]);
        map.wait();
        assert_eq!(map.cancel(), CancelOutcome::Finished, "round {round}");
        assert_eq!(
            map.get().unwrap(),
            [first],
            "round {round}: the worker that ran the last round was replaced"
        );
    }
    ends_clean(pool);
}
