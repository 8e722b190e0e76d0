//! A node cut off by a real network partition, in network namespaces made
//! by the test (traffic only inside them; needs root): its caller gets
//! `NodeLost` within seconds; when the node comes back, its late result and
//! acknowledgement are ignored (fencing), and it serves on under a new name.
#![cfg(feature = "redis")]

mod redis_support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redis_support::netns::Partition;
use redis_support::*;

procpool::enable_test_support!();

/// A caller process (the helper's `caller` mode) in namespace `ns`.
struct Caller {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdin: std::process::ChildStdin,
}

impl Caller {
    fn start(ns: &str, url: &str, file: &str, ms: u64) -> Caller {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                HELPER,
                "caller",
                url,
                file,
                &ms.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the caller");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdin = child.stdin.take().unwrap();
        Caller {
            child,
            lines,
            stdin,
        }
    }

    fn line(&self, limit: Duration) -> String {
        self.lines
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the caller said nothing for {limit:?}"))
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The outcomes ever added to a caller's result stream, trimmed or not:
/// its `entries-added`, less the entry registration made it with
/// (trimmed at once).
fn outcomes_added(server: &RedisServer, key: &str) -> i64 {
    let info = server.cli(&["--raw", "XINFO", "STREAM", key]);
    let lines: Vec<&str> = info.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "entries-added")
        .expect("entries-added (Redis 7)");
    lines[at + 1].parse::<i64>().unwrap() - 1
}

#[test]
fn a_partitioned_node_is_lost_and_its_late_result_is_ignored() {
    let net = Partition::new();
    let in_a = Partition::exec(&net.a);
    let in_a: Vec<&str> = in_a.iter().map(String::as_str).collect();
    let in_b = Partition::exec(&net.b);
    let in_b: Vec<&str> = in_b.iter().map(String::as_str).collect();
    // Redis in namespace a, the node in b, the caller in a. (A password:
    // protected mode refuses clients beyond the loopback without one.)
    let server = RedisServer::start_full(
        &[
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("requirepass", "s3cret"),
        ],
        Some(":s3cret"),
        &in_a,
        &format!("127.0.0.1 {}", net.addr_a),
    );
    let node = NodeProc::code(
        &server.url(),
        &[("processes", "1"), ("prefetch", "0")],
        &in_b,
    );
    let dir = TempDir::new();
    let file = dir.file("marks");
    let mut caller = Caller::start(&net.a, &server.url(), &file, 6000);
    assert_eq!(caller.line(Duration::from_secs(20)), "submitted");
    wait_for(
        Duration::from_secs(20),
        "the call to start on the node",
        || marks(&file, "start").len() == 1,
    );

    net.cut();
    let cut = Instant::now();
    let outcome = caller.line(Duration::from_secs(20));
    let took = cut.elapsed();
    eprintln!("partition: {outcome} after {took:?}");
    assert!(outcome.starts_with("err NodeLost"), "{outcome}");
    assert!(
        outcome.contains(&node.name),
        "{outcome} names {}",
        node.name
    );
    // (About 3.5 s on a quiet machine; the bound leaves room for a loaded one.)
    assert!(took < Duration::from_secs(15), "NodeLost after {took:?}");
    let res = server
        .key_with(":res:")
        .expect("the caller's result stream");
    assert_eq!(outcomes_added(&server, &res), 1, "one outcome: NodeLost");
    assert_eq!(server.queued(), 0, "the reaper settled the entry");

    // The node, cut off, finishes the call; then the link comes back.
    wait_for(
        Duration::from_secs(20),
        "the call to end on the node",
        || marks(&file, "end").len() == 1,
    );
    net.heal();
    wait_for(
        Duration::from_secs(30),
        "the node to serve on under a new name",
        || {
            server.members().iter().any(|(k, v)| {
                v == "node" && k.ends_with(&format!(":{}", node.pid())) && *k != node.name
            })
        },
    );
    // The node delivers in order: its late outcome's DELIVER (retried
    // alone while the link was down) is answered before the outcome of
    // this call, which only it can give, is even queued.
    writeln!(caller.stdin, "7").unwrap();
    assert_eq!(caller.line(Duration::from_secs(30)), "square 49");
    assert_eq!(
        outcomes_added(&server, &res),
        2,
        "the late outcome reached the caller's result stream"
    );
    assert!(
        !server.members().iter().any(|(k, _)| *k == node.name),
        "old name still registered"
    );
    assert_eq!(marks(&file, "start").len(), 1, "the call ran once");
    assert_eq!(server.queued(), 0);
}
