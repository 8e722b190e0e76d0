//! A real program using procpool, driven by `tests/fault_parent.rs` where a
//! test binary cannot stand in (its `main` belongs to the test harness).
//!
//! - `exit CODE`: a task calls `std::process::exit(CODE)`; prints the error
//!   the caller got, then the pid of the worker that replaced the dead one.
//! - `origins`: starts two workers and prints, for each, `forked` (by the
//!   fork server) or `spawned` (by the pool itself).
//! - `orphan`: starts two workers, prints their pids (read from /proc; a fork
//!   server's workers are its children), then sleeps until
//!   killed (at most a minute), so the test can kill this parent.
//! - `orphan-creds`: as `orphan`, but first each worker runs a task that
//!   changes its effective user id and back (as root; elsewhere, where that
//!   is not allowed, it clears its parent-death signal itself, which is all
//!   such a change does to a worker), and the line `workers` lists the
//!   workers that ran it.
//! - `orphan-child`: a pool of one worker, whose first task starts `sleep
//!   60` and returns, and whose second naps a minute; prints `worker PID
//!   child PID`, then sleeps until killed.
//! - `exec`: as `orphan`, then replaces itself with `sleep 60` (`exec`),
//!   its pool still up.
//! - `retire-loop`: with a logger that prints procpool's warnings to stderr,
//!   20 rounds of tasks on workers retired after each task, each round ended
//!   by `terminate()`; prints how many retired workers ended uncleanly.
//! - `ctrl-c finish|terminate`: handles SIGINT; starts two 1.5 s tasks,
//!   prints `ready`, and once SIGINT came either lets the tasks finish
//!   (`close` + `join`) or terminates the pool; prints each task's outcome.
//! - `hello`: one task; prints `ok PID`.
//! - `deep`: once the fork server (if any) serves, one task that recurses
//!   through at least 32 MiB of stack (four times a main thread's); prints
//!   `deep ORIGIN THREADS`: where its worker came from (`forked` or
//!   `spawned`) and how many threads it had.
//! - `data-limit`: once the fork server (if any) serves, lowers its soft
//!   data limit (`RLIMIT_DATA`) to 128 MiB, below the task stack alone,
//!   then one task that fills 16 MiB; prints `data-limit ORIGIN BYTES`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};

#[pool_task]
fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

/// Changes this worker's effective user id and back, as a task that drops
/// root for a moment does (the kernel then clears the parent-death signal);
/// where that is not allowed (not root), clears that signal itself. Naps
/// `ms`, so that a burst of these goes round the idle workers. Returns the
/// worker's pid and its parent-death signal afterwards.
#[pool_task]
fn change_credentials(ms: u64) -> (u32, i32) {
    // SAFETY: system calls on this process's own credentials and
    // parent-death signal; `signal` is a valid place for prctl to write.
    let signal = unsafe {
        if libc::geteuid() == 0 {
            assert_eq!(libc::seteuid(65534), 0, "seteuid(nobody)");
            assert_eq!(libc::seteuid(0), 0, "seteuid(root)");
        } else {
            assert_eq!(libc::prctl(libc::PR_SET_PDEATHSIG, 0), 0);
        }
        let mut signal: libc::c_int = -1;
        libc::prctl(libc::PR_GET_PDEATHSIG, &mut signal as *mut libc::c_int);
        signal
    };
    std::thread::sleep(Duration::from_millis(ms));
    (std::process::id(), signal)
}

/// Starts `sleep 60` (its stdio closed, so that it holds no pipe of the
/// test's) and returns the worker's pid and the sleep's, without waiting
/// for it: it is to outlive the task.
#[pool_task]
#[allow(clippy::zombie_processes)]
fn start_sleep() -> (u32, u32) {
    let child = std::process::Command::new("sleep")
        .arg("60")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sleep");
    (std::process::id(), child.id())
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Whether a library whose file name starts with `name` is mapped in the
/// worker.
#[pool_task]
fn maps_library(name: String) -> bool {
    has_library(&name)
}

fn has_library(name: &str) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|line| line.rsplit('/').next())
        .any(|file| file.starts_with(name))
}

#[pool_task]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Recurses `levels` deep through frames of at least 1 KiB each (kept
/// from being folded away by `black_box`); returns the threads of this
/// worker.
#[pool_task]
fn deep_stack(levels: u32) -> u32 {
    fn down(level: u32) -> u32 {
        let frame = std::hint::black_box([level as u8; 1024]);
        if level == 0 {
            return 0;
        }
        let below = down(level - 1);
        // The frame lives on across the call.
        std::hint::black_box(&frame);
        below + 1
    }
    assert_eq!(down(levels), levels);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Fills a fresh buffer of `bytes` bytes; returns its length.
#[pool_task]
fn fill(bytes: usize) -> usize {
    let buf = std::hint::black_box(vec![1u8; bytes]);
    buf.iter().filter(|&&b| b == 1).count()
}

/// This process's workers, read from /proc: its children, and the children
/// of its fork server (which forks workers), not the server itself.
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    for pid in children_of(std::process::id()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.windows(20).any(|w| w == b"procpool-fork-server") {
            out.extend(children_of(pid));
        } else {
            out.push(pid);
        }
    }
    out
}

/// A pool of two workers, both serving, announced on stdout: a line
/// `workers A B`, then `servers` and the fork server's pid, if any (read
/// here, before an `exec` would end the server by closing its socket).
fn pool_of_two_announced() -> Result<Pool, Error> {
    let pool = Pool::new(2)?;
    // The pool is ready: both workers are this process's children (or its
    // fork server's).
    let workers = children();
    assert_eq!(workers.len(), 2, "two workers: {workers:?}");
    // Both serve.
    apply_nap(&pool, 0)?;
    println!("workers {} {}", workers[0], workers[1]);
    println!("servers{}", fork_servers());
    std::io::stdout().flush().expect("stdout");
    Ok(pool)
}

/// This process's fork servers (none, or one), each pid after a space.
fn fork_servers() -> String {
    children_of(std::process::id())
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.windows(20).any(|w| w == b"procpool-fork-server")
        })
        .map(|pid| format!(" {pid}"))
        .collect()
}

/// The children of process `me`, read from /proc (each stat's parent pid).
fn children_of(me: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces; fields after its ')' are fixed.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Where this process's workers come from: `forked` (children of its fork
/// server) or `spawned` (its own children), for each worker.
fn origins() -> Vec<&'static str> {
    let mut out = Vec::new();
    for pid in children_of(std::process::id()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.windows(20).any(|w| w == b"procpool-fork-server") {
            out.extend(children_of(pid).iter().map(|_| "forked"));
        } else {
            out.push("spawned");
        }
    }
    out
}

/// Waits until the fork server (if any) says whether it serves, however
/// slow the machine: a pool start that finds it still silent spawns.
fn await_fork_server() {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let opted_out = std::env::var_os("PROCPOOL_FORK_SERVER").is_some_and(|v| v == "0");
    while !opted_out
        && procpool::__private::fork_server_serves().is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Prints procpool's warnings and errors to stderr, as a program's logger would.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{} {}: {}", record.level(), record.target(), record.args());
        }
    }
    fn flush(&self) {}
}

/// Rounds of tasks on workers retired after every task, each round ended by
/// `terminate()`, which may find a worker in the middle of its retirement.
fn retire_loop() -> Result<(), Error> {
    log::set_logger(&StderrLogger).expect("no other logger");
    log::set_max_level(log::LevelFilter::Warn);
    let (_, unclean_before) = procpool::__private::retirements();
    for round in 0..20 {
        let pool = Pool::builder()
            .processes(2)
            .max_tasks_per_child(1)
            .build()?;
        let pending: Vec<_> = (0..4).map(|_| apply_async_nap(&pool, 1)).collect();
        for r in pending {
            r.get()?;
        }
        pool.terminate();
        if round % 5 == 4 {
            drop(pool);
        }
    }
    let (_, unclean) = procpool::__private::retirements();
    println!("unclean {}", unclean - unclean_before);
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// A program that handles Ctrl-C: it either lets its running tasks finish
/// or terminates them, as it chooses.
fn ctrl_c(then: &str) -> Result<(), Error> {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: installs a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    let pool = Pool::new(2)?;
    // Tasks to terminate nap long: still running however late the SIGINT
    // comes on a loaded machine.
    let nap = if then == "finish" { 1500 } else { 60_000 };
    let tasks: Vec<_> = (0..2).map(|_| apply_async_nap(&pool, nap)).collect();
    std::thread::sleep(Duration::from_millis(300));
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let begun = Instant::now();
    while !INTERRUPTED.load(Ordering::SeqCst) {
        assert!(begun.elapsed() < Duration::from_secs(60), "no SIGINT came");
        std::thread::sleep(Duration::from_millis(5));
    }
    match then {
        "finish" => {
            pool.close();
            pool.join();
        }
        _ => pool.terminate(),
    }
    for task in tasks {
        match task.get() {
            Ok(pid) => println!("ok {pid}"),
            Err(e) => println!("{e:?}"),
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    if std::env::var_os("PROCPOOL_TEST_THREAD_BEFORE_INIT").is_some() {
        // As a program whose constructors start a thread would be.
        std::thread::spawn(|| std::thread::sleep(Duration::from_secs(3600)));
    }
    procpool::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("retire-loop") => retire_loop()?,
        Some("ctrl-c") => ctrl_c(args.get(1).map_or("finish", String::as_str))?,
        Some("preloaded") => {
            let name = &args[1];
            let pool = Pool::new(1)?;
            let worker = apply_maps_library(&pool, name.clone())?;
            println!("parent {} worker {worker}", has_library(name));
        }
        Some("hello-elsewhere") => {
            // The working directory changes before the pool starts: a
            // relative argv[0] no longer names this program.
            std::env::set_current_dir("/").expect("cd /");
            let pool = Pool::new(1)?;
            println!("ok {}", apply_worker_pid(&pool)?);
        }
        Some("hello") => {
            let pool = Pool::new(1)?;
            println!("ok {}", apply_worker_pid(&pool)?);
        }
        Some("exit") => {
            let code: i32 = args[1].parse().expect("an exit code");
            let pool = Pool::new(1)?;
            let err = apply_exit_with(&pool, code).expect_err("the worker exits");
            println!("{err:?}");
            println!("replacement {}", apply_worker_pid(&pool)?);
        }
        Some("orphan") => {
            let _pool = pool_of_two_announced()?;
            std::thread::sleep(Duration::from_secs(60));
        }
        Some("orphan-child") => {
            // A task started a process, and the worker runs another task
            // as the program dies.
            let pool = Pool::new(1)?;
            let (worker, child) = apply_start_sleep(&pool)?;
            let _running = apply_async_nap(&pool, 60_000);
            println!("worker {worker} child {child}");
            std::io::stdout().flush().expect("stdout");
            std::thread::sleep(Duration::from_secs(60));
        }
        Some("orphan-creds") => {
            let pool = Pool::new(2)?;
            let first = apply_async_change_credentials(&pool, 300);
            let second = apply_async_change_credentials(&pool, 300);
            let ((a, signal_a), (b, signal_b)) = (first.get()?, second.get()?);
            assert_ne!(a, b, "both workers ran it");
            assert_eq!((signal_a, signal_b), (0, 0), "the signal was not cleared");
            println!("workers {a} {b}");
            println!("servers{}", fork_servers());
            std::io::stdout().flush().expect("stdout");
            std::thread::sleep(Duration::from_secs(60));
        }
        Some("exec") => {
            // As `orphan`, then the program replaces itself (`exec`) with
            // `sleep 60`, its pool still up: no destructor runs, and the
            // kernel's parent-death signal does not fire (the process
            // lives on).
            let _pool = pool_of_two_announced()?;
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new("sleep").arg("60").exec();
            panic!("exec: {err}");
        }
        Some("origins") => {
            await_fork_server();
            let pool = Pool::new(2)?;
            apply_nap(&pool, 0)?;
            println!("{}", origins().join(" "));
        }
        Some("deep") => {
            await_fork_server();
            let pool = Pool::new(1)?;
            let threads = apply_deep_stack(&pool, 32 << 10)?;
            println!("deep {} {threads}", origins().join(" "));
        }
        Some("data-limit") => {
            await_fork_server();
            let limit = libc::rlimit {
                rlim_cur: 128 << 20,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit reads the struct it is given.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) }, 0);
            let pool = Pool::new(1)?;
            let filled = apply_fill(&pool, 16 << 20)?;
            println!("data-limit {} {filled}", origins().join(" "));
        }
        _ => {
            eprintln!(
                "usage: procpool-fault-helper exit CODE | orphan | origins | retire-loop | \
                 ctrl-c finish|terminate | hello | deep | data-limit"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}
