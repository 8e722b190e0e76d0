//! Task time limits: pool-wide and per call (`Pool::with_task_timeout`). A
//! task past its limit fails with `Error::Timeout`, its worker is killed and
//! replaced; `AsyncResult::get_timeout` only stops waiting.

mod support;

use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{alive, assert_no_children, children, serial, wait_for};

procpool::enable_test_support!();

#[path = "helpers/gate.rs"]
mod gate;
use gate::{apply_async_gated, gate_path, open};

#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn expect_timeout(result: Result<u32, Error>, limit: Duration) {
    match result {
        Err(Error::Timeout { task, limit: l }) => {
            assert_eq!(task, "fault_timeout::nap");
            assert_eq!(l, limit);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[test]
fn a_task_past_the_pool_wide_limit_times_out_and_its_worker_is_replaced() {
    let _serial = serial();
    // Generous: the 0 ms tasks below must not time out on a loaded machine.
    let limit = Duration::from_secs(2);
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let first = apply_nap(&pool, 0).unwrap();
    let begun = Instant::now();
    expect_timeout(apply_nap(&pool, 60_000), limit);
    assert!(begun.elapsed() < Duration::from_secs(30));
    assert!(!alive(first), "the stuck worker was killed");
    assert!(!children().contains(&first), "and reaped");
    let second = apply_nap(&pool, 0).unwrap();
    assert_ne!(second, first, "a new worker took over");
    assert_ne!(second, std::process::id());
    drop(pool);
    assert_no_children();
}

#[test]
fn a_per_call_override_applies_only_to_calls_through_its_handle() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let patient = pool.with_task_timeout(Some(Duration::from_secs(60)));
    let unlimited = pool.with_task_timeout(None);
    let short = Duration::from_millis(100);
    let impatient = pool.with_task_timeout(Some(short));
    // Longer than the pool-wide limit, but allowed through the override.
    assert_ne!(apply_nap(&patient, 600).unwrap(), std::process::id());
    assert_ne!(apply_nap(&unlimited, 600).unwrap(), std::process::id());
    expect_timeout(apply_nap(&impatient, 60_000), short);
    expect_timeout(apply_nap(&pool, 60_000), Duration::from_millis(200));
    // Async calls carry their handle's limit too.
    let r = apply_async_nap(&impatient, 60_000);
    let ok = apply_async_nap(&patient, 300);
    expect_timeout(r.get(), short);
    assert!(ok.get().is_ok());
    // Handles share workers: dropping one does not close the pool.
    drop(impatient);
    drop(patient);
    assert!(apply_nap(&unlimited, 0).is_ok());
    // (The timed-out workers' replacements may still be starting.)
    wait_for(Duration::from_secs(30), "two workers", || {
        children().len() == 2
    });
    drop(pool);
    assert!(
        apply_nap(&unlimited, 0).is_ok(),
        "the last handle keeps it open"
    );
    drop(unlimited);
    assert_no_children();
}

#[test]
fn closing_through_any_handle_closes_the_pool() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let other = pool.with_task_timeout(Some(Duration::from_secs(5)));
    other.close();
    assert!(matches!(apply_nap(&pool, 0), Err(Error::PoolClosed { .. })));
    drop(other);
    drop(pool);
    assert_no_children();
}

#[test]
fn get_timeout_stops_waiting_but_the_task_completes() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let gate = gate_path("get-timeout");
    let r = apply_async_gated(&pool, gate.clone());
    match r.get_timeout(Duration::from_millis(50)) {
        Err(Error::WaitTimeout { task, waited }) => {
            assert_eq!(task, "fault_timeout::gate::gated");
            assert_eq!(waited, Duration::from_millis(50));
        }
        other => panic!("expected WaitTimeout, got {other:?}"),
    }
    assert!(!r.ready());
    open(&gate);
    let pid = r.get_timeout(Duration::from_secs(30)).unwrap();
    gate::remove(&gate);
    assert_ne!(pid, std::process::id());
    assert_eq!(r.get().unwrap(), pid, "collected again, not lost");
    assert_eq!(
        apply_nap(&pool, 0).unwrap(),
        pid,
        "its worker was not killed"
    );
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn byte_count(bytes: Vec<u8>) -> (usize, u32) {
    (bytes.len(), std::process::id())
}

/// Stops worker `pid` and waits until every thread of it is stopped (a
/// stop lands on a running thread a moment after `kill` returns).
fn stop(pid: u32) {
    // SAFETY: kill(2) on a worker of this test's pool.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
    let stopped = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .all(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                // The state follows the command name's closing parenthesis.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !stopped() {
        assert!(
            std::time::Instant::now() < deadline,
            "worker {pid} never stopped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[pool_task]
fn count_run(path: String) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(b"ran\n").unwrap();
    std::process::id()
}

/// Resumes the worker a "never read call" warning names, then holds the
/// pool's thread a moment: it stands for a stopped worker resumed just as
/// the pool finds its call unread (on 2 busy CPUs a preemption of the
/// pool's thread there does the same).
struct ResumingLogger;

impl log::Log for ResumingLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "procpool"
    }
    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        let Some(rest) = text.strip_prefix("worker ") else {
            return;
        };
        if !text.contains("never read call") {
            return;
        }
        if let Some(pid) = rest.split(' ').next().and_then(|p| p.parse::<i32>().ok()) {
            // SAFETY: kill(2) with SIGCONT on the worker the pool names.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    fn flush(&self) {}
}

/// A stopped worker that resumes as the pool finds it never read its call
/// must not run the call as well as its replacement: the pool's check that
/// the call has not started and its kill are one step.
#[test]
fn a_call_of_a_stopped_worker_resumed_as_it_is_replaced_runs_once() {
    let _serial = serial();
    static LOGGER: ResumingLogger = ResumingLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Warn);
    // (The limit is also what the replacement's call must finish within:
    // room for a loaded machine.)
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for via_async in [false, true] {
        let path = support::Scratch::temp(&format!("runs-once-{via_async}"));
        let file = path.to_string_lossy().into_owned();
        let worker = apply_nap(&pool, 0).unwrap();
        stop(worker);
        let got = if via_async {
            apply_async_count_run(&pool, file).get()
        } else {
            apply_count_run(&pool, file)
        };
        let runs = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            runs.lines().count(),
            1,
            "async {via_async}: {got:?}, the call ran {} times",
            runs.lines().count()
        );
        assert!(got.is_ok_and(|pid| pid != worker));
    }
    drop(pool);
    assert_no_children();
}

/// A worker stopped (SIGSTOP) while idle never reads the next call: past
/// the time limit the call provably never started (its bytes are still
/// unread in the channel), so it runs on a new worker instead of failing
/// with `Timeout`, through `apply` (the calling thread's direct exchange)
/// and `apply_async` (a slot thread) alike.
#[test]
fn a_call_a_stopped_idle_worker_never_read_runs_on_a_new_worker() {
    let _serial = serial();
    // (Also what each call on a new worker must finish within: room for a
    // loaded machine.)
    let limit = Duration::from_secs(2);
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(limit)
        .build()
        .unwrap();
    let first = apply_nap(&pool, 0).unwrap();
    stop(first);
    let second = apply_nap(&pool, 0).expect("ran on a new worker");
    assert_ne!(second, first);
    assert!(
        !children().contains(&first),
        "the stopped worker was reaped"
    );
    // Idle again on the second worker, then stopped: a queued call.
    stop(second);
    std::thread::sleep(Duration::from_millis(50));
    let third = apply_async_nap(&pool, 0)
        .get()
        .expect("ran on a new worker");
    assert_ne!(third, second);
    assert!(
        !children().contains(&second),
        "the stopped worker was reaped"
    );
    // A task that did start and overran still times out.
    expect_timeout(apply_nap(&pool, 60_000), limit);
    drop(pool);
    assert_no_children();
}

/// Without a time limit, a small call to a stopped idle worker (written
/// whole into the channel, never taken in) waited for ever. Now a worker
/// that has not started a call within `frame_stall_timeout` is stopped for
/// it (it provably never started it) and the call runs on a new worker:
/// through `apply` (the calling thread's exchange), `apply_async` (a slot
/// thread), and a pipelined batch of quick calls, each run once.
#[test]
fn without_a_limit_a_small_call_to_a_stopped_idle_worker_runs_on_a_new_worker() {
    let _serial = serial();
    let stall = Duration::from_secs(1);
    let pool = Pool::builder()
        .processes(1)
        .frame_stall_timeout(stall)
        .build()
        .unwrap();
    let first = apply_nap(&pool, 0).unwrap();
    stop(first);
    let begun = Instant::now();
    let second = apply_nap(&pool, 0).expect("ran on a new worker");
    assert_ne!(second, first);
    assert!(begun.elapsed() >= stall, "not before the limit");
    assert!(
        !children().contains(&first),
        "the stopped worker was reaped"
    );
    stop(second);
    let third = apply_async_nap(&pool, 0)
        .get_timeout(Duration::from_secs(30))
        .expect("ran on a new worker");
    assert_ne!(third, second);
    // Quick calls, pipelined once the slot has seen them be quick.
    for _ in 0..50 {
        let batch: Vec<_> = (0..20).map(|_| apply_async_nap(&pool, 0)).collect();
        for r in batch {
            assert_eq!(r.get().unwrap(), third);
        }
    }
    stop(third);
    let batch: Vec<_> = (0..20).map(|_| apply_async_nap(&pool, 0)).collect();
    for r in batch {
        let pid = r.get_timeout(Duration::from_secs(30)).expect("ran");
        assert_ne!(pid, third, "ran on a new worker");
    }
    drop(pool);
    assert_no_children();
}

/// How long ago process `pid` started: its start time in `/proc/<pid>/stat`
/// (clock ticks since boot) against the boot-time clock.
fn started_ago(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name's ')': the start time is the 20th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct it is given; sysconf reads a
    // constant of the system.
    let hz = unsafe {
        assert_eq!(libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now), 0);
        libc::sysconf(libc::_SC_CLK_TCK) as u64
    };
    let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    now.saturating_sub(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Without a time limit, a call too large for the socket's buffer to a
/// stopped idle worker blocks the write: after `frame_stall_timeout` the
/// worker is killed and the call (which never arrived whole) runs on a new
/// one instead of the caller waiting for ever.
#[test]
fn a_large_call_to_a_stopped_idle_worker_runs_on_a_new_worker() {
    let _serial = serial();
    let stall = Duration::from_secs(4);
    let pool = Pool::builder()
        .processes(1)
        .frame_stall_timeout(stall)
        .build()
        .unwrap();
    let (_, first) = apply_byte_count(&pool, vec![1]).unwrap();
    stop(first);
    // Through `apply` (the calling thread's direct exchange)...
    let begun = Instant::now();
    let (len, second) = apply_byte_count(&pool, vec![7; 16 << 20]).unwrap();
    assert_eq!(len, 16 << 20);
    assert_ne!(second, first);
    assert!(begun.elapsed() < Duration::from_secs(60));
    let begun = Instant::now();
    let (len, pid) = apply_async_byte_count(&pool, vec![7; 16 << 20])
        .get()
        .unwrap();
    let healthy = begun.elapsed();
    assert_eq!((len, pid), (16 << 20, second));
    stop(second);
    // ... and through a slot thread. The bound is one stall without
    // progress, not one per write call (a write that moved some bytes
    // before it stalled used to wait a second stall): the new worker starts
    // after one stall, the end of the stopped one (given half a second to
    // exit, then killed) and a fork; three quarters of a stall of slack
    // cover those on a loaded machine and keep the bound a quarter stall
    // below the two stalls it rules out. (Measured to the new worker's
    // start: the whole call, also moving and decoding 16 MiB in a debug
    // build, took up to 15 s on 2 busy CPUs.)
    let call = apply_async_byte_count(&pool, vec![7; 16 << 20]);
    let begun = Instant::now();
    let (len, third) = call.get().unwrap();
    let (took, ago) = (begun.elapsed(), started_ago(third));
    assert_eq!(len, 16 << 20);
    assert_ne!(third, second);
    let replaced_after = took.saturating_sub(ago);
    println!(
        "a stalled call took {took:?}, its new worker started {replaced_after:?} after it \
         began (a healthy call: {healthy:?})"
    );
    assert!(
        replaced_after < stall + stall * 3 / 4,
        "the new worker started {replaced_after:?} after the call began"
    );
    drop(pool);
    assert_no_children();
}

#[test]
fn a_maps_time_limit_applies_to_each_item_not_to_a_chunk() {
    let _serial = serial();
    // Items of 100 ms, far within a 2 s limit however loaded the machine
    // (items of 40 ms under a 300 ms limit timed out on one busy CPU); a
    // chunk of 30 of them runs 3 s, past it.
    let limit = Duration::from_secs(2);
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(limit)
        .build()
        .unwrap();
    let one_chunk = procpool::MapOptions::new().chunksize(30);
    let naps = vec![100; 30];
    // A map and an imap at once: one chunk each, one per worker.
    let begun = Instant::now();
    let mapped = map_async_nap_with(&pool, naps.clone(), one_chunk);
    let outcomes: Vec<_> = imap_nap_with(&pool, naps, one_chunk).collect();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(mapped.get().unwrap().len(), 30);
    let took = begun.elapsed();
    // One item past the limit still times out, well before the chunk ends.
    let mut naps = vec![10; 20];
    naps[3] = 60_000;
    let begun = Instant::now();
    match map_nap_with(&pool, naps, one_chunk) {
        Err(Error::Timeout { task, limit: l }) => {
            assert_eq!(task, "fault_timeout::nap");
            assert_eq!(l, limit);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "{:?}",
        begun.elapsed()
    );
    eprintln!("a map and an imap of a 3 s chunk each took {took:?} with a 2 s limit");
    assert_eq!(
        map_nap_with(&pool, vec![0; 10], one_chunk).unwrap().len(),
        10
    );
    drop(pool);
    assert_no_children();
}
