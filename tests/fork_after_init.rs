//! A program that forks after `init()` (a daemon that detaches, say) and
//! uses pools on both sides: the copy made by `fork` has its parent's
//! memory but none of its threads, so it watches its own workers' deaths
//! with a death watch of its own, and leaves the parent's fork server (which
//! answers its launcher only) to the parent.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::fork_server;

procpool::enable_test_support!();

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn exit_with(code: i32) -> u8 {
    std::process::exit(code)
}

/// In the forked copy: a pool of its own runs a call, and sees its worker
/// die. The exit code says what went wrong (0: nothing).
fn in_the_copy() -> i32 {
    let pool = match Pool::new(1) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("copy: {e}");
            return 2;
        }
    };
    // Pools started and ended at the same time as the parent's.
    for _ in 0..5 {
        if Pool::new(2).and_then(|p| apply_square(&p, 3)).ok() != Some(9) {
            return 3;
        }
    }
    if apply_square(&pool, 4).ok() != Some(16) {
        return 4;
    }
    match apply_exit_with(&pool, 3) {
        Err(Error::WorkerDied { .. }) => {}
        other => {
            eprintln!("copy: {other:?}");
            return 5;
        }
    }
    match apply_square(&pool, 5) {
        Ok(25) => 0,
        other => {
            eprintln!("copy after the death: {other:?}");
            6
        }
    }
}

#[test]
fn a_copy_made_by_fork_watches_its_own_workers_and_leaves_the_fork_server_alone() {
    // The parent's death watch runs, and reads its fork server.
    assert_eq!(
        support::await_fork_server(),
        Some(true),
        "workers are forked"
    );
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let server = fork_server().expect("a fork server");
    // SAFETY: fork in a test binary; the copy runs only `in_the_copy`
    // (pools, calls) and leaves with `_exit`, never returning into the
    // harness. glibc's allocator is usable after fork.
    let copy = unsafe { libc::fork() };
    assert!(copy >= 0, "fork failed");
    if copy == 0 {
        // SAFETY: a hang here ends by SIGALRM, never outliving the test.
        unsafe { libc::alarm(60) };
        let code = std::panic::catch_unwind(in_the_copy).unwrap_or(7);
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    let mut copy = Copy(Some(copy));
    // Meanwhile the parent starts pools too, each answered by its server.
    let began = Instant::now();
    for _ in 0..5 {
        let p = Pool::new(2).unwrap();
        assert_eq!(apply_square(&p, 5).unwrap(), 25);
    }
    let took = began.elapsed();
    let status = copy.wait(Duration::from_secs(60));
    assert_eq!(status, Some(0), "the copy's exit code (see its stderr)");
    // The fork server is still the parent's, and still serves it.
    assert_eq!(fork_server(), Some(server), "the fork server was lost");
    assert_eq!(procpool::__private::fork_server_serves(), Some(true));
    assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    eprintln!("five pools of the parent, beside the copy's: {took:?}");
}

/// In the copy: the parent's pool, used there by mistake (the copy holds
/// its only handle there). The exit code says what went wrong (0: nothing):
/// every call fails at once with `Config` naming the fork (none reaches the
/// parent's workers, whose channels the copy shares), and `close`, `join`,
/// `terminate` and the drop return at once (the pool's threads did not come
/// along, and its workers are the parent's).
fn parents_pool_in_the_copy(pool: Pool) -> i32 {
    let wait = Duration::from_secs(5);
    let foreign = |e: &Error| matches!(e, Error::Config { message } if message.contains("fork"));
    let checks: [(&str, Result<Vec<u64>, Error>); 6] = [
        ("apply", apply_square(&pool, 3).map(|x| vec![x])),
        (
            "apply_async",
            apply_async_square(&pool, 3)
                .get_timeout(wait)
                .map(|x| vec![x]),
        ),
        ("map", map_square(&pool, 0..3)),
        ("map_async", map_async_square(&pool, 0..3).get_timeout(wait)),
        (
            "imap",
            imap_square(&pool, 0..3)
                .next()
                .unwrap_or(Ok(0))
                .map(|x| vec![x]),
        ),
        (
            "apply_by_name",
            pool.apply_by_name::<u64>(concat!(module_path!(), "::square"), &(3u64,))
                .map(|x| vec![x]),
        ),
    ];
    for (i, (what, result)) in checks.into_iter().enumerate() {
        match result {
            Err(e) if foreign(&e) => {}
            other => {
                eprintln!("copy: {what}: {other:?}");
                return 2 + i as i32;
            }
        }
    }
    // A callback runs in the copy, and the result is there once it returned.
    let (tx, rx) = mpsc::channel();
    let r = apply_async_square(&pool, 3).on_complete(move |r| {
        let _ = tx.send(r.is_err());
    });
    if !matches!(r.get_timeout(wait), Err(e) if foreign(&e)) || rx.recv_timeout(wait) != Ok(true) {
        eprintln!("copy: apply_async with a callback");
        return 10;
    }
    pool.close();
    pool.join();
    pool.terminate();
    let _ = pool.close_and_cancel();
    drop(pool);
    0
}

#[test]
fn the_parents_pool_used_in_a_copy_made_by_fork_fails_there_and_leaves_the_parent_right() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    // SAFETY: as above; the copy runs only `parents_pool_in_the_copy`.
    let copy = unsafe { libc::fork() };
    assert!(copy >= 0, "fork failed");
    if copy == 0 {
        // SAFETY: a hang here ends by SIGALRM, never outliving the test.
        unsafe { libc::alarm(20) };
        let copy_of_pool = std::panic::AssertUnwindSafe(pool);
        let code = std::panic::catch_unwind(move || parents_pool_in_the_copy({ copy_of_pool }.0))
            .unwrap_or(20);
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    let mut copy = Copy(Some(copy));
    let status = copy.wait(Duration::from_secs(30));
    // The parent's pool: its worker untouched, every answer its own.
    let answers: Vec<_> = (10..20).map(|x| apply_square(&pool, x)).collect();
    assert_eq!(status, Some(0), "the copy's exit code (see its stderr)");
    for (x, answer) in (10..20).zip(answers) {
        assert_eq!(answer.unwrap(), x * x, "the parent's call of square({x})");
    }
    assert_eq!(
        map_square(&pool, 0..50).unwrap(),
        (0..50).map(|x| x * x).collect::<Vec<_>>()
    );
}

#[pool_task]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(600));
    x * x
}

/// In the copy: results (and an `imap`) the parent had pending at the fork.
/// Nothing can complete them there, so a wait fails at once with `Config`
/// naming the fork, a cancel changes nothing (`Finished`: the call, its
/// queue and its worker are the parent's), and the `imap` says so once,
/// then ends. The exit code says what went wrong (0: nothing).
fn parents_results_in_the_copy(
    pending: Vec<procpool::AsyncResult<u64>>,
    mut imap: impl Iterator<Item = Result<u64, Error>>,
) -> i32 {
    let foreign = |e: &Error| matches!(e, Error::Config { message } if message.contains("fork"));
    let started = Instant::now();
    for (i, r) in pending.iter().enumerate() {
        r.wait();
        match r.get_timeout(Duration::ZERO) {
            Err(e) if foreign(&e) => {}
            other => {
                eprintln!("copy: get of pending result {i}: {other:?}");
                return 2;
            }
        }
    }
    if !matches!(pending[0].get_timeout(Duration::from_secs(5)), Err(e) if foreign(&e)) {
        eprintln!("copy: get_timeout");
        return 3;
    }
    if pending[1].cancel() != procpool::CancelOutcome::Finished {
        eprintln!("copy: cancel");
        return 4;
    }
    match imap.next() {
        Some(Err(e)) if foreign(&e) => {}
        other => {
            eprintln!("copy: imap's first: {other:?}");
            return 5;
        }
    }
    if let Some(more) = imap.next() {
        eprintln!("copy: imap after its error: {more:?}");
        return 6;
    }
    // At once: none of it waited for the parent's calls (which never end
    // here: a wait would hang, or `get_timeout` wait out its 5 s). The
    // bound leaves a loaded machine room, below those 5 s.
    if started.elapsed() > Duration::from_secs(3) {
        eprintln!("copy: took {:?}", started.elapsed());
        return 7;
    }
    0
}

#[test]
fn results_the_parent_had_pending_fail_at_once_in_a_copy_and_still_arrive_in_the_parent() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let pending: Vec<_> = (1..4).map(|x| apply_async_slow_square(&pool, x)).collect();
    let mut imap = imap_slow_square(&pool, 4..6);
    // SAFETY: as above; the copy runs only `parents_results_in_the_copy`.
    let copy = unsafe { libc::fork() };
    assert!(copy >= 0, "fork failed");
    if copy == 0 {
        // SAFETY: a hang here ends by SIGALRM, never outliving the test.
        unsafe { libc::alarm(20) };
        let parts = std::panic::AssertUnwindSafe((pending, imap));
        let code = std::panic::catch_unwind(move || {
            let (pending, imap) = { parts }.0;
            parents_results_in_the_copy(pending, imap)
        })
        .unwrap_or(20);
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    let mut copy = Copy(Some(copy));
    let status = copy.wait(Duration::from_secs(30));
    // The parent's results: each arrives, none cancelled by the copy.
    let got: Vec<_> = pending.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(status, Some(0), "the copy's exit code (see its stderr)");
    assert_eq!(got, [1, 4, 9]);
    assert_eq!(
        imap.by_ref().map(Result::unwrap).collect::<Vec<_>>(),
        [16, 25]
    );
}

/// Runs `body` in a copy made by `fork` (ended by SIGALRM after `alarm`
/// seconds if it hangs) and returns its exit code (`None`: it did not exit
/// within `alarm` + 5 s, or was killed).
fn in_a_copy(alarm: u32, body: impl FnOnce() -> i32) -> Option<i32> {
    // SAFETY: as above; the copy runs only `body`, then leaves with `_exit`.
    let copy = unsafe { libc::fork() };
    assert!(copy >= 0, "fork failed");
    if copy == 0 {
        // SAFETY: a hang here ends by SIGALRM, never outliving the test.
        unsafe { libc::alarm(alarm) };
        let body = std::panic::AssertUnwindSafe(body);
        let code = std::panic::catch_unwind(move || ({ body }.0)()).unwrap_or(20);
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    Copy(Some(copy)).wait(Duration::from_secs(u64::from(alarm) + 5))
}

/// `.await` is a wait too: on a result the parent had pending at the
/// fork, it fails at once in the copy (`Config`), as `get` does, instead of
/// waiting for ever for an outcome that never arrives there.
#[test]
fn awaiting_a_result_the_parent_had_pending_fails_at_once_in_a_copy() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let pending = apply_async_slow_square(&pool, 3);
    let status = in_a_copy(5, || {
        let started = Instant::now();
        match futures::executor::block_on(pending) {
            Err(Error::Config { message }) if message.contains("fork") => {}
            other => {
                eprintln!("copy: awaited: {other:?}");
                return 2;
            }
        }
        if started.elapsed() > Duration::from_secs(2) {
            eprintln!("copy: took {:?}", started.elapsed());
            return 3;
        }
        0
    });
    assert_eq!(
        status,
        Some(0),
        "the copy's exit code (None: it hung; see its stderr)"
    );
}

/// An `imap` the parent made before the fork, read in the copy: it fails
/// there (`Config`) without reading its input there (an input read in the
/// copy is taken from the parent: lines of a shared pipe or socket, say)
/// and without queueing a chunk on the parent's pool.
#[test]
fn an_imap_the_parent_made_does_not_read_its_input_in_a_copy() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let dir = support::Scratch::temp("fork-imap");
    let log = dir.to_path_buf();
    let input = (1..5u64).inspect(move |x| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        writeln!(f, "{} read {x}", std::process::id()).unwrap();
    });
    let mut imap = imap_square(&pool, input);
    let read_in_copy = dir.to_path_buf();
    let status = in_a_copy(10, move || {
        match imap.next() {
            Some(Err(Error::Config { message })) if message.contains("fork") => {}
            other => {
                eprintln!("copy: imap's first: {other:?}");
                return 2;
            }
        }
        let me = format!("{} read", std::process::id());
        let log = std::fs::read_to_string(&read_in_copy).unwrap_or_default();
        if log.contains(&me) {
            eprintln!("copy: the parent's imap read its input here:\n{log}");
            return 3;
        }
        0
    });
    assert_eq!(status, Some(0), "the copy's exit code (see its stderr)");
}

/// The forked copy, killed if the test fails before it is waited for.
struct Copy(Option<libc::pid_t>);

impl Copy {
    /// Its exit code, or `None` if it did not end within `limit` (it is
    /// then killed).
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let pid = self.0?;
        let deadline = Instant::now() + limit;
        loop {
            let mut status = 0;
            // SAFETY: waits (without blocking) for our own child.
            let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if got == pid {
                self.0 = None;
                return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let mut status = 0;
            // SAFETY: kills and reaps our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
}

#[pool_task]
fn nap_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(40));
    x * x
}

/// A `map` (an `imap`, a `map_async`) whose own input forks part-way, with
/// chunks in flight: in the copy the map fails with `Config` naming the fork (the
/// chunks in flight are the parent's and are never answered there; the
/// map waited for them for ever), and in the parent it returns every
/// result. In rounds: the copy also hung, now and then, queueing the chunks
/// it read on the parent's queue, whose lock a thread of the parent (a slot
/// taking the next chunk) may hold at the fork, for good in the copy.
#[test]
fn a_map_whose_input_forks_fails_in_the_copy_and_completes_in_the_parent() {
    static FORKS: Forks = Forks::new();
    let pool = Pool::new(2).unwrap();
    // 0..16, forking at item 6.
    let input = || FORKS.input(0..16, 6);
    let one = || procpool::MapOptions::new().chunksize(1);
    let expected: Vec<u64> = (0..16).map(|x| x * x).collect();
    let kinds = ["map", "imap", "map_async"];
    for (round, kind) in (0..8).flat_map(|round| kinds.map(|kind| (round, kind))) {
        let got: Result<Vec<u64>, Error> = match kind {
            "map" => map_nap_square_with(&pool, input(), one()),
            "map_async" => map_async_nap_square_with(&pool, input(), one()).get(),
            _ => imap_nap_square_with(&pool, input(), one()).collect(),
        };
        let status = FORKS.settle(&got, &format!("round {round}, {kind}"));
        assert_eq!(got.unwrap(), expected, "round {round}: the parent's {kind}");
        assert_eq!(
            status,
            Some(0),
            "round {round}: the copy's exit code for {kind} (None: it hung; see its stderr)"
        );
    }
}

/// Forks at one item of a map's input: the copy goes on with the map, and
/// is ended with `_exit` once the map returned there ([`Forks::settle`]).
struct Forks {
    in_copy: std::sync::atomic::AtomicBool,
    copy: std::sync::atomic::AtomicI32,
}

impl Forks {
    const fn new() -> Self {
        Forks {
            in_copy: std::sync::atomic::AtomicBool::new(false),
            copy: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// `items`, forking as item `at` is read.
    fn input(&'static self, items: std::ops::Range<u64>, at: u64) -> impl Iterator<Item = u64> {
        use std::sync::atomic::Ordering;
        items.inspect(move |&x| {
            if x == at {
                // SAFETY: fork in a test binary; the copy runs the rest of
                // the map only, then `_exit` (see `settle`).
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    // SAFETY: a hang here ends by SIGALRM.
                    unsafe { libc::alarm(10) };
                    self.in_copy.store(true, Ordering::SeqCst);
                } else {
                    self.copy.store(pid, Ordering::SeqCst);
                }
            }
        })
    }

    /// After the map: in the copy, ends it (exit code 0 if `got` is the
    /// `Config` naming the fork, else 2, saying what it got); in the parent,
    /// the copy's exit code (`None`: it hung for 15 s, and was killed).
    fn settle<T: std::fmt::Debug>(&self, got: &Result<T, Error>, what: &str) -> Option<i32> {
        use std::sync::atomic::Ordering;
        if self.in_copy.load(Ordering::SeqCst) {
            let code = match got {
                Err(Error::Config { message }) if message.contains("fork") => 0,
                other => {
                    eprintln!("copy: {what}: {other:?}");
                    2
                }
            };
            // SAFETY: ends the copy at once, running nothing of the harness.
            unsafe { libc::_exit(code) };
        }
        let mut copy = Copy(Some(self.copy.swap(0, Ordering::SeqCst)));
        copy.wait(Duration::from_secs(15))
    }
}

/// A `map_async` whose own input forks while another thread keeps the
/// pool's queue busy: in the copy it fails with `Config` naming the fork,
/// without queueing the chunks it reads after the fork on the parent's
/// queue, whose lock the other thread (or a slot) may hold at the fork, for
/// good in the copy; in the parent it returns every result.
#[test]
fn a_map_async_whose_input_forks_amid_other_calls_fails_in_the_copy() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FORKS: Forks = Forks::new();
    let pool = Pool::new(2).unwrap();
    let stop = AtomicBool::new(false);
    let expected: Vec<u64> = (0..64).map(|x| x * x).collect();
    std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let pending: Vec<_> = (0..32u64).map(|x| apply_async_square(&pool, x)).collect();
                for (x, result) in (0..32u64).zip(pending) {
                    assert_eq!(result.get().unwrap(), x * x, "a call beside the maps");
                }
            }
        });
        // The flood stops however the rounds end (a failed assert too).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let stop_flood = Stop(&stop);
        for round in 0..20 {
            // 0..64 in chunks of 1, forking at item 40.
            let options = procpool::MapOptions::new().chunksize(1);
            let got = map_async_square_with(&pool, FORKS.input(0..64, 40), options).get();
            let status = FORKS.settle(&got, &format!("round {round}"));
            assert_eq!(
                got.unwrap(),
                expected,
                "round {round}: the parent's map_async"
            );
            assert_eq!(
                status,
                Some(0),
                "round {round}: the copy's exit code (None: it hung; see its stderr)"
            );
        }
        drop(stop_flood);
        flood.join().unwrap();
    });
}

#[pool_task]
fn nap_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// An `imap` forked while stopped, its stopping error not yet yielded and a
/// chunk still in flight: in the copy it says `Config` (the fork) once, then
/// ends, as it does otherwise. (It yielded the parent's pending `Cancelled`
/// after it: two errors.)
#[test]
fn a_stopped_imap_forked_says_the_fork_once_in_the_copy() {
    let pool = Pool::new(1).unwrap();
    let one = procpool::MapOptions::new().chunksize(1);
    // The first naps on the only worker; the second waits in the queue.
    let mut naps = imap_unordered_nap_ms_with(&pool, [1_500, 0], one);
    assert!(matches!(
        naps.next_timeout(Duration::from_millis(300)),
        Some(Err(Error::WaitTimeout { .. }))
    ));
    assert_eq!(pool.close_and_cancel(), 1);
    // The cancelled chunk is settled (its error kept for last), the
    // running one is still in flight.
    assert!(matches!(
        naps.next_timeout(Duration::from_millis(100)),
        Some(Err(Error::WaitTimeout { .. }))
    ));
    // SAFETY: the copy only iterates, then ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a hang here ends by SIGALRM.
        unsafe { libc::alarm(10) };
        let rest: Vec<_> = naps.by_ref().take(5).collect();
        let code = match rest.as_slice() {
            [Err(Error::Config { message })] if message.contains("fork") => 0,
            other => {
                eprintln!("copy: {other:?}");
                2
            }
        };
        // SAFETY: ends the copy at once, running nothing of the harness.
        unsafe { libc::_exit(code) };
    }
    let mut copy = Copy(Some(pid));
    let status = copy.wait(Duration::from_secs(15));
    let rest: Vec<_> = naps.collect();
    assert!(
        matches!(rest.as_slice(), [Ok(1_500), Err(Error::Cancelled { .. })]),
        "the parent's rest: {rest:?}"
    );
    assert_eq!(
        status,
        Some(0),
        "the copy's exit code (None: it hung; see its stderr)"
    );
}
