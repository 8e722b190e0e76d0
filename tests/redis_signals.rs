//! A node from the environment (`PROCPOOL_NODE`) and its stop signals,
//! against a real redis-server and real node processes: the first SIGTERM
//! or SIGINT stops it gracefully (the call it runs finishes and its result
//! arrives, the call queued behind it is left to another node, the node
//! leaves and exits 0, saying why in its log, its workers gone); a second
//! one during that stops it at once (it ends by that signal, its workers
//! with it, and its running call is `NodeLost`, or runs again elsewhere
//! with `redeliver`).
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use procpool::{Error, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// The process group of `pid`.
fn pgrp(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The node's exit status, if it exits within `limit`.
fn exit_within(node: &mut NodeProc, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every process of `pids` is gone within `limit`.
fn all_gone(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if pids.iter().all(|&p| !support::alive(p as u32)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that the node's processes `family` are gone within 5 s.
fn assert_workers_gone(family: &[i32]) {
    assert!(
        all_gone(family, Duration::from_secs(5)),
        "the node's workers outlived it: {:?}",
        family
            .iter()
            .filter(|&&p| support::alive(p as u32))
            .collect::<Vec<_>>()
    );
}

fn logged(path: &str, text: &str) -> bool {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(text))
}

/// A node from the environment with one worker, logging to `log`.
fn env_node(server: &RedisServer, log: &str) -> NodeProc {
    NodeProc::env_with(
        server,
        &[("PROCPOOL_PROCESSES", "1"), ("PROCPOOL_HELPER_LOG", log)],
    )
}

/// The warm stop on `sig`: the running call's result arrives, the call
/// queued behind it runs on another node while this one drains, the node
/// leaves the cluster and exits 0 with an `info` record saying why, and
/// its workers (and fork server) are gone.
fn a_signal_stops_an_env_node_gracefully(sig: i32, name: &str) {
    let server = RedisServer::start();
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let mut node = env_node(&server, &log);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, running) = Held::start(&pool);
    let worker = held.worker();
    let family = descendants(node.pid());
    assert!(family.contains(&(worker as i32)), "{family:?} {worker}");
    // Its fork server and workers each lead a process group of their own:
    // a terminal's Ctrl-C (SIGINT to the node's foreground group) reaches
    // the node alone, and the node stops them itself.
    for &p in &family {
        assert_eq!(
            pgrp(p),
            p,
            "process {p} of the node is in group {}",
            pgrp(p)
        );
    }
    // Queued behind the running call: the node, busy, has not claimed it.
    let file = dir.file("marks");
    let queued = apply_async_mark(&pool, file.clone(), "queued".into(), 50);
    node.signal(sig);
    wait_for(Duration::from_secs(10), "the node to say it stops", || {
        logged(&log, &format!("INFO node {} got {name}: ", node.name))
    });
    // The call queued behind is the cluster's: a node started now runs it
    // while the stopping node still runs its call.
    let other = NodeProc::env(&server, 1);
    let ran_on = queued.get().expect("the queued call");
    let other_family = descendants(other.pid());
    assert!(
        other_family.contains(&(ran_on as i32)),
        "the queued call ran on {ran_on}, not on the new node's workers {other_family:?}"
    );
    assert!(
        node.child.try_wait().unwrap().is_none(),
        "the node exited before its running call ended"
    );
    // Its running call takes a second more, and its result arrives.
    std::thread::sleep(Duration::from_secs(1));
    held.release();
    assert_eq!(running.get().expect("the running call"), worker);
    let status = exit_within(&mut node, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the node still runs 10 s after its last call ended"));
    assert!(status.success(), "the node exited {status}");
    assert!(
        logged(
            &log,
            &format!("INFO node {} stopped on {name}: ", node.name)
        ),
        "no record of the stop in {:?}",
        std::fs::read_to_string(&log)
    );
    assert_workers_gone(&family);
    assert!(
        !server.all_members().iter().any(|(k, _)| *k == node.name),
        "the node did not leave the cluster"
    );
    assert_eq!(marks(&file, "start").len(), 1, "the queued call ran twice");
    // The pool carries on with the new node.
    assert_eq!(apply_square(&pool, 9).unwrap(), 81);
}

#[test]
fn sigterm_stops_an_env_node_gracefully() {
    a_signal_stops_an_env_node_gracefully(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_an_env_node_gracefully() {
    a_signal_stops_an_env_node_gracefully(libc::SIGINT, "SIGINT");
}

/// A node from the environment stopping on a first signal that gets a
/// second (`first`, then `second`): it ends at once, by that signal, its
/// workers with it; its running call is then settled as a killed node's:
/// `NodeLost`, or, with `redeliver`, run again on another node.
fn a_second_signal_stops_a_stopping_node_at_once(first: i32, second: i32, redeliver: bool) {
    let server = RedisServer::start();
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let mut node = env_node(&server, &log);
    let mut builder = Pool::builder().redis(&server.url());
    if redeliver {
        builder = builder.redeliver(1);
    }
    let pool = builder.build().unwrap();
    let (held, running) = Held::start(&pool);
    let worker = held.worker();
    let family = descendants(node.pid());
    node.signal(first);
    wait_for(Duration::from_secs(10), "the node to say it stops", || {
        logged(&log, &format!("INFO node {} got ", node.name))
    });
    let sent = Instant::now();
    node.signal(second);
    let status = exit_within(&mut node, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("the node still runs 3 s after a second signal"));
    assert_eq!(status.signal(), Some(second), "the node exited {status}");
    assert_workers_gone(&family);
    assert!(!support::alive(worker));
    assert!(
        logged(&log, "again while the node was stopping"),
        "no record of the cold stop in {:?}",
        std::fs::read_to_string(&log)
    );
    if redeliver {
        // A node started now runs it again (to its end: its gate is open).
        held.release();
        let other = NodeProc::env(&server, 1);
        let ran_on = running.get().expect("the call run again");
        assert!(descendants(other.pid()).contains(&(ran_on as i32)));
    } else {
        let got = running.get();
        held.release();
        assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "NodeLost took {:?}",
            sent.elapsed()
        );
    }
    assert_eq!(
        marks(&held.file, "end").len(),
        usize::from(redeliver),
        "the call ran to its end on the stopped node"
    );
}

#[test]
fn a_second_sigterm_stops_a_stopping_env_node_at_once() {
    a_second_signal_stops_a_stopping_node_at_once(libc::SIGTERM, libc::SIGTERM, false);
}

#[test]
fn a_sigint_after_a_sigterm_stops_the_node_at_once_and_redeliver_runs_its_call_again() {
    a_second_signal_stops_a_stopping_node_at_once(libc::SIGTERM, libc::SIGINT, true);
}

/// A node made in code leaves SIGTERM to its program: here (the helper's
/// `node` mode installs no handler) it ends at once, as any program does
/// by default, and its running call is `NodeLost`.
#[test]
fn a_node_made_in_code_leaves_sigterm_to_its_program() {
    let server = RedisServer::start();
    let node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, running) = Held::start(&pool);
    let mut node = node;
    node.signal(libc::SIGTERM);
    let status = exit_within(&mut node, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("the node still runs 3 s after SIGTERM"));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    let got = running.get();
    held.release();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
}

/// SIGTERM to every process of the node at once (systemd's default
/// `KillMode=control-group`): its workers die of it mid-task, and their
/// calls fail with `WorkerDied`, as the README says (hence `KillMode=mixed`).
#[test]
fn sigterm_to_every_process_of_a_node_kills_its_running_calls() {
    let server = RedisServer::start();
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let mut node = env_node(&server, &log);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, running) = Held::start(&pool);
    let family = descendants(node.pid());
    node.signal(libc::SIGTERM);
    for &p in &family {
        // SAFETY: kill() with a pid of the node's and a valid signal.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let got = running.get();
    held.release();
    assert!(matches!(got, Err(Error::WorkerDied { .. })), "{got:?}");
    let status = exit_within(&mut node, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the node still runs 10 s after SIGTERM"));
    assert!(status.success(), "the node exited {status}");
    assert!(all_gone(&family, Duration::from_secs(5)));
}
