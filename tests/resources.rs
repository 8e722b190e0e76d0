//! What a pool holds goes when it goes: its threads, its file descriptors,
//! its shared memory, its child processes (none left as a zombie), and its
//! workers and fork server when the program is SIGKILLed, forked or spawned.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};
use support::{alive, assert_no_children, back_within, children, fds, serial, state, threads};

procpool::enable_test_support!();

const HELPER: &str = env!("CARGO_BIN_EXE_procpool-fault-helper");

#[pool_task]
fn double(x: u64) -> u64 {
    2 * x
}

#[pool_task]
fn exit_worker(code: i32) -> u64 {
    std::process::exit(code)
}

/// This process's mappings of shared memory made by `memfd_create`.
fn memfd_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/memfd:"))
        .count()
}

/// One pool used every way that starts a thread or a descriptor (calls, a
/// callback, a map, an imap), then dropped.
fn one_pool_cycle(round: u64) {
    let pool = Pool::new(2).unwrap();
    assert_eq!(apply_double(&pool, round).unwrap(), 2 * round);
    let (tx, rx) = std::sync::mpsc::channel();
    let r = apply_async_double(&pool, round).callback(move |v| tx.send(v).unwrap());
    assert_eq!(r.get().unwrap(), 2 * round);
    assert_eq!(rx.recv().unwrap(), 2 * round);
    assert_eq!(map_double(&pool, 0..10).unwrap().len(), 10);
    assert_eq!(imap_double(&pool, 0..10).count(), 10);
}

/// Set in a run of this binary by [`alone`].
const ALONE: &str = "PROCPOOL_TEST_RESOURCES_ALONE";

/// Whether the test `name` runs in a process of its own, where it can
/// count the process's threads: if not, runs it so (and it passed there).
/// In a run of several tests, libtest starts the thread of the next one
/// whenever one ends, which can be after this test's first count (its
/// other tests wait on `serial()` meanwhile, each on a thread).
fn alone(name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    support::rerun_alone(name, &[(ALONE, "1")]);
    false
}

/// 200 pools made, used and dropped leave the process with the threads,
/// descriptors and shared-memory mappings it had before.
#[test]
fn pools_built_and_dropped_leave_no_thread_fd_or_mapping() {
    let _serial = serial();
    if !alone("pools_built_and_dropped_leave_no_thread_fd_or_mapping") {
        return;
    }
    // The first pool starts what lives as long as the process (the death
    // watch, say).
    one_pool_cycle(0);
    assert_no_children();
    let (threads0, fds0, maps0) = (threads(), fds(), memfd_mappings());
    for round in 1..=200 {
        one_pool_cycle(round);
    }
    assert_no_children();
    back_within("threads left", threads0, threads);
    back_within("descriptors left", fds0, fds);
    back_within("shared memory left mapped", maps0, memfd_mappings);
}

/// A pool that terminates (rather than joins) leaves nothing either.
#[test]
fn terminated_pools_leave_no_thread_fd_or_mapping() {
    let _serial = serial();
    if !alone("terminated_pools_leave_no_thread_fd_or_mapping") {
        return;
    }
    one_pool_cycle(0);
    let (threads0, fds0, maps0) = (threads(), fds(), memfd_mappings());
    for round in 0..50 {
        let pool = Pool::new(2).unwrap();
        let running = apply_async_double(&pool, round);
        pool.terminate();
        let _ = running.get();
        drop(pool);
    }
    assert_no_children();
    back_within("threads left", threads0, threads);
    back_within("descriptors left", fds0, fds);
    back_within("shared memory left mapped", maps0, memfd_mappings);
}

/// 300 worker recyclings (`max_tasks_per_child(1)`) and 50 worker crashes
/// in one pool: the pool (and the fork server that forks its workers)
/// keeps as many descriptors and mappings as it had with its first
/// workers, and no child it is done with stays a zombie.
#[test]
fn recycled_and_crashed_workers_leave_no_fd_mapping_or_zombie() {
    let _serial = serial();
    one_pool_cycle(0);
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let server = support::fork_server().expect("a test binary runs a fork server");
    let server_fds = || {
        std::fs::read_dir(format!("/proc/{server}/fd"))
            .unwrap()
            .count()
    };
    let (fds0, maps0, server_fds0) = (fds(), memfd_mappings(), server_fds());
    for x in 0..300 {
        assert_eq!(apply_double(&pool, x).unwrap(), 2 * x);
    }
    for _ in 0..50 {
        assert!(matches!(
            apply_exit_worker(&pool, 3),
            Err(Error::WorkerDied { .. })
        ));
    }
    back_within("descriptors grew", fds0, fds);
    back_within(
        "the fork server's descriptors grew",
        server_fds0,
        server_fds,
    );
    back_within("mappings grew", maps0, memfd_mappings);
    let zombies = || {
        children()
            .into_iter()
            .filter(|&p| state(p) == Some('Z'))
            .count()
    };
    back_within("zombie workers", 0, zombies);
    drop(pool);
    assert_no_children();
}

/// The helper's process, killed and reaped when dropped, also when an
/// assertion fails first (a child left running would fail the next test's
/// `assert_no_children`).
struct Job(std::process::Child);

impl Job {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The helper's workers (and its fork server, if any), once it printed
/// their pids: returns the job and them.
fn orphan_job(mode: &str, fork_server: &str) -> (Job, Vec<u32>) {
    let mut parent = Command::new(HELPER)
        .arg(mode)
        .env("PROCPOOL_FORK_SERVER", fork_server)
        .stdout(Stdio::piped())
        .spawn()
        .map(Job)
        .unwrap();
    let mut out = BufReader::new(parent.0.stdout.take().unwrap());
    // Its workers, then its fork server (read by the helper itself: in
    // `exec` mode the server ends as soon as the exec closes its socket).
    let mut pids = Vec::new();
    for prefix in ["workers", "servers"] {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        pids.extend(
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected output {line:?}"))
                .split_whitespace()
                .map(|p| p.parse::<u32>().unwrap()),
        );
    }
    (parent, pids)
}

/// A SIGKILLed program leaves no process behind, its workers forked by a
/// fork server or spawned.
#[test]
fn a_sigkilled_program_leaves_no_process_either_way() {
    let _serial = serial();
    for fork_server in ["1", "0"] {
        let (mut parent, pids) = orphan_job("orphan", fork_server);
        assert_eq!(
            pids.len(),
            if fork_server == "1" { 3 } else { 2 },
            "PROCPOOL_FORK_SERVER={fork_server}: {pids:?}"
        );
        parent.kill();
        support::wait_for(Duration::from_secs(30), "the orphans to go", || {
            pids.iter().all(|&p| !alive(p))
        });
    }
    assert_no_children();
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 1000 more pools made, used and dropped after 200 leave the process's
/// resident memory where it was: no leak per pool (of 1 KiB or more, about
/// 40 bytes a call), each half of them growing it by less than 512 KiB
/// (alone, it grew by 8 to 124 KiB in all when measured: allocator noise).
#[test]
fn pools_built_and_dropped_leave_no_memory() {
    let _serial = serial();
    // In a process of its own: no other test's thread or memory in it.
    if !alone("pools_built_and_dropped_leave_no_memory") {
        return;
    }
    for round in 0..200 {
        one_pool_cycle(round);
    }
    let before = rss_kib();
    for round in 0..500 {
        one_pool_cycle(round);
    }
    let middle = rss_kib();
    for round in 500..1000 {
        one_pool_cycle(round);
    }
    let after = rss_kib();
    // A leak per pool grows both halves alike (one of 1 KiB a pool, by
    // 500 KiB each); the allocator's steps (a new malloc arena, its cache
    // of thread stacks filling as more threads happened to live at once
    // on a loaded machine) grow one of them, once.
    let halves = [middle.saturating_sub(before), after.saturating_sub(middle)];
    assert!(
        halves[0].min(halves[1]) < 512 && after < before + 4096,
        "resident memory grew from {before} KiB to {middle} KiB, then {after} KiB"
    );
}

/// A program that replaces itself by another (`exec`) with its pool still
/// up leaves no process behind either, its workers forked by a fork server
/// or spawned: nothing of procpool runs in the new program, which keeps
/// the process (so the kernel's parent-death signal never fires).
#[test]
fn a_program_that_execs_another_leaves_no_process_either_way() {
    let _serial = serial();
    for fork_server in ["1", "0"] {
        let (mut parent, pids) = orphan_job("exec", fork_server);
        assert_eq!(
            pids.len(),
            if fork_server == "1" { 3 } else { 2 },
            "PROCPOOL_FORK_SERVER={fork_server}: {pids:?}"
        );
        support::wait_for(Duration::from_secs(30), "the exec", || {
            std::fs::read(format!("/proc/{}/cmdline", parent.id()))
                .is_ok_and(|c| c.starts_with(b"sleep"))
        });
        let gone = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| alive(p)) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        parent.kill();
        assert!(
            left.is_empty(),
            "PROCPOOL_FORK_SERVER={fork_server}: {left:?} of {pids:?} outlived the exec by 30 s"
        );
    }
    assert_no_children();
}
