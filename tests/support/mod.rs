//! Helpers shared by the integration tests.
#![allow(dead_code)]

mod block_on;
mod counts;
mod raw;
mod read_to_end;
mod scratch;
mod wait;

#[allow(unused_imports)] // not every test binary awaits
pub use block_on::block_on;
#[allow(unused_imports)] // not every test binary counts what it holds
pub use counts::{back_within, fds, threads};
#[allow(unused_imports)] // not every test binary sends raw bytes
pub use raw::Raw;
#[allow(unused_imports)] // not every test binary watches a map's input
pub use read_to_end::{all_queued, ReadToEnd};
#[allow(unused_imports)] // not every test binary makes scratch files
pub use scratch::{marker_dir, quick_dir, Scratch};

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // not every test binary polls
pub use wait::{wait_for, within};

/// Process ids whose parent is `parent` (live or zombie).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces; fields after its ')' are fixed.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is a procpool fork server (its command line names it).
pub fn is_fork_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.windows(20).any(|w| w == b"procpool-fork-server"))
}

/// This test process's fork server, if it runs one: a helper started by
/// `init()` that forks workers and lives as long as the process.
pub fn fork_server() -> Option<u32> {
    children_of(std::process::id())
        .into_iter()
        .find(|&pid| is_fork_server(pid))
}

/// Waits (up to 30 s) until this process's fork server has said whether
/// it serves, and returns that: `Some(true)` if it forks workers,
/// `Some(false)` if it refused or died, `None` with
/// `PROCPOOL_FORK_SERVER=0` (no server). A pool start waits for that word
/// only until 50 ms after the server's launch, then spawns its workers; the
/// server of a debug test binary (the binary run again, through the
/// harness) can take longer on a loaded machine. A test that needs its
/// workers forked (children of the server) calls this before its first
/// pool.
pub fn await_fork_server() -> Option<bool> {
    if std::env::var_os("PROCPOOL_FORK_SERVER").is_some_and(|v| v == "0") {
        return None;
    }
    let mut serves = None;
    wait_for(
        Duration::from_secs(30),
        "the fork server to say whether it serves (none launched?)",
        || {
            serves = procpool::__private::fork_server_serves();
            serves.is_some()
        },
    );
    serves
}

/// This test process's workers (live or zombie): its children, and the
/// children of its fork server; not the fork server itself.
pub fn children() -> Vec<u32> {
    let mut out = Vec::new();
    for pid in children_of(std::process::id()) {
        if is_fork_server(pid) {
            out.extend(children_of(pid));
        } else {
            out.push(pid);
        }
    }
    out
}

/// Waits (briefly) until this process has no worker at all, live or zombie
/// (its fork server aside, which lives as long as the process).
pub fn assert_no_children() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = children();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "child processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Serializes the tests of one binary that count child processes, since
/// libtest runs tests on parallel threads.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the process `pid` still exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// In a worker: writes `bytes` raw into its task channel (the reply ring of
/// its shared memory), ahead of the reply to the call running now, where
/// the parent expects only the worker's replies.
pub fn write_to_channel(bytes: &[u8]) {
    procpool::__private::write_raw_reply(bytes).unwrap();
}

/// The state letter of process `pid` (`R`, `S`, `T` stopped, `Z` zombie...),
/// or `None` if there is no such process.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the state follows its ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits up to `within` for process `pid` to be gone.
pub fn gone_within(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Every `procpool` log record of this test binary, as `LEVEL message`
/// (installed as the logger on first use, at trace level).
pub struct LogCapture(Mutex<Vec<String>>);

impl LogCapture {
    /// The lines captured so far that contain `what`.
    pub fn lines_with(&self, what: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|l| l.contains(what)).cloned().collect()
    }

    /// Forgets the lines captured so far.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// Every line captured so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl log::Log for LogCapture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("procpool")
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

/// The capturing logger (see [`LogCapture`]).
pub fn capture_log() -> &'static LogCapture {
    static CAPTURE: std::sync::OnceLock<&'static LogCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static LogCapture = Box::leak(Box::new(LogCapture(Mutex::new(Vec::new()))));
        log::set_logger(capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

/// Runs this test binary again with the test `name` alone, with `env` set
/// (for a test that needs a process of its own: an environment or a signal
/// disposition set before `init`); asserts that it passed there.
pub fn rerun_alone(name: &str, env: &[(&str, &str)]) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}
