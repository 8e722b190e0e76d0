//! Helpers of the distributed tests: a real `redis-server` per test (from
//! PATH, random loopback port, temporary directory, stopped when dropped),
//! node processes of the helper binary, and `redis-cli` to look inside.
#![allow(dead_code)]

pub mod netns;
pub mod proxy;
// The one polling helper, shared with `support` (a test binary that
// declares both modules has it twice: one small function).
#[allow(clippy::duplicate_mod)]
#[path = "../support/wait.rs"]
mod wait;

#[allow(unused_imports)] // not every test binary polls
pub use wait::{wait_for, within};

/// Every process below `pid` (children, theirs, ...).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                if let Some(pp) = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok()) {
                    parent_of.push((p, pp));
                }
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let here = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == here)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Calls `call` again every 100 ms while it fails with `Error::Broker`
/// (Redis restarted, or refusing writes), for at most 30 s; returns what
/// it gave then. `what` names the wait in the panic if it never ends.
pub fn past_broker_errors<T: std::fmt::Debug>(
    what: &str,
    mut call: impl FnMut() -> Result<T, procpool::Error>,
) -> T {
    let began = Instant::now();
    loop {
        match call() {
            Ok(value) => return value,
            Err(procpool::Error::Broker { .. }) if began.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("{what}, yet: {other:?}"),
        }
    }
}
// Scratch directories, likewise shared with `support`.
#[allow(clippy::duplicate_mod)]
#[path = "../support/scratch.rs"]
mod scratch;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const HELPER: &str = env!("CARGO_BIN_EXE_procpool-redis-helper");

/// A caller process (the helper's `caller` mode) that has submitted its
/// call (a mark in `file` taking `ms`), and a reader of what it prints
/// next (`ok <pid>` or `err ...`, then a `square <y>` per number sent to
/// its stdin).
pub fn caller_proc(
    url: &str,
    file: &str,
    ms: u64,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(HELPER)
        .args(["caller", url, file, &ms.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "submitted");
    (child, out)
}

/// Fails the test at once, in one line, when Redis is not installed: these
/// tests never skip silently.
pub fn require_redis() {
    for tool in ["redis-server", "redis-cli"] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!("{tool} is not on PATH: install redis-server (apt-get install redis-server) to run the distributed tests");
        }
    }
}

/// A fresh directory, removed when dropped (see `support::Scratch`, which
/// also sweeps those that runs killed by a signal left behind: `timeout`
/// stops a test and its redis-server together, and a killed process drops
/// no guard).
pub struct TempDir(scratch::Scratch);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempDir(scratch::Scratch::temp_dir(&format!("redis{n}")))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

/// A loopback port free now and never handed out before in this process.
/// The kernel hands a port out again as soon as nothing is bound to it:
/// while a test's server is down to be restarted on its port (or before a
/// server binds the port it was given), another test of the binary could
/// be given it for its own server, and each would then talk to the
/// other's Redis.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().unwrap().port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A redis-server of our own, killed (SIGKILL) when dropped.
pub struct RedisServer {
    pub dir: TempDir,
    pub port: u16,
    /// Where it listens (127.0.0.1, or an address inside a namespace).
    pub host: String,
    /// Runs commands inside a network namespace: `ip netns exec NAME`.
    pub prefix: Vec<String>,
    config: Vec<(String, String)>,
    child: Option<Child>,
    /// `user:password` for the URL and redis-cli, when the server needs it.
    userinfo: Option<String>,
}

impl RedisServer {
    /// AOF on (`appendfsync always`: nothing acknowledged is lost), no RDB.
    pub fn start() -> RedisServer {
        Self::start_with(&[("appendonly", "yes"), ("appendfsync", "always")])
    }

    pub fn start_with(config: &[(&str, &str)]) -> RedisServer {
        Self::start_full(config, None, &[], "127.0.0.1")
    }

    /// With `userinfo` in every URL and command, run under `prefix` (a
    /// namespace), listening on `bind`.
    pub fn start_full(
        config: &[(&str, &str)],
        userinfo: Option<&str>,
        prefix: &[&str],
        bind: &str,
    ) -> RedisServer {
        require_redis();
        let mut s = RedisServer {
            dir: TempDir::new(),
            port: 0,
            host: bind.split(' ').next_back().unwrap_or(bind).to_string(),
            prefix: prefix.iter().map(|p| p.to_string()).collect(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("bind".to_string(), bind.to_string())])
                .collect(),
            child: None,
            userinfo: userinfo.map(String::from),
        };
        // A port found free can be taken before redis binds it: try a few.
        for _ in 0..5 {
            s.port = free_port();
            if s.spawn() {
                return s;
            }
        }
        panic!("could not start redis-server; its log: {}", s.log());
    }

    fn command(&self, program: &str) -> Command {
        match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = self.command("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.file("redis.log"));
        for (k, v) in &self.config {
            // Multi-word values (`user alice on >pw ~pp:*`, `bind a b`) go
            // as separate arguments, which redis-server joins into one line.
            cmd.arg(format!("--{k}")).args(v.split(' '));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.try_cli(&["PING"]).is_some_and(|p| p == "PONG") {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self) -> String {
        match &self.userinfo {
            Some(u) => format!("redis://{u}@{}:{}/0", self.host, self.port),
            None => format!("redis://{}:{}/0", self.host, self.port),
        }
    }

    /// redis-cli, connected to this server.
    fn cli_command(&self) -> Command {
        let mut cmd = self.command("redis-cli");
        // `-e`: an error reply is a failure (exit 1), not text that a test
        // could take for an answer.
        cmd.args(["-e", "-h", &self.host, "-p", &self.port.to_string()]);
        if let Some(u) = &self.userinfo {
            let (user, pass) = u.split_once(':').unwrap_or(("default", u));
            if !user.is_empty() {
                cmd.args(["--user", user]);
            }
            cmd.args(["--pass", pass, "--no-auth-warning"]);
        }
        cmd
    }

    /// Runs many commands (each its arguments) through one redis-cli in
    /// pipe mode: sent at once, a few milliseconds for thousands even on a
    /// loaded machine; panics if any fails.
    pub fn cli_pipe(&self, commands: &[Vec<String>]) {
        use std::io::Write;
        let mut resp = Vec::new();
        for args in commands {
            write!(resp, "*{}\r\n", args.len()).unwrap();
            for arg in args {
                write!(resp, "${}\r\n{arg}\r\n", arg.len()).unwrap();
            }
        }
        let mut child = self
            .cli_command()
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&resp).expect("redis-cli's input");
        drop(stdin);
        let out = child.wait_with_output().expect("redis-cli");
        let report = String::from_utf8_lossy(&out.stdout);
        if !(out.status.success() && report.contains("errors: 0,")) {
            let first: Vec<&str> = commands[0].iter().map(String::as_str).collect();
            let said = self.cli(&first);
            panic!("redis-cli --pipe: {report}; the first command alone: {said}");
        }
    }

    /// A redis-cli command's output (trimmed), or `None` if it failed.
    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        self.cli_reply(args)
            .ok()
            .filter(|text| !text.starts_with("ERR") && !text.starts_with("Could not"))
    }

    /// A redis-cli command's reply (trimmed): `Err` with its text for an
    /// error reply (or if redis-cli could not be run).
    pub fn cli_reply(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .cli_command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stdout) + &text(&out.stderr))
        }
    }

    /// A redis-cli command's output; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    pub fn int(&self, args: &[&str]) -> i64 {
        let out = self.cli(args);
        out.parse()
            .unwrap_or_else(|_| panic!("redis-cli {args:?} said {out:?}"))
    }

    /// Sends `signal` to the redis-server (SIGSTOP, SIGCONT: a Redis that
    /// stands still for a while).
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("redis-server runs");
        // SAFETY: kill(2) of our own child process with a valid signal.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// SIGKILL, no shutdown: what the AOF holds is all that survives.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same directory and port (reloading the AOF).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        assert!(
            self.spawn(),
            "redis-server did not come back: {}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .cli(&["--raw", "KEYS", "*"])
            .lines()
            .map(String::from)
            .filter(|l| !l.is_empty())
            .collect();
        k.sort();
        k
    }

    /// The one key ending in `suffix` (`:tasks`, `:members`), if any.
    pub fn key(&self, suffix: &str) -> Option<String> {
        self.key_where(|k| k.ends_with(suffix))
    }

    /// The one key containing `part` (`:res:`), if any.
    pub fn key_with(&self, part: &str) -> Option<String> {
        self.key_where(|k| k.contains(part))
    }

    fn key_where(&self, pick: impl Fn(&str) -> bool) -> Option<String> {
        let found: Vec<String> = self.keys().into_iter().filter(|k| pick(k)).collect();
        assert!(found.len() <= 1, "several such keys: {found:?}");
        found.into_iter().next()
    }

    /// Entries in the task stream (0 if it does not exist yet).
    pub fn queued(&self) -> i64 {
        self.key(":tasks").map_or(0, |k| self.int(&["XLEN", &k]))
    }

    /// Entries claimed by some node and not yet settled (the group's
    /// pending count).
    pub fn pending(&self) -> i64 {
        let Some(tasks) = self.key(":tasks") else {
            return 0;
        };
        let out = self.cli(&["XPENDING", &tasks, "nodes"]);
        out.lines()
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(-1)
    }

    /// Whether [`pending`](Self::pending) reaches `n` within `limit`
    /// (polled every 20 ms).
    pub fn pending_reaches(&self, n: i64, limit: Duration) -> bool {
        let begun = Instant::now();
        while begun.elapsed() < limit {
            if self.pending() == n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The members hash: name → kind (`caller`, `node`, `p:…`, `hw:…`).
    pub fn members(&self) -> Vec<(String, String)> {
        let Some(k) = self.key(":members") else {
            return Vec::new();
        };
        let raw = self.cli(&["--raw", "HGETALL", &k]);
        let lines: Vec<&str> = raw.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    }

    /// The members of every queue and build in this Redis (each `:members`
    /// hash's name → kind), where [`members`](Self::members) wants one.
    pub fn all_members(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for key in self.keys().iter().filter(|k| k.ends_with(":members")) {
            let raw = self.cli(&["--raw", "HGETALL", key]);
            let lines: Vec<&str> = raw.lines().collect();
            all.extend(
                lines
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].to_string(), c[1].to_string())),
            );
        }
        all
    }

    /// A number of `INFO section`: its `field`.
    fn info(&self, section: &str, field: &str) -> u64 {
        self.cli(&["INFO", section])
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in INFO {section}"))
    }

    pub fn used_memory(&self) -> u64 {
        self.info("memory", "used_memory")
    }

    /// The clients connected now, redis-cli's own one that asks included.
    pub fn clients(&self) -> usize {
        self.info("clients", "connected_clients") as usize
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A node: the helper binary in its own process.
pub struct NodeProc {
    pub child: Child,
    /// Its member name, once known.
    pub name: String,
    stdin: Option<ChildStdin>,
}

impl NodeProc {
    /// A node from the environment (`PROCPOOL_NODE=… procpool::init()`),
    /// with `processes` workers; returns once it is registered.
    pub fn env(server: &RedisServer, processes: usize) -> NodeProc {
        let processes = processes.to_string();
        Self::env_with(server, &[("PROCPOOL_PROCESSES", &processes)])
    }

    /// A node from the environment `PROCPOOL_NODE=…` and `vars`
    /// (`PROCPOOL_QUEUE`, `PROCPOOL_PROCESSES`, or neither), on whatever
    /// queue they name; returns once it is registered.
    pub fn env_with(server: &RedisServer, vars: &[(&str, &str)]) -> NodeProc {
        let child = Command::new(HELPER)
            .env("PROCPOOL_NODE", server.url())
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the node helper");
        let pid = child.id();
        let mut node = NodeProc {
            child,
            name: String::new(),
            stdin: None,
        };
        wait_for(Duration::from_secs(20), "the node to register", || {
            node.name = server
                .all_members()
                .into_iter()
                .find(|(k, v)| v == "node" && k.ends_with(&format!(":{pid}")))
                .map(|(k, _)| k)
                .unwrap_or_default();
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("the node exited: {status}");
            }
            !node.name.is_empty()
        });
        node
    }

    /// A node made in code (`procpool::Node`), with options of the helper
    /// (`processes`, `prefetch`, `max-frame`, `queue`), under `prefix` (a
    /// network namespace) if given.
    pub fn code(url: &str, options: &[(&str, &str)], prefix: &[&str]) -> NodeProc {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(HELPER);
                c
            }
            None => Command::new(HELPER),
        };
        cmd.arg("node").arg(url);
        for (k, v) in options {
            cmd.arg(k).arg(v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the node helper");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let name = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the node said {line:?}"))
            .to_string();
        std::thread::spawn(move || {
            let mut rest = String::new();
            while out.read_line(&mut rest).unwrap_or(0) > 0 {}
        });
        NodeProc { child, name, stdin }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill() with a pid of our own child and a valid signal.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Graceful stop of a node made in code: closes its standard input.
    pub fn stop(mut self) {
        self.ask_to_stop();
        let _ = self.child.wait();
    }

    /// Asks a node made in code to stop (`Node::stop`, then `Node::wait`)
    /// without waiting for it: closes its standard input.
    pub fn ask_to_stop(&mut self) {
        self.stdin.take();
    }

    /// Whether the node's process ends within `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `t/hold` call, started: it holds its worker until [`Held::release`].
pub struct Held {
    /// The mark file (`start held <pid>`, then `end held <pid>`).
    pub file: String,
    gate: String,
    /// Holds the files.
    _dir: TempDir,
}

impl Held {
    /// Submits a `t/hold` call on `pool` and waits until it runs; its
    /// result beside it.
    pub fn start(pool: &procpool::Pool) -> (Held, procpool::AsyncResult<u32>) {
        let dir = TempDir::new();
        let file = dir.file("marks");
        let gate = dir.file("gate");
        let result =
            crate::tasks::apply_async_hold(pool, file.clone(), "held".into(), gate.clone());
        wait_for(Duration::from_secs(20), "the held call to start", || {
            marks(&file, "start").len() == 1
        });
        let held = Held {
            file,
            gate,
            _dir: dir,
        };
        (held, result)
    }

    /// The worker running it.
    pub fn worker(&self) -> u32 {
        mark_pid(&marks(&self.file, "start")[0]) as u32
    }

    /// Lets it end.
    pub fn release(&self) {
        std::fs::write(&self.gate, b"").unwrap();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `n` calls of the `t/mark` task on `pool`, submitted at once: tagged
/// `{prefix}{i}` in the mark file `path`, each sleeping `ms`.
pub fn mark_calls(
    pool: &procpool::Pool,
    path: &str,
    prefix: &str,
    n: usize,
    ms: u64,
) -> Vec<procpool::AsyncResult<u32>> {
    (0..n)
        .map(|i| crate::tasks::apply_async_mark(pool, path.to_string(), format!("{prefix}{i}"), ms))
        .collect()
}

/// Lines of a mark file (see the `t/mark` task) starting with `what`.
pub fn marks(path: &str, what: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(what))
        .map(String::from)
        .collect()
}

/// The pid in a mark line (`start <tag> <pid>`).
pub fn mark_pid(line: &str) -> i32 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The process that owns the pool a worker whose parent is `parent` belongs
/// to: `parent` itself, or, when `parent` is that process's fork server (a
/// helper `init()` starts to fork workers), the fork server's parent.
pub fn pool_owner(parent: i32) -> i32 {
    let cmdline = std::fs::read(format!("/proc/{parent}/cmdline")).unwrap_or_default();
    if !cmdline.windows(20).any(|w| w == b"procpool-fork-server") {
        return parent;
    }
    let stat = std::fs::read_to_string(format!("/proc/{parent}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}
