//! Through a real program (`tests/helpers/fault_helper.rs`): workers (and the
//! fork server) die with their parent even when it is SIGKILLed; workers are
//! forked unless the program runs threads before `init()` or opts out; a
//! task that calls `std::process::exit(3)` fails with `WorkerDied` carrying
//! code 3. A terminal's Ctrl-C (SIGINT to the foreground process group)
//! reaches the program, not its workers: a program that handles it lets its
//! tasks finish or terminates them; one that dies of it takes its workers
//! along. A process started as a worker (or fork server) by anything but a
//! pool refuses loudly.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use support::{alive, assert_no_children, children_of, is_fork_server, serial};

procpool::enable_test_support!();

const HELPER: &str = env!("CARGO_BIN_EXE_procpool-fault-helper");

#[test]
fn workers_die_within_a_second_of_a_sigkilled_parent() {
    let _serial = serial();
    let (mut parent, line) = helper_first_line("orphan");
    let workers = announced_workers(&line);
    assert_eq!(workers.len(), 2);
    assert_ne!(workers[0], workers[1]);
    assert!(workers.iter().all(|&p| alive(p)));
    // The helper's fork server, if it runs one, goes too.
    let workers: Vec<u32> = workers
        .into_iter()
        .chain(
            children_of(parent.id())
                .into_iter()
                .filter(|&p| is_fork_server(p)),
        )
        .collect();
    parent.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    parent.wait().unwrap();
    loop {
        let left: Vec<u32> = workers.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            // Milliseconds in fact (printed below): the bound leaves room
            // for a heavily loaded machine.
            killed_at.elapsed() < Duration::from_secs(5),
            "workers {left:?} outlived their parent by 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "orphaned workers gone {:?} after SIGKILL",
        killed_at.elapsed()
    );
    assert_no_children();
}

/// The README's promise for a parent that dies: its workers go (a running
/// task with them), and processes a task started keep running, re-parented,
/// as after a worker's normal exit: procpool kills a worker's processes
/// only when it kills the worker itself (timeout, terminate).
#[test]
fn a_sigkilled_parents_worker_dies_and_the_process_its_task_started_keeps_running() {
    let _serial = serial();
    let (mut parent, line) = helper_first_line("orphan-child");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (worker, child): (u32, u32) = match words[..] {
        ["worker", w, "child", c] => (w.parse().unwrap(), c.parse().unwrap()),
        _ => panic!("unexpected output {line:?}"),
    };
    assert!(alive(worker) && alive(child), "{line}");
    parent.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    parent.wait().unwrap();
    let left = survivors_after(vec![worker], killed_at);
    let child_alive = alive(child);
    // The sleep is the test's to end now, whatever the outcome.
    let _ = Command::new("kill")
        .args(["-9", &child.to_string()])
        .status();
    assert!(
        left.is_empty(),
        "worker {left:?} outlived its parent by 5 s"
    );
    assert!(
        child_alive,
        "the task's process {child} died with its worker"
    );
}

/// The kernel clears a process's parent-death signal when its effective
/// user or group id changes, even for a moment (a task that drops root to
/// open a file as another user, then takes it back): such a worker, forked
/// or spawned, once outlived a SIGKILLed parent, idle for ever. Now the
/// fork server kills the workers it forked as it exits, and a spawned
/// worker's first thread looks four times a second for its parent's end.
#[test]
fn workers_whose_task_changed_credentials_die_with_a_sigkilled_parent() {
    let _serial = serial();
    for fork_server in ["1", "0"] {
        let (mut parent, _, workers) = orphans_with_changed_credentials(fork_server);
        parent.kill().unwrap(); // SIGKILL
        let killed_at = Instant::now();
        parent.wait().unwrap();
        let survivors = survivors_after(workers, killed_at);
        assert!(
            survivors.is_empty(),
            "workers {survivors:?} (PROCPOOL_FORK_SERVER={fork_server}) outlived their parent by 5 s"
        );
        println!(
            "PROCPOOL_FORK_SERVER={fork_server}: workers gone {:?} after SIGKILL",
            killed_at.elapsed()
        );
    }
    assert_no_children();
}

/// A fork server killed on its own (its parent gave up on it, or it
/// crashed) takes its workers with it: their parent-death signal kills
/// them, and the caller's death watch kills any whose task cleared that
/// signal by changing credentials. Such a worker once served on with
/// nothing left to end it, and outlived a SIGKILLed caller.
#[test]
fn workers_whose_task_changed_credentials_die_with_a_killed_fork_server() {
    let _serial = serial();
    let (mut parent, mut stdout, workers) = orphans_with_changed_credentials("1");
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let servers = announced("servers", &line);
    assert_eq!(servers.len(), 1, "{line}");
    let status = Command::new("kill")
        .args(["-9", &servers[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let killed_at = Instant::now();
    let survivors = survivors_after(workers, killed_at);
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        survivors.is_empty(),
        "workers {survivors:?} outlived their fork server by 5 s"
    );
    println!(
        "workers gone {:?} after the server's SIGKILL",
        killed_at.elapsed()
    );
    assert_no_children();
}

#[test]
fn process_exit_in_a_task_is_worker_died_with_its_code() {
    let _serial = serial();
    let out = Command::new(HELPER).args(["exit", "3"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let error = lines.next().unwrap();
    assert!(
        error.starts_with("WorkerDied { task: \"procpool_fault_helper::exit_with\", pid: ")
            && error.ends_with("status: Code(3) }"),
        "{error}"
    );
    let replacement = lines.next().unwrap();
    assert!(replacement.starts_with("replacement "), "{replacement}");
    assert_no_children();
}

/// What the helper's workers are, given this environment.
fn origins(env: &[(&str, &str)]) -> String {
    let out = Command::new(HELPER)
        .arg("origins")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn workers_are_forked_unless_the_program_is_threaded_at_init_or_opts_out() {
    let _serial = serial();
    assert_eq!(origins(&[]), "forked forked");
    // A thread running before init() would be lost in every fork: the
    // server refuses, and the pool spawns its workers.
    assert_eq!(
        origins(&[("PROCPOOL_TEST_THREAD_BEFORE_INIT", "1")]),
        "spawned spawned"
    );
    assert_eq!(origins(&[("PROCPOOL_FORK_SERVER", "0")]), "spawned spawned");
    assert_no_children();
}

/// The dynamic loader this test runs under, read from its own memory map.
fn dynamic_loader() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            let name = path.rsplit('/').next().unwrap_or_default();
            name.starts_with("ld-linux") || name.starts_with("ld64.so")
        })
        .expect("no dynamic loader in /proc/self/maps")
        .to_string()
}

/// Runs `cmd` with `PROCPOOL_FORK_SERVER=env` (workers forked by the fork
/// server, or spawned), asserts that it succeeded, and returns its output.
fn stdout_of(cmd: &mut Command, env: &str) -> String {
    let out = cmd.env("PROCPOOL_FORK_SERVER", env).output().unwrap();
    assert!(
        out.status.success(),
        "PROCPOOL_FORK_SERVER={env}: {cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A program started through the dynamic loader (`ld-linux-x86-64.so.2
/// ./prog`, where `/proc/self/exe` is the loader): its workers, forked or
/// spawned, run its code. They failed to start: the loader read
/// `--procpool-worker` as an option of its own.
#[test]
fn a_program_started_through_the_dynamic_loader_runs_its_tasks() {
    let _serial = serial();
    let loader = dynamic_loader();
    for (env, expected) in [("1", "forked forked"), ("0", "spawned spawned")] {
        let out = stdout_of(Command::new(&loader).args([HELPER, "origins"]), env);
        assert_eq!(out.trim(), expected);
        let out = stdout_of(Command::new(&loader).args([HELPER, "hello"]), env);
        assert!(out.starts_with("ok "));
    }
    assert_no_children();
}

/// A program's task gets far more stack than a main thread's 8 MiB, in a
/// forked worker as in a spawned one. A forked worker serves on its one
/// thread, a copy of the fork server's, which has the task's stack: it
/// starts no thread of its own (a spawned worker serves from a second one).
#[test]
fn a_programs_task_has_a_deep_stack_and_a_forked_worker_one_thread() {
    let _serial = serial();
    for (env, expected) in [("1", "deep forked 1"), ("0", "deep spawned 2")] {
        let out = stdout_of(Command::new(HELPER).arg("deep"), env);
        assert_eq!(out.trim(), expected, "PROCPOOL_FORK_SERVER={env}");
    }
    assert_no_children();
}

/// A program that lowers its data limit (`RLIMIT_DATA`) after `init()`,
/// below what the fork server maps (its serving thread's 256 MiB task stack
/// counts as data), still runs its tasks: a forked worker takes the limit
/// and could allocate nothing more, so the server declines to fork and the
/// pool spawns a worker, which starts small (and serves on its first
/// thread: a 256 MiB one does not fit). A forked one died of `SIGABRT` at
/// its first allocation of any size ("memory allocation of 16777216 bytes
/// failed").
#[test]
fn a_data_limit_lowered_after_init_below_the_servers_use_still_runs_tasks() {
    let _serial = serial();
    for env in ["1", "0"] {
        let out = stdout_of(Command::new(HELPER).arg("data-limit"), env);
        // Spawned either way: the server declines to fork a worker that
        // would start above its data limit.
        assert_eq!(
            out.trim(),
            "data-limit spawned 16777216",
            "PROCPOOL_FORK_SERVER={env}"
        );
    }
    assert_no_children();
}

/// Started through the dynamic loader by a relative path (`ld.so
/// ./prog`), a program that changes its working directory before its pool
/// starts still runs its tasks: the program's path is not looked up again
/// from `argv[0]` relative to the new directory. (Workers spawned then
/// failed: `argv[0]` no longer resolved, the loader read
/// `--procpool-worker` as its own option.)
#[test]
fn a_program_started_through_the_loader_by_a_relative_path_may_change_directory() {
    let _serial = serial();
    let loader = dynamic_loader();
    let helper = std::path::Path::new(HELPER);
    let name = format!("./{}", helper.file_name().unwrap().to_str().unwrap());
    for env in ["0", "1"] {
        let mut cmd = Command::new(&loader);
        cmd.args([name.as_str(), "hello-elsewhere"])
            .current_dir(helper.parent().unwrap());
        assert!(stdout_of(&mut cmd, env).starts_with("ok "));
    }
    assert_no_children();
}

/// Started through the dynamic loader with options of the loader's own
/// (`ld.so --preload LIB ./prog`, or `--library-path DIR` for libraries found
/// only there), a program's workers are started with the same options:
/// they load what the program loaded. (They were started as `ld.so argv0
/// PROGRAM`: a preloaded library was missing there, and a library found
/// only through `--library-path` failed their start.)
#[test]
fn a_program_started_through_the_loader_with_its_options_passes_them_on() {
    let _serial = serial();
    let loader = dynamic_loader();
    for env in ["0", "1"] {
        let mut cmd = Command::new(&loader);
        cmd.args(["--preload", "libm.so.6", HELPER, "preloaded", "libm.so"]);
        assert_eq!(
            stdout_of(&mut cmd, env).trim(),
            "parent true worker true",
            "PROCPOOL_FORK_SERVER={env}"
        );
    }
    assert_no_children();
}

/// A program whose own file name looks like the dynamic loader's
/// (`ld.so-…`), started through `PATH` from a directory holding another file
/// of that name, re-executes itself, not that file. (Its workers were
/// started as `itself argv0 ./that-file --procpool-worker`: taken for the
/// loader, `argv[0]` resolved against the working directory to a
/// different file.)
#[test]
fn a_program_named_like_the_loader_is_not_taken_for_it() {
    let _serial = serial();
    // A copy of the program runs from there: in the build's own temporary
    // directory, since the system's may be mounted noexec (the test failed
    // with TMPDIR on such a mount).
    let dir = support::Scratch::new(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("procpool-ldname-{}", std::process::id())),
    );
    std::fs::create_dir_all(&*dir).unwrap();
    let bin = dir.join("bin");
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let name = "ld.so-tool";
    std::fs::copy(HELPER, bin.join(name)).unwrap();
    // A decoy of the same name where the program runs.
    std::fs::write(cwd.join(name), "not the program").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for env in ["0", "1"] {
        let mut cmd = Command::new(name);
        cmd.arg("hello").current_dir(&cwd).env("PATH", &path);
        assert!(stdout_of(&mut cmd, env).starts_with("ok "));
    }
    assert_no_children();
}

#[test]
fn workers_are_forked_under_a_tight_limit_of_open_files() {
    let _serial = serial();
    // The whole program (and so its fork server) may open 20 files: a
    // forked worker sets up its descriptors within them. Descriptors this
    // process inherited without close-on-exec (from whatever started it)
    // pass on to the helper and take numbers below the limit: the limit is
    // 20 above them. (With 8 such the test failed.)
    let inherited = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        // SAFETY: F_GETFD only reads a descriptor's flags (a closed one: -1).
        .filter(|&fd| fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } == 0)
        .count() as libc::rlim_t;
    let mut helper = Command::new(HELPER);
    helper.arg("origins");
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        helper.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: 20 + inherited,
                rlim_max: 20 + inherited,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let out = helper.output().unwrap();
    assert!(
        out.status.success(),
        "helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "forked forked");
    assert_no_children();
}

/// A program whose logger prints procpool's warnings: 20 rounds of
/// `max_tasks_per_child(1)` ended by `terminate()`, which often finds a
/// worker retiring. Killing it then is part of the terminate, not an unclean
/// retirement: nothing is reported, and stderr stays empty.
#[test]
fn terminate_during_retirements_reports_nothing() {
    let _serial = serial();
    let out = Command::new(HELPER).arg("retire-loop").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helper failed: {stdout}\n{stderr}");
    assert_eq!(stderr, "", "procpool reported something");
    assert_eq!(stdout.trim(), "unclean 0");
    assert_no_children();
}

/// The processes of `workers` still alive 5 s after `killed_at` (within a
/// second in fact; the bound leaves room for a heavily loaded machine),
/// each killed here once found, or they would hold this test's output
/// open.
fn survivors_after(workers: Vec<u32>, killed_at: Instant) -> Vec<u32> {
    let survivors: Vec<u32> = workers
        .into_iter()
        .filter(|&pid| {
            !support::gone_within(
                pid,
                Duration::from_secs(5).saturating_sub(killed_at.elapsed()),
            )
        })
        .collect();
    for &pid in &survivors {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    survivors
}

/// The helper started in `mode`, and the first line it printed (its
/// stdout is not read any further).
fn helper_first_line(mode: &str) -> (Child, String) {
    let mut parent = Command::new(HELPER)
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (parent, line)
}

/// The pids on the helper's line `workers <pid> <pid>`.
fn announced_workers(line: &str) -> Vec<u32> {
    announced("workers", line)
}

/// The pids the helper's line `line` lists after `what`.
fn announced(what: &str, line: &str) -> Vec<u32> {
    line.strip_prefix(what)
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// The helper in mode `orphan-creds` (with `PROCPOOL_FORK_SERVER` set to
/// `fork_server`), its output after the line naming its two workers, and
/// those workers, checked alive.
fn orphans_with_changed_credentials(
    fork_server: &str,
) -> (Child, BufReader<ChildStdout>, Vec<u32>) {
    let mut parent = Command::new(HELPER)
        .arg("orphan-creds")
        .env("PROCPOOL_FORK_SERVER", fork_server)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(parent.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let workers = announced_workers(&line);
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|&p| alive(p)));
    (parent, stdout, workers)
}

/// Starts the helper in a process group of its own, as a shell starts a
/// foreground job, and returns it once it printed its first line.
fn start_job(args: &[&str]) -> (Child, String) {
    let mut job = Command::new(HELPER)
        .args(args)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(job.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    job.stdout = Some(stdout.into_inner());
    (job, line)
}

/// What a terminal does on Ctrl-C: SIGINT to the whole foreground group.
fn ctrl_c(job: &Child) {
    // SAFETY: kill(2) on the process group of the helper this test started.
    let sent = unsafe { libc::kill(-(job.id() as libc::pid_t), libc::SIGINT) };
    assert_eq!(sent, 0);
}

fn finish(job: Child) -> (std::process::ExitStatus, String, String) {
    let out = job.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status, stdout, stderr)
}

#[test]
fn a_program_that_handles_ctrl_c_lets_its_running_tasks_finish() {
    let _serial = serial();
    let (job, line) = start_job(&["ctrl-c", "finish"]);
    assert_eq!(line.trim(), "ready");
    ctrl_c(&job);
    let (status, stdout, stderr) = finish(job);
    assert!(status.success(), "{status}: {stdout}\n{stderr}");
    let outcomes: Vec<&str> = stdout.lines().collect();
    assert_eq!(outcomes.len(), 2, "{stdout}");
    assert!(
        outcomes.iter().all(|o| o.starts_with("ok ")),
        "the workers got the Ctrl-C: {stdout}"
    );
    assert_eq!(stderr, "");
    assert_no_children();
}

#[test]
fn a_program_that_handles_ctrl_c_may_terminate_its_running_tasks() {
    let _serial = serial();
    let (job, line) = start_job(&["ctrl-c", "terminate"]);
    assert_eq!(line.trim(), "ready");
    ctrl_c(&job);
    let (status, stdout, stderr) = finish(job);
    assert!(status.success(), "{status}: {stdout}\n{stderr}");
    let outcomes: Vec<&str> = stdout.lines().collect();
    assert_eq!(outcomes.len(), 2, "{stdout}");
    assert!(
        outcomes.iter().all(|o| o.starts_with("Terminated {")),
        "{stdout}"
    );
    assert_no_children();
}

#[test]
fn workers_die_within_a_second_of_a_program_killed_by_ctrl_c() {
    let _serial = serial();
    let (mut job, line) = start_job(&["orphan"]);
    let workers = announced_workers(&line);
    ctrl_c(&job);
    let killed_at = Instant::now();
    let status = job.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    let mut rest = String::new();
    job.stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert_eq!(rest, "");
    for pid in workers {
        assert!(
            support::gone_within(
                pid,
                Duration::from_secs(5).saturating_sub(killed_at.elapsed())
            ),
            "worker {pid} outlived its parent by 5 s"
        );
    }
    assert_no_children();
}

/// Runs the helper with procpool's worker variables set (`parent` as the
/// parent pid) and `channel` (if any) at fd 3, as a process manager or a
/// stray environment would leave them.
fn run_with_worker_env(
    args: &[&str],
    channel: Option<std::os::fd::RawFd>,
    parent: u32,
) -> std::process::Output {
    run_with_env(args, "PROCPOOL_WORKER_FD", channel, parent)
}

/// Runs the helper with `fd_var` (`PROCPOOL_WORKER_FD` or
/// `PROCPOOL_FORK_SERVER_FD`) naming fd 3, `parent` as the parent pid, and
/// `channel` (if any) at fd 3.
fn run_with_env(
    args: &[&str],
    fd_var: &str,
    channel: Option<std::os::fd::RawFd>,
    parent: u32,
) -> std::process::Output {
    let mut cmd = Command::new(HELPER);
    cmd.args(args)
        .env(fd_var, "3")
        .env("PROCPOOL_PARENT_PID", parent.to_string())
        .stdin(Stdio::null());
    if let Some(fd) = channel {
        // SAFETY: dup2 and fcntl are async-signal-safe; they only put `fd`
        // at 3 without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(fd, 3) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

fn assert_refused(out: &std::process::Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited {}: {stderr}", out.status);
    assert_eq!(out.stdout, b"", "it ran as a program");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("procpool:"), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

/// The systemd socket-activation layout: a listening TCP socket at fd 3.
#[test]
fn a_worker_start_on_a_listening_tcp_socket_fails_loudly() {
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let out = run_with_worker_env(&["--procpool-worker"], Some(fd), std::process::id());
    assert_refused(&out, "fd 3");
    // Without the worker argument the variables are stray: a normal run.
    let out = run_with_worker_env(&["hello"], Some(fd), std::process::id());
    assert!(out.status.success(), "{:?}", out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
    assert_no_children();
}

#[test]
fn a_worker_start_whose_channel_is_not_from_the_named_parent_fails_loudly() {
    let _serial = serial();
    // A real channel, made by this process; the variable names another parent.
    let channel = procpool::__private::HandChannel::new(1 << 20).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&channel.fd());
    let out = run_with_worker_env(&["--procpool-worker"], Some(fd), 1);
    assert_refused(&out, "process 1");
    // A socket pair of this process (the old channel) is no channel.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    let out = run_with_worker_env(&["--procpool-worker"], Some(fd), std::process::id());
    assert_refused(&out, "fd 3 is not a memfd");
    drop(ours);
    // No fd 3 at all.
    let out = run_with_worker_env(&["--procpool-worker"], None, std::process::id());
    assert_refused(&out, "fd 3");
    assert_no_children();
}

/// The same checks for a process started as the fork server: its fd 3 must
/// be a `SOCK_SEQPACKET` Unix socket whose other end is the named parent.
#[test]
fn a_fork_server_start_on_anything_but_its_parents_socket_fails_loudly() {
    let _serial = serial();
    let server = ["--procpool-fork-server"];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let out = run_with_env(
        &server,
        "PROCPOOL_FORK_SERVER_FD",
        Some(fd),
        std::process::id(),
    );
    assert_refused(&out, "fd 3");
    let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    let out = run_with_env(
        &server,
        "PROCPOOL_FORK_SERVER_FD",
        Some(fd),
        std::process::id(),
    );
    assert_refused(&out, "not a socket of the expected type");
    drop(ours);
    let (ours, theirs) = seqpacket_pair();
    let out = run_with_env(&server, "PROCPOOL_FORK_SERVER_FD", Some(theirs), 1);
    assert_refused(&out, "process 1");
    // SAFETY: closing the two fds `seqpacket_pair` made.
    unsafe {
        libc::close(ours);
        libc::close(theirs);
    }
    let out = run_with_env(&server, "PROCPOOL_FORK_SERVER_FD", None, std::process::id());
    assert_refused(&out, "fd 3");
    // Without the server argument the variables are stray: a normal run.
    let out = run_with_env(
        &["hello"],
        "PROCPOOL_FORK_SERVER_FD",
        None,
        std::process::id(),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok "));
    assert_no_children();
}

/// A connected `SOCK_SEQPACKET` pair of this process (close-on-exec).
fn seqpacket_pair() -> (std::os::fd::RawFd, std::os::fd::RawFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into the live array.
    let made = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(made, 0);
    (fds[0], fds[1])
}

#[test]
fn stray_worker_variables_never_turn_a_normal_run_into_a_worker() {
    let _serial = serial();
    let out = run_with_worker_env(&["hello"], None, std::process::id());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok "), "{stdout}");
    assert_eq!(out.stderr, b"");
    assert_no_children();
}

/// Has `cmd` start under a seccomp filter that fails `pidfd_open` with
/// `errno`, as a container's filter from before Linux 5.3 does.
fn without_pidfd_open(cmd: &mut Command, errno: i32) -> &mut Command {
    // Classic BPF over `struct seccomp_data`, whose first field is the
    // system call's number: load it, compare, allow or fail.
    const LOAD_NR: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JUMP_IF_EQUAL: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    let filter = [
        libc::sock_filter {
            code: LOAD_NR,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: JUMP_IF_EQUAL,
            jt: 1,
            jf: 0,
            k: libc::SYS_pidfd_open as u32,
        },
        libc::sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: ALLOW,
        },
        libc::sock_filter {
            code: RETURN,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | errno as u32,
        },
    ];
    // SAFETY: between fork and exec the closure only makes two prctl
    // calls (async-signal-safe), which read the filter program: the
    // `filter` array the closure owns outlives them.
    unsafe {
        cmd.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A system that refuses `pidfd_open` (a kernel before 5.3, or a
/// container's seccomp filter that predates it) fails `build` with a
/// `WorkerStart` that names `pidfd_open`, not one that blames the
/// program's execution; no worker is left behind.
#[test]
fn a_refused_pidfd_open_fails_the_start_naming_it() {
    let _serial = serial();
    for (errno, text) in [
        (libc::ENOSYS, "not implemented"),
        (libc::EPERM, "not permitted"),
    ] {
        for env in ["0", "1"] {
            let out = without_pidfd_open(Command::new(HELPER).arg("hello"), errno)
                .env("PROCPOOL_FORK_SERVER", env)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "started anyway: {stderr}");
            assert!(stderr.contains("WorkerStart"), "{stderr}");
            assert!(stderr.contains("pidfd_open"), "{stderr}");
            assert!(stderr.contains(text), "{stderr}");
            assert!(!stderr.contains("could not execute"), "{stderr}");
        }
    }
    assert_no_children();
}
