//! A task's own child processes die with its worker whenever procpool kills
//! that worker: on a timeout, on `terminate()` (and the drop after it), and
//! when the worker is replaced after breaking the protocol. After a normal
//! `close` + `join` they are left running, as in Python.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use serde::{Deserialize, Serialize};
use support::{alive, assert_no_children, gone_within, serial, write_to_channel, Scratch};

procpool::enable_test_support!();

/// What the task does once its child runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Then {
    /// Sleeps for a minute (to be timed out or terminated).
    Hang,
    /// Writes a frame with an unknown tag onto the channel and returns.
    BreakProtocol,
    /// Returns at once.
    Return,
}

/// Starts `sleep 37` (its pid written to `pid_file`), then does `then`. The
/// sleep is deliberately not waited for: it is to outlive the task.
#[pool_task]
#[allow(clippy::zombie_processes)]
fn spawn_sleep(pid_file: PathBuf, then: Then) -> u32 {
    let child = Command::new("sleep")
        .arg("37")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    match then {
        Then::Hang => std::thread::sleep(Duration::from_secs(60)),
        Then::BreakProtocol => write_to_channel(&[1, 0, 0, 0, 0x77]),
        Then::Return => {}
    }
    child.id()
}

fn pid_file(name: &str) -> Scratch {
    Scratch::temp(&format!("children-{name}"))
}

/// The pid the task wrote to `path`, once it is there.
fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            let _ = std::fs::remove_file(path);
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the task never started its child"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child is killed with its worker, in milliseconds; the limit is loose,
/// for a loaded machine, and still far below the 37 s it would live on.
fn assert_gone(pid: u32, after: &str) {
    assert!(
        gone_within(pid, Duration::from_secs(10)),
        "the task's child {pid} outlived its worker's {after}"
    );
}

#[test]
fn a_timeout_kills_the_tasks_children() {
    let _serial = serial();
    // Long enough for the task to start its child first on a loaded machine;
    // the task then hangs for a minute.
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let file = pid_file("timeout");
    match apply_spawn_sleep(&pool, file.to_path_buf(), Then::Hang) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_gone(read_pid(&file), "timeout");
    drop(pool);
    assert_no_children();
}

#[test]
fn terminate_and_the_drop_after_it_kill_the_tasks_children() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (first, second) = (pid_file("terminate-1"), pid_file("terminate-2"));
    let running = [
        apply_async_spawn_sleep(&pool, first.to_path_buf(), Then::Hang),
        apply_async_spawn_sleep(&pool, second.to_path_buf(), Then::Hang),
    ];
    let sleeps = [read_pid(&first), read_pid(&second)];
    pool.terminate();
    for r in running {
        assert!(matches!(r.get(), Err(Error::Terminated { .. })));
    }
    drop(pool);
    for pid in sleeps {
        assert_gone(pid, "terminate");
    }
    assert_no_children();
}

#[test]
fn a_protocol_error_kills_the_tasks_children() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let file = pid_file("protocol");
    match apply_spawn_sleep(&pool, file.to_path_buf(), Then::BreakProtocol) {
        Err(Error::Protocol { .. }) => {}
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert_gone(read_pid(&file), "replacement after a protocol error");
    drop(pool);
    assert_no_children();
}

/// Documented behaviour: a worker that exits normally leaves the processes
/// its tasks started running (Python's pool does the same).
#[test]
fn after_close_and_join_the_tasks_children_keep_running() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let file = pid_file("join");
    let sleep = apply_spawn_sleep(&pool, file.to_path_buf(), Then::Return).unwrap();
    assert_eq!(read_pid(&file), sleep);
    pool.close();
    pool.join();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        alive(sleep),
        "a normal exit does not kill the task's children"
    );
    // SAFETY: kill(2) on the sleep this test started.
    unsafe { libc::kill(sleep as libc::pid_t, libc::SIGKILL) };
    assert!(gone_within(sleep, Duration::from_secs(5)));
    assert_no_children();
}

/// A SIGSEGV handler that returns, as the handlers of some runtimes (a
/// garbage collector, a JIT) do for faults they expect.
extern "C" fn ignore_fault(_: libc::c_int) {}

/// Forks a child that returns from the task, neither exiting nor
/// exec'ing (a task that forgot its child's `exit`); with `fault_handler`,
/// first installs [`ignore_fault`] for SIGSEGV. Waits for the child, 5 s at
/// most (then kills it), and returns its wait status, or `None` if it had
/// to be killed. The child returns `Some(-1)`.
#[pool_task]
fn fork_and_return_in_child(fault_handler: bool) -> Option<i32> {
    // SAFETY: sigaction with an initialised action whose handler does
    // nothing; fork, waitpid and kill on the child this task forked.
    unsafe {
        if fault_handler {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_fault as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        }
        let child = libc::fork();
        if child == 0 {
            return Some(-1);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut status = 0;
        while libc::waitpid(child, &mut status, libc::WNOHANG) != child {
            if Instant::now() > deadline {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &mut status, 0);
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(status)
    }
}

/// Appends `ITEM PID` to `log`; item 0 first forks a child that returns
/// from the item, and waits for it.
#[pool_task]
fn log_item(log: PathBuf, item: u32) -> u32 {
    if item == 0 {
        // SAFETY: fork and waitpid on the child this task forked.
        unsafe {
            let child = libc::fork();
            if child == 0 {
                return item;
            }
            libc::waitpid(child, &mut 0, 0);
        }
    }
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writeln!(file, "{item} {}", std::process::id()).unwrap();
    item
}

/// A child a task forks that returns from the task ends at once, quietly
/// (exit code 0), sending nothing and running no more task code, instead
/// of dying of SIGSEGV on the channel its parent keeps from it (or, where
/// a handler ignores that fault, spinning on it for ever); in a map, the
/// later items of the chunk run in the worker alone.
#[test]
fn a_forked_child_returning_from_its_task_ends_quietly() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    for fault_handler in [false, true] {
        let status = apply_fork_and_return_in_child(&pool, fault_handler).unwrap();
        let status = status.expect("the child spun on, killed after 5 s");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child ended with wait status {status:#x} (handler: {fault_handler})"
        );
    }
    let log = Scratch::temp("forked-child-log");
    let items = (0..4).map(|item| (log.to_path_buf(), item));
    let got = map_log_item_with(&pool, items, procpool::MapOptions::new().chunksize(4));
    assert_eq!(got.unwrap(), vec![0, 1, 2, 3]);
    let lines = std::fs::read_to_string(&*log).unwrap();
    let mut items: Vec<&str> = lines
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    items.sort();
    assert_eq!(items, ["0", "1", "2", "3"], "items ran twice:\n{lines}");
    drop(pool);
    assert_no_children();
}
