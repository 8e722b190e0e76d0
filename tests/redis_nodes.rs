//! Nodes at their edges, against a real redis-server and real node
//! processes: a node asked to stop still obeys a cancel of what it holds
//! and still reports what it ran across a Redis restart; its watcher backs
//! off when Redis refuses its reads; a lost reply to its very first claim
//! loses nothing; malformed task entries fail alone; a killed node
//! leaves no worker behind; a dropped node serves on; a node serving many
//! large results keeps its memory bounded; a DELIVER whose reply was lost
//! is not reported as fenced; a stopping node that gave up on Redis leaves
//! promptly and loses nothing; a new call under an entry id the node
//! settled a moment ago runs, and is not settled with the old call's
//! outcome by a DELIVER sent again, nor by one composed after the node
//! claimed it under the id of a call it was running, nor after it found it
//! there on re-reading its pending list (the claim's reply lost), while the
//! running call found there again is delivered unchecked.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::time::{Duration, Instant};

use procpool::{CancelOutcome, Error, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// A node asked to stop finishes what it holds; a call it holds that its
/// caller cancels meanwhile must be stopped on it (README: "a running one
/// is stopped on its node"), not run to its end.
#[test]
fn a_cancel_reaches_a_node_that_is_stopping() {
    let server = RedisServer::start();
    let mut node = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, result) = Held::start(&pool);
    let worker = held.worker();
    node.ask_to_stop();
    // Its threads see the stop (the watcher's read blocks 1 s at most).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(result.cancel(), CancelOutcome::Stopped);
    let got = result.get();
    assert!(matches!(got, Err(Error::Cancelled { .. })), "{got:?}");
    let killed = wait_until(Duration::from_secs(10), || !support::alive(worker));
    let exited = node.exits_within(Duration::from_secs(5));
    held.release();
    assert!(
        killed && exited,
        "10 s after the cancel, the cancelled call's worker is still alive ({killed}: killed) \
         and the stopping node has not exited ({exited}); marks {:?}",
        std::fs::read_to_string(&held.file).unwrap_or_default()
    );
    assert!(
        marks(&held.file, "end").is_empty(),
        "the cancelled call ran to its end"
    );
}

/// The calls of `cmdstat_<cmd>` since the last `CONFIG RESETSTAT`,
/// counting failed and rejected ones.
fn command_calls(server: &RedisServer, cmd: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    let Some(line) = info
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
    else {
        return 0;
    };
    line.split([':', ','])
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(*k, "calls" | "failed_calls" | "rejected_calls"))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// A node's watcher must not spin when Redis refuses its reads of the
/// control stream (here: a key of another type, which anyone with access
/// can write; `clock.lua` replaces such a key for the same reason): it
/// must back off, as the feeder does (`a_node_does_not_spin_while_redis_refuses_its_claims`).
#[test]
fn a_node_does_not_spin_when_redis_refuses_its_control_stream_reads() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let members = server.key(":members").expect("the members hash");
    let ctl = format!("{}ctl", members.strip_suffix("members").unwrap());
    server.cli(&["DEL", &ctl]);
    server.cli(&["SET", &ctl, "not a stream"]);
    std::thread::sleep(Duration::from_millis(1500));
    server.cli(&["CONFIG", "RESETSTAT"]);
    std::thread::sleep(Duration::from_secs(2));
    let reads = command_calls(&server, "xread") + command_calls(&server, "xrevrange");
    assert!(
        reads < 100,
        "the node read the control stream {reads} times in 2 s"
    );
}

/// A node asked to stop finishes what it holds and reports it. A Redis
/// restart (AOF, `appendfsync always`) meanwhile must not lose the outcome
/// of a call that ran: "Redis restarts: callers and nodes reconnect by
/// themselves; nothing queued is lost".
#[test]
fn a_stopping_node_reports_its_last_call_across_a_redis_restart() {
    let mut server = RedisServer::start();
    let mut node = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    // Every connection of the node made once.
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let (held, result) = Held::start(&pool);
    node.ask_to_stop(); // it finishes what it holds
    std::thread::sleep(Duration::from_millis(500));
    server.kill9();
    server.restart();
    std::thread::sleep(Duration::from_millis(500));
    held.release();
    let got = result.get();
    assert!(
        node.exits_within(Duration::from_secs(20)),
        "the node never left"
    );
    assert!(
        matches!(got, Ok(pid) if pid == held.worker()),
        "the call ran ({:?}) but its caller got {got:?}",
        marks(&held.file, "end")
    );
}

/// Copies the first entry of the task stream with some fields replaced
/// (`field=value`, an empty value left out entirely with `-field`).
fn forge(server: &RedisServer, changes: &[&str]) {
    let tasks = server.key(":tasks").expect("the task stream");
    let script = r#"
local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][2]
local h, order = {}, {}
for k = 1, #e, 2 do h[e[k]] = e[k + 1]; order[#order + 1] = e[k] end
for j = 1, #ARGV do
  local a = ARGV[j]
  if string.sub(a, 1, 1) == '-' then h[string.sub(a, 2)] = nil
  else
    local k, v = string.match(a, '^([^=]+)=(.*)$')
    if h[k] == nil then order[#order + 1] = k end
    h[k] = v
  end
end
local flat = {}
for _, k in ipairs(order) do if h[k] ~= nil then flat[#flat + 1] = k; flat[#flat + 1] = h[k] end end
return redis.call('XADD', KEYS[1], '*', unpack(flat))
"#;
    let mut args = vec!["EVAL", script, "1", &tasks];
    args.extend_from_slice(changes);
    server.cli(&args);
}

/// A pool whose calls wait for a node (none is up yet) for two minutes.
fn waiting_pool(server: &RedisServer) -> Pool {
    Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Waits until the one call submitted is in Redis.
fn in_redis(server: &RedisServer) {
    wait_for(Duration::from_secs(10), "the call in Redis", || {
        server.queued() == 1
    });
}

/// Malformed or hostile task entries (anyone with access can write them)
/// fail alone: the node serves on, and nothing stays in Redis.
#[test]
fn malformed_task_entries_never_stop_a_node() {
    let server = RedisServer::start();
    let pool = waiting_pool(&server);
    let first = apply_async_square(&pool, 7);
    in_redis(&server);
    for changes in [
        &["i=1001", "o=18446744073709551615"][..],
        &["i=1002", "o=0"],
        &["i=1003", "t=no/such"],
        &["i=1004", "f=12345"],
        &["i=1005", "k=c"],
        &["i=1006", "a="],
        &["-i"],
        &["i=1008", "k=x"],
        &["i=1009", "o=-5"],
        &["i=18446744073709551616"],
    ] {
        forge(&server, changes);
    }
    let node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    assert_eq!(first.get().unwrap(), 49);
    assert_eq!(apply_square(&pool, 5).unwrap(), 25, "the node serves on");
    wait_for(Duration::from_secs(10), "the entries settled", || {
        server.queued() == 0
    });
    assert!(support::alive(node.pid() as u32));
}

/// A claim whose reply is lost (the connection dropped after Redis made
/// it) is recovered from the node's own pending list, as `claim.rs` says:
/// also when it was the node's very first claim. Redis drops the reply
/// here by its output buffer limit, after claiming the entry.
#[test]
fn a_lost_reply_to_a_nodes_first_claim_does_not_lose_the_call() {
    let server = RedisServer::start();
    let pool = waiting_pool(&server);
    let big = vec![5u8; 1024 * 1024];
    let r = apply_async_echo(&pool, big.clone());
    in_redis(&server);
    let tasks = server.key(":tasks").unwrap();
    // Any reply over 256 KiB closes its connection, once the command ran.
    server.cli(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "normal 262144 262144 0",
    ]);
    let node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let claimed = wait_until(Duration::from_secs(10), || {
        server.cli(&["XPENDING", &tasks, "nodes"]).starts_with('1')
    });
    std::thread::sleep(Duration::from_millis(200));
    server.cli(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "normal 0 0 0",
    ]);
    assert!(claimed, "the node did not claim the call");
    let got = r.get_timeout(Duration::from_secs(15));
    assert!(
        matches!(&got, Ok(v) if *v == big),
        "{:?}; pending: {}",
        got.map(|v| v.len()),
        server.cli(&["XPENDING", &tasks, "nodes"])
    );
    drop(node);
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A node from the environment that is killed (SIGKILL) leaves no process
/// behind: its worker running a call dies with it, and the call is
/// `NodeLost` (it ran at most once). (SIGTERM stops it gracefully:
/// tests/redis_signals.rs.)
#[test]
fn a_killed_env_node_leaves_no_worker_behind() {
    let server = RedisServer::start();
    let node = NodeProc::env(&server, 2);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, result) = Held::start(&pool);
    let worker = held.worker();
    node.signal(libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(5), || !support::alive(worker));
    held.release();
    assert!(gone, "the worker outlived its node by 5 s");
    let got = result.get();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
}

/// A `Node` dropped without `stop()` serves on in the background (as a
/// detached thread does) until the process ends: what its documentation
/// says.
#[test]
fn a_dropped_node_serves_on() {
    let server = RedisServer::start();
    let node = procpool::Node::builder()
        .redis(&server.url())
        .processes(1)
        .start()
        .unwrap();
    let name = node.name();
    drop(node);
    std::thread::sleep(Duration::from_secs(1));
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
    assert!(server.members().iter().any(|(k, _)| *k == name));
}

/// A node asked to stop while Redis is gone, with calls claimed ahead and
/// held by its start gate (it cannot confirm it is still a member): it
/// leaves once it has not reached Redis for a retry budget, leaving those
/// calls pending for the reaper, rather than wait for Redis for ever.
/// (Before, the held calls were never settled and `Node::wait` waited for
/// Redis for ever.)
#[test]
fn a_node_stopping_while_redis_is_gone_leaves() {
    let server = RedisServer::start();
    // (`quick`: it claims ahead however slow the machine makes calls look.)
    let mut node = NodeProc::code(&server.url(), &[("processes", "1"), ("quick", "1")], &[]);
    // The caller waits out the outage (its budget is longer than the
    // node's), to see what the node left behind.
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut attempt = 0;
    let (held, result, quick) = loop {
        map_square(&pool, 0..2000).unwrap();
        for i in 0..20 {
            apply_square(&pool, i).unwrap();
        }
        let (held, result) = Held::start(&pool);
        let quick: Vec<_> = (0..10).map(|i| apply_async_square(&pool, i)).collect();
        if server.pending_reaches(11, Duration::from_secs(5)) {
            break (held, result, quick);
        }
        held.release();
        result.get().unwrap();
        for q in quick {
            q.get().unwrap();
        }
        attempt += 1;
        assert!(attempt < 10, "the node never claimed ahead");
    };
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(2));
    node.ask_to_stop();
    held.release();
    let exited = node.exits_within(Duration::from_secs(90));
    server.signal(libc::SIGCONT);
    assert!(exited, "the stopping node still waits for Redis");
    // The held call ran: its outcome, if its DELIVER reached the frozen
    // Redis's socket before the node left, else lost. The calls its start
    // gate held never ran: left pending for the reaper, lost, never
    // answered `Cancelled` by the node.
    let got = result.get_timeout(Duration::from_secs(60));
    assert!(
        matches!(got, Ok(_) | Err(Error::NodeLost { .. })),
        "{got:?}"
    );
    for r in quick {
        let got = r.get_timeout(Duration::from_secs(60));
        assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
    }
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A node keeps the outcomes it settled for a few seconds (so a DELIVER
/// Redis lost is answered again rather than run again), but only up to a
/// byte bound: 240 MB of results served must not all stay in its memory.
#[test]
fn a_node_serving_many_large_results_keeps_its_memory_bounded() {
    // No AOF: with `appendfsync always`, every 60 kB outcome waited for a
    // disk flush, and the disk, not the node, set the pace.
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    // The node keeps each outcome for an hour, not 10 s: only the byte
    // bound stops it from keeping every one of them, however slowly this
    // machine serves them (a loaded one served 1,700 of them in 10 s,
    // 100 MB, too few to tell a node that kept them all).
    let node = NodeProc::code(
        &server.url(),
        &[("processes", "2"), ("keep-outcomes-ms", "3600000")],
        &[],
    );
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    // Warm up: the node's threads, connections and local pool.
    assert_eq!(apply_fill(&pool, 10).unwrap(), vec![7; 10]);
    let before = rss_kib(node.pid());
    let (n, len) = (4000, 60_000);
    // One call per item: each outcome is one body of 60 kB, under the
    // size of body the node keeps. Its memory is sampled as it serves.
    let options = procpool::MapOptions::new().chunksize(1);
    let (mut count, mut most_kib) = (0, before);
    for got in imap_fill_with(&pool, std::iter::repeat_n(len, n), options) {
        assert_eq!(got.unwrap().len(), len as usize);
        count += 1;
        if count % 50 == 0 {
            most_kib = most_kib.max(rss_kib(node.pid()));
        }
    }
    assert_eq!(count, n);
    most_kib = most_kib.max(rss_kib(node.pid()));
    let grown_mib = most_kib.saturating_sub(before) / 1024;
    eprintln!("the node grew by {grown_mib} MiB");
    assert!(
        grown_mib < 96,
        "the node grew by {grown_mib} MiB ({before} KiB to {most_kib} KiB) serving {} MB of results",
        n as u64 * len / 1_000_000
    );
}

/// A DELIVER that ran but whose reply was lost is sent again: its entry is
/// no longer pending, having been settled by the first attempt. The call
/// is answered once and ran once, and the node, still a member, does not
/// take that for a fencing ("late outcomes ignored (this node had been
/// declared lost)", which it used to log).
#[test]
fn a_deliver_whose_reply_was_lost_is_not_reported_as_fenced() {
    use redis_support::proxy::Proxy;
    let server = RedisServer::start();
    // Loaded first, so the node's EVALSHA finds it: the marker of the
    // request whose reply is lost.
    let deliver = server.cli(&[
        "SCRIPT",
        "LOAD",
        include_str!("../runtime/src/redis/lua/deliver.lua"),
    ]);
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port));
    let through = format!("redis://127.0.0.1:{}/0", proxy.port);
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let node = NodeProc::code(
        &through,
        &[("processes", "1"), ("prefetch", "0"), ("log", &log)],
        &[],
    );
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let file = dir.file("marks");
    proxy.lose_reply_to(deliver.trim().as_bytes(), || {});
    let pid = apply_mark(&pool, file.clone(), "x".into(), 0).unwrap();
    // (The caller may read the outcome before the proxy has thrown the
    // reply away.)
    let fired = wait_until(Duration::from_secs(10), || {
        proxy.fired.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert!(fired, "no reply was lost");
    assert_eq!(marks(&file, "start"), vec![format!("start x {pid}")]);
    // The node serves on, under the same name.
    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
    assert!(server.members().iter().any(|(k, _)| *k == node.name));
    node.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("late outcomes ignored"), "{logged}");
    assert!(!logged.contains("declared lost"), "{logged}");
    assert!(
        logged.contains("1 outcomes were settled already"),
        "{logged}"
    );
}

/// deliver.lua acknowledges and deletes the entries it settles together,
/// at its end; a DELIVER that fails part-way (here the second outcome's
/// result key is not a stream) must still leave the first settled, as
/// when each entry was acknowledged at once: sent again, it settles that
/// one no second time (its caller would get a second outcome). An entry
/// named twice in one DELIVER is settled once.
#[test]
fn a_deliver_that_fails_part_way_keeps_what_it_settled() {
    let server = RedisServer::start();
    let script = include_str!("../runtime/src/redis/lua/deliver.lua");
    let (tasks, members, res_a, res_b) = ("t", "m", "res:a", "res:b");
    server.cli(&["XGROUP", "CREATE", tasks, "g", "$", "MKSTREAM"]);
    let add = |caller: &str, seq: &str| server.cli(&["XADD", tasks, "*", "c", caller, "i", seq]);
    let (e1, e2) = (add("a", "1"), add("b", "2"));
    // The node n1 claims what is queued.
    let claim = || server.cli(&["XREADGROUP", "GROUP", "g", "n1", "STREAMS", tasks, ">"]);
    claim();
    server.cli(&["HSET", members, "n1", "node", "a", "caller", "b", "caller"]);
    server.cli(&["XADD", res_a, "*", "w", "0"]);
    // Not a stream: the XADD of b's outcome fails.
    server.cli(&["SET", res_b, "x"]);
    let deliver = |check: &str, outs: &[(&str, &str, &str, &str)]| {
        let n = outs.len().to_string();
        let mut args = vec![
            "EVAL", script, "4", tasks, members, res_a, res_b, "g", "n1", &n, check,
        ];
        for (entry, key, caller, seq) in outs {
            args.extend([*entry, *key, *caller, *seq, "v", "body"]);
        }
        server.cli_reply(&args)
    };
    let settled = |reply: Result<String, String>| {
        let reply = reply.expect("DELIVER");
        reply.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let both = [(e1.as_str(), "3", "a", "1"), (e2.as_str(), "4", "b", "2")];
    let failed = deliver("0", &both).expect_err("the XADD to a string key");
    assert!(failed.contains("WRONGTYPE"), "{failed}");
    let pending = || server.int(&["XLEN", tasks]);
    assert_eq!(pending(), 1, "the first entry was not deleted");
    assert_eq!(
        server
            .cli(&["XPENDING", tasks, "g", "-", "+", "10"])
            .lines()
            .next(),
        Some(e2.as_str()),
        "the first entry was not acknowledged"
    );
    assert_eq!(server.int(&["XLEN", res_a]), 2);
    // Sent again (checked, as a node does): the first is settled already.
    let failed = deliver("1", &both).expect_err("the XADD to a string key");
    assert!(failed.contains("WRONGTYPE"), "{failed}");
    assert_eq!(server.int(&["XLEN", res_a]), 2, "a second outcome");
    server.cli(&["DEL", res_b]);
    assert_eq!(settled(deliver("1", &both)), ["3", "1"]);
    assert_eq!(pending(), 0);
    assert_eq!(server.int(&["XLEN", res_b]), 1);
    // An entry named twice.
    let e3 = add("a", "3");
    claim();
    let twice = [(e3.as_str(), "3", "a", "3"), (e3.as_str(), "3", "a", "3")];
    assert_eq!(settled(deliver("0", &twice)), ["1", "3"]);
    assert_eq!(server.int(&["XLEN", res_a]), 3, "settled twice");
    assert_eq!(pending(), 0);
}

/// Whether `line` shows in the log file at `path` within `limit`: when it
/// was first seen (polled every 20 ms).
fn logged_within(path: &str, line: &str, limit: Duration) -> Option<Instant> {
    let begun = Instant::now();
    while begun.elapsed() < limit {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(line)
        {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A stopping node cut off from Redis gives up after one retry budget
/// (15 s without a heartbeat). From then on it leaves promptly: outcomes
/// its deliverer and its local pool's callback thread were still trying
/// to report (calls that ended just before it gave up) are not retried
/// for another budget. Nothing is lost: the calls stay pending under its
/// name, the cluster declares it lost, and with `redeliver` they run again
/// on another node, each answered once. (Before, the node went on trying
/// to report them for a whole budget more, then tried Redis once more to
/// leave: it exited 13 s after giving up; now within 0.2 s.)
#[test]
fn a_node_that_gave_up_on_redis_stops_promptly_and_loses_nothing() {
    use redis_support::proxy::Proxy;
    let server = RedisServer::start();
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port));
    let through = format!("redis://127.0.0.1:{}/0", proxy.port);
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let mut node = NodeProc::code(
        &through,
        &[("processes", "2"), ("prefetch", "0"), ("log", &log)],
        &[],
    );
    let pool = Pool::builder()
        .redis(&server.url())
        .redeliver(1)
        .build()
        .unwrap();
    let (first, first_result) = Held::start(&pool);
    let (second, second_result) = Held::start(&pool);
    let on_a = [first.worker(), second.worker()];
    // The node is cut off from Redis (which the caller still reaches) and
    // asked to stop; it is declared lost, and its calls go to another node.
    proxy.cut();
    let cut_at = Instant::now();
    node.ask_to_stop();
    let other = NodeProc::code(&server.url(), &[("processes", "2"), ("prefetch", "0")], &[]);
    // The held calls end just before the node gives up (at 15 s): one
    // outcome is reported from the callback thread, the other by the
    // deliverer, and neither reaches Redis.
    std::thread::sleep(Duration::from_millis(13_500).saturating_sub(cut_at.elapsed()));
    first.release();
    second.release();
    let gave_up = logged_within(&log, "left to the cluster", Duration::from_secs(30))
        .expect("the node never gave up on Redis");
    let exited = node.exits_within(Duration::from_secs(40));
    let exit_after = gave_up.elapsed();
    assert!(exited, "the stopping node never exited");
    // (0.2-0.9 s on a loaded machine: the deliverer's next attempt comes
    // after a backoff of up to 0.5 s. The bound leaves room for a slower
    // machine and still tells the 13 s this took before.)
    assert!(
        exit_after < Duration::from_secs(5),
        "the node exited {exit_after:?} after giving up on Redis ({:?} after it was cut off); its log: {}",
        cut_at.elapsed(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Each call was answered once, by the other node: run there again.
    for result in [first_result, second_result] {
        let pid = result.get_timeout(Duration::from_secs(30)).unwrap();
        assert!(!on_a.contains(&pid), "an outcome of the lost node was used");
    }
    assert_eq!(server.pending(), 0);
    proxy.mend();
    drop(other);
}

/// A node remembers the outcomes it settled in the last seconds by entry
/// id, to settle one again if Redis loses the DELIVER. A Redis that lost
/// its task stream (restarted without its data, on a clock behind the old
/// one's) can give a new call an id the node settled a moment ago: that
/// call must run, not be answered with the old call's outcome (which went
/// to the old call, and left the new one unanswered for ever).
#[test]
fn a_new_call_under_an_entry_id_settled_before_runs() {
    let server = RedisServer::start();
    let pool = waiting_pool(&server);
    let first = apply_async_square(&pool, 3);
    in_redis(&server);
    let tasks = server.key(":tasks").unwrap();
    // The first call's entry id, kept aside.
    let kept = format!("{tasks}:kept");
    server.cli(&[
        "EVAL",
        "local e = redis.call('XRANGE', KEYS[1], '-', '+')[1] \
         redis.call('RPUSH', KEYS[2], e[1]) return 1",
        "2",
        &tasks,
        &kept,
    ]);
    let node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    assert_eq!(first.get().unwrap(), 9);
    // The caller's next call reaches Redis while the node is paused (its
    // entry, the one in the stream now, waits there unclaimed); then Redis
    // loses the task stream, and the call's entry comes back under the
    // first call's id. (A sleep instead of waiting for the entry let a
    // loaded machine's node answer before the caller had sent the call:
    // a reply it did not wait for, dropped.)
    node.signal(libc::SIGSTOP);
    let second = apply_async_square(&pool, 3);
    in_redis(&server);
    server.cli(&[
        "EVAL",
        "local e = redis.call('XRANGE', KEYS[1], '-', '+') \
         if #e ~= 1 then return redis.error_reply('ERR entries: ' .. #e) end \
         local id = redis.call('LINDEX', KEYS[2], 0) \
         if id == e[1][1] then return redis.error_reply('ERR the same entry') end \
         redis.call('DEL', KEYS[1], KEYS[2]) \
         redis.call('XADD', KEYS[1], id, unpack(e[1][2])) \
         redis.call('XGROUP', 'CREATE', KEYS[1], 'nodes', '0') return id",
        "2",
        &tasks,
        &kept,
    ]);
    assert_eq!(server.queued(), 1, "the entry was not moved");
    node.signal(libc::SIGCONT);
    let got = second.get_timeout(Duration::from_secs(15));
    if !matches!(got, Ok(9)) {
        // (A call never answered would hold up the pool's drop for ever.)
        pool.terminate();
        panic!("the new call got {got:?}");
    }
    assert_eq!(apply_square(&pool, 5).unwrap(), 25);
    assert_eq!(server.pending(), 0);
}

/// A DELIVER whose reply was lost is sent again (`deliver.rs`), and a
/// Redis that lost its task stream meanwhile may have given a new call the
/// id of the entry it settles, claimed by the same node: the DELIVER sent
/// again must see that the entry holds another call (`deliver.lua`'s
/// `check`, asked for on a second attempt) and leave it, not settle it
/// with the old call's outcome (the new call would never run nor be
/// answered). The proxy between the node and Redis loses the first
/// DELIVER's reply, then holds the DELIVER sent again, and the node's
/// claims, while Redis loses the stream and the new call is put under the
/// old id; the node then claims it, and only then does the DELIVER sent
/// again reach Redis.
#[test]
fn a_deliver_sent_again_leaves_a_new_call_under_its_entry_id() {
    use redis_support::proxy::Proxy;
    use std::sync::atomic::Ordering;
    let server = RedisServer::start();
    let deliver = server.cli(&[
        "SCRIPT",
        "LOAD",
        include_str!("../runtime/src/redis/lua/deliver.lua"),
    ]);
    let deliver = deliver.trim().as_bytes().to_vec();
    let claims = b"XREADGROUP".to_vec();
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port));
    let through = format!("redis://127.0.0.1:{}/0", proxy.port);
    let pool = waiting_pool(&server);
    let first = apply_async_square(&pool, 3);
    in_redis(&server);
    let tasks = server.key(":tasks").unwrap();
    let old_id = server
        .cli(&[
            "EVAL",
            "return redis.call('XRANGE', KEYS[1], '-', '+')[1][1]",
            "1",
            &tasks,
        ])
        .trim()
        .to_string();
    // Once Redis has run the first DELIVER (the first call settled), its
    // reply is lost; from then on the DELIVER sent again and the node's
    // claims wait at the proxy.
    let holds = proxy.holds.clone();
    let (d, c) = (deliver.clone(), claims.clone());
    proxy.lose_reply_to(&deliver, move || {
        holds.hold(&d);
        holds.hold(&c);
    });
    // Two processes: the node claims again while the first call's entry
    // is still being settled.
    let node = NodeProc::code(&through, &[("processes", "2"), ("prefetch", "0")], &[]);
    assert_eq!(first.get_timeout(Duration::from_secs(30)).unwrap(), 9);
    let limit = Duration::from_secs(30);
    assert!(
        proxy.holds.waits_within(&deliver, limit),
        "the DELIVER was not sent again (its reply lost: {})",
        proxy.fired.load(Ordering::SeqCst)
    );
    // A claim waits at the proxy: none of the node's is in Redis (a
    // blocked one would take the new call at once, under its own id).
    assert!(
        proxy.holds.waits_within(&claims, limit),
        "the node's next claim never came"
    );
    let second = apply_async_square(&pool, 4);
    in_redis(&server);
    // Redis loses the task stream; the new call's entry comes back under
    // the first call's id.
    let moved = server.cli(&[
        "EVAL",
        "local e = redis.call('XRANGE', KEYS[1], '-', '+') \
         if #e ~= 1 then return redis.error_reply('ERR entries: ' .. #e) end \
         if e[1][1] == ARGV[1] then return redis.error_reply('ERR the same entry') end \
         redis.call('DEL', KEYS[1]) \
         redis.call('XADD', KEYS[1], ARGV[1], unpack(e[1][2])) \
         redis.call('XGROUP', 'CREATE', KEYS[1], 'nodes', '0') return 'moved'",
        "1",
        &tasks,
        &old_id,
    ]);
    assert_eq!(moved.trim(), "moved");
    // The node claims it: pending under the node's name, under the id the
    // DELIVER sent again names.
    proxy.holds.let_through(&claims);
    wait_claimed_under(&server, &tasks, &old_id, &node.name, limit);
    proxy.holds.let_through(&deliver);
    let got = second.get_timeout(limit);
    if !matches!(got, Ok(16)) {
        // (A call never answered would hold up the pool's drop for ever.)
        pool.terminate();
        panic!("the new call, under the id of one whose DELIVER was sent again, got {got:?}");
    }
    assert_eq!(apply_square(&pool, 5).unwrap(), 25);
    assert_eq!(server.pending(), 0);
    drop(node);
}

/// A node still running a call whose entry a Redis that lost its task
/// stream gave to a new call, which the node claims meanwhile (`State::reused`):
/// the first DELIVER of the running call's outcome must see that its entry
/// holds another call (`deliver.lua`'s `check`, asked for because a new
/// claim returned the id again) and leave it, not settle the new call with
/// the old one's outcome. The new call then runs; the old one, lost with
/// the stream, is failed as lost by its caller once it reconnects (the
/// caller's verification after a reconnection).
#[test]
fn a_first_deliver_leaves_a_new_call_claimed_under_its_entry_id() {
    use redis_support::proxy::Proxy;
    let server = RedisServer::start();
    let claims = b"XREADGROUP".to_vec();
    let to_node = Proxy::start(format!("127.0.0.1:{}", server.port));
    let dir = TempDir::new();
    let log = dir.file("node.log");
    let to_old_caller = Proxy::start(format!("127.0.0.1:{}", server.port));
    // Two processes: the node claims again while the first call runs.
    let node = NodeProc::code(
        &format!("redis://127.0.0.1:{}/0", to_node.port),
        &[("processes", "2"), ("prefetch", "0"), ("log", &log)],
        &[],
    );
    let old_caller = Pool::builder()
        .redis(&format!("redis://127.0.0.1:{}/0", to_old_caller.port))
        .build()
        .unwrap();
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, first) = Held::start(&old_caller);
    let tasks = server.key(":tasks").unwrap();
    let (old_id, holding, second) = new_call_under_running_id(&server, &to_node, &claims, &pool);
    let limit = Duration::from_secs(30);
    // The node claims it, then claims again: it has seen the id come back
    // (a DELIVER composed before that goes unchecked: the window
    // `deliver.rs` leaves).
    to_node.holds.let_through(&claims);
    to_node.holds.hold(&claims);
    // (A claim held longer than the node's read timeout, 5 s, is sent again
    // on a new connection, and the call it claimed read again from the
    // pending list: not a claim that returns a held id.)
    let held_for = holding.elapsed();
    assert!(
        to_node.holds.waits_within(&claims, limit),
        "the node's next claim never came"
    );
    wait_claimed_under(&server, &tasks, &old_id, &node.name, limit);
    // The running call ends: its outcome's first DELIVER names the id.
    held.release();
    to_node.holds.let_through(&claims);
    let got = second.get_timeout(limit);
    if !matches!(got, Ok(16)) {
        // (A call never answered would hold up the pool's drop for ever.)
        pool.terminate();
        old_caller.terminate();
        eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        panic!(
            "the new call, under the id of one still running, got {got:?} \
             (the old call got {:?}; the node's claim was held {held_for:?})",
            first.get_timeout(Duration::from_secs(1)),
        );
    }
    the_old_call_is_lost_and_the_pool_serves(&server, &to_old_caller, first, &pool, limit);
    drop(node);
}

/// The end of the tests whose old call, running on the node, lost its
/// entry to a new call: the old call's caller, connected again through
/// `to_old_caller`, finds it lost (its verification after a reconnection);
/// `pool` serves on, and nothing is left pending.
fn the_old_call_is_lost_and_the_pool_serves(
    server: &RedisServer,
    to_old_caller: &redis_support::proxy::Proxy,
    first: procpool::AsyncResult<u32>,
    pool: &Pool,
    limit: Duration,
) {
    to_old_caller.cut();
    to_old_caller.mend();
    let got = first.get_timeout(limit);
    assert!(
        matches!(
            got,
            Err(Error::Broker {
                reason: procpool::BrokerReason::Lost,
                ..
            })
        ),
        "the old call got {got:?}"
    );
    assert_eq!(apply_square(pool, 5).unwrap(), 25);
    assert_eq!(server.pending(), 0);
}

/// With one call running on the node behind the proxy `to_node` (its
/// entry the only one in the task stream), Redis loses the task stream
/// while the node's next claim waits at the proxy (held by `claims`), and
/// a new call made on `pool` comes back under the running call's entry id.
/// Returns that id, when the claim was first held, and the new call.
fn new_call_under_running_id(
    server: &RedisServer,
    to_node: &redis_support::proxy::Proxy,
    claims: &[u8],
    pool: &Pool,
) -> (String, Instant, procpool::AsyncResult<u64>) {
    let tasks = server.key(":tasks").unwrap();
    let old_id = server
        .cli(&[
            "EVAL",
            "return redis.call('XRANGE', KEYS[1], '-', '+')[1][1]",
            "1",
            &tasks,
        ])
        .trim()
        .to_string();
    // A claim waits at the proxy: none of the node's is in Redis (a
    // blocked one would take the new call at once, under its own id).
    let limit = Duration::from_secs(30);
    to_node.holds.hold(claims);
    assert!(
        to_node.holds.waits_within(claims, limit),
        "the node's next claim never came"
    );
    let holding = Instant::now();
    let second = apply_async_square(pool, 4);
    wait_for(limit, "the new call in Redis", || server.queued() == 2);
    // Redis loses the task stream (the running call's entry with it); the
    // new call's entry comes back under the running call's id.
    let moved = server.cli(&[
        "EVAL",
        "local e = redis.call('XRANGE', KEYS[1], '-', '+') \
         if #e ~= 2 or e[1][1] ~= ARGV[1] then return redis.error_reply('ERR entries: ' .. #e) end \
         redis.call('DEL', KEYS[1]) \
         redis.call('XADD', KEYS[1], ARGV[1], unpack(e[2][2])) \
         redis.call('XGROUP', 'CREATE', KEYS[1], 'nodes', '0') return 'moved'",
        "1",
        &tasks,
        &old_id,
    ]);
    assert_eq!(moved.trim(), "moved");
    (old_id, holding, second)
}

/// The end of a claim of the task stream `tasks` by a node: `>`, a new
/// claim, or `0`, a re-read of its pending list from its start (RESP, as
/// the proxy sees it: a marker for its holds).
fn claim_of(tasks: &str, from: &str) -> Vec<u8> {
    format!("{tasks}\r\n$1\r\n{from}\r\n").into_bytes()
}

/// A DELIVER of one outcome by the node `name`, with deliver.lua's `check`
/// asked for (`"1"`) or not (`"0"`), as the proxy sees it.
fn deliver_of_one(name: &str, check: &str) -> Vec<u8> {
    format!(
        "$5\r\nnodes\r\n${}\r\n{name}\r\n$1\r\n1\r\n$1\r\n{check}\r\n",
        name.len()
    )
    .into_bytes()
}

/// A node of two processes (it claims again while a call runs), no
/// prefetch, connected through `to_node`, which counts its DELIVERs of one
/// outcome: the node, and those DELIVERs with deliver.lua's check asked
/// for and without.
fn node_counting_delivers(to_node: &redis_support::proxy::Proxy) -> (NodeProc, Vec<u8>, Vec<u8>) {
    let node = NodeProc::code(
        &format!("redis://127.0.0.1:{}/0", to_node.port),
        &[("processes", "2"), ("prefetch", "0")],
        &[],
    );
    let (checked, unchecked) = (
        deliver_of_one(&node.name, "1"),
        deliver_of_one(&node.name, "0"),
    );
    to_node.seen.count(&checked);
    to_node.seen.count(&unchecked);
    (node, checked, unchecked)
}

/// Waits (up to `limit`) until the first entry pending in `tasks` is
/// `id`, claimed by the node `name`; fails the test if it never is.
fn wait_claimed_under(server: &RedisServer, tasks: &str, id: &str, name: &str, limit: Duration) {
    let pending = || server.cli(&["XPENDING", tasks, "nodes", "-", "+", "10"]);
    let claimed = wait_until(limit, || pending().lines().take(2).eq([id, name]));
    assert!(
        claimed,
        "the node did not claim the new call: {}",
        pending()
    );
}

/// Loads deliver.lua into `server`, as a node would on its first DELIVER.
fn load_deliver(server: &RedisServer) {
    server.cli(&[
        "SCRIPT",
        "LOAD",
        include_str!("../runtime/src/redis/lua/deliver.lua"),
    ]);
}

/// A node still running a call whose entry a Redis that lost its task
/// stream gave to a new call, which the node claims meanwhile, but the
/// claim's reply is lost: the node sees the new call only when it re-reads
/// its pending list after connecting again, under the id it holds. That
/// re-read must tell the new call from the one it runs (by caller and seq)
/// and have the running call's first DELIVER check the entry (`State::reused`),
/// as a new claim returning the id does; else the new call is settled with
/// the old one's outcome and never answered. The proxy holds the node's
/// claims while Redis loses the stream and the new call is put under the
/// running call's id, then lets the held claim through and loses its reply;
/// it holds the re-read of the pending list, then the next claim, so that
/// the node has taken the re-read's reply before the running call ends.
#[test]
fn a_new_call_under_a_running_calls_id_whose_claim_reply_was_lost_is_left_by_its_deliver() {
    use redis_support::proxy::Proxy;
    let server = RedisServer::start();
    // Loaded first: a node's first EVALSHA of a script Redis lacks is sent
    // again (after NOSCRIPT), which would count twice.
    load_deliver(&server);
    let to_node = Proxy::start(format!("127.0.0.1:{}", server.port));
    let to_old_caller = Proxy::start(format!("127.0.0.1:{}", server.port));
    let (node, checked, unchecked) = node_counting_delivers(&to_node);
    let old_caller = Pool::builder()
        .redis(&format!("redis://127.0.0.1:{}/0", to_old_caller.port))
        .build()
        .unwrap();
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, first) = Held::start(&old_caller);
    let tasks = server.key(":tasks").unwrap();
    let (claims, reread) = (claim_of(&tasks, ">"), claim_of(&tasks, "0"));
    let (old_id, holding, second) = new_call_under_running_id(&server, &to_node, &claims, &pool);
    let limit = Duration::from_secs(30);
    // The held claim takes the new call, and its reply is lost: the node
    // connects again and re-reads its pending list, which waits at the
    // proxy (the claim sent again on the new connection goes through, and
    // finds nothing new).
    let holds = to_node.holds.clone();
    let r = reread.clone();
    to_node.lose_reply_to(&claims, move || holds.hold(&r));
    to_node.holds.let_through(&claims);
    // (A claim held longer than the node's read timeout, 5 s, is sent again
    // on a new connection.)
    let held_for = holding.elapsed();
    let pending = || server.cli(&["XPENDING", &tasks, "nodes", "-", "+", "10"]);
    assert!(
        to_node.holds.waits_within(&reread, limit),
        "the node did not re-read its pending list (a reply lost: {}; pending: {})",
        to_node.fired.load(std::sync::atomic::Ordering::SeqCst),
        pending()
    );
    assert!(
        pending()
            .lines()
            .take(2)
            .eq([old_id.as_str(), node.name.as_str()]),
        "the lost claim did not take the new call: {}",
        pending()
    );
    // The re-read goes on; the next claim waits: the node has taken the
    // re-read's reply.
    to_node.holds.hold(&claims);
    to_node.holds.let_through(&reread);
    assert!(
        to_node.holds.waits_within(&claims, limit),
        "the node's next claim never came"
    );
    // The running call ends: its outcome's first DELIVER names the id.
    held.release();
    to_node.holds.let_through(&claims);
    let got = second.get_timeout(limit);
    if !matches!(got, Ok(16)) {
        // (A call never answered would hold up the pool's drop for ever.)
        pool.terminate();
        old_caller.terminate();
        panic!(
            "the new call, under the id of one still running, got {got:?} \
             (the old call got {:?}; DELIVERs checked {}, unchecked {}; \
             the node's first claim was held {held_for:?})",
            first.get_timeout(Duration::from_secs(1)),
            to_node.seen.times(&checked),
            to_node.seen.times(&unchecked),
        );
    }
    // The old call's DELIVER checked the entry; the new call's did not
    // need to.
    assert_eq!(
        (to_node.seen.times(&checked), to_node.seen.times(&unchecked)),
        (1, 1),
        "DELIVERs (checked, unchecked)"
    );
    the_old_call_is_lost_and_the_pool_serves(&server, &to_old_caller, first, &pool, limit);
    drop(node);
}

/// The other way: a node re-reading its pending list after a claim's reply
/// was lost (a plain reconnection, Redis keeping its data) finds there the
/// call it is running, the same call: that does not make its DELIVER check
/// the entry (a read back per entry, for nothing), nor read the pending
/// list again after it.
#[test]
fn a_running_call_read_again_from_the_pending_list_is_delivered_unchecked() {
    use redis_support::proxy::Proxy;
    let server = RedisServer::start();
    load_deliver(&server);
    let to_node = Proxy::start(format!("127.0.0.1:{}", server.port));
    let (node, checked, unchecked) = node_counting_delivers(&to_node);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let (held, first) = Held::start(&pool);
    let tasks = server.key(":tasks").unwrap();
    let (claims, reread) = (claim_of(&tasks, ">"), claim_of(&tasks, "0"));
    to_node.seen.count(&reread);
    // The reply to the node's next claim is lost (it took nothing): the
    // node connects again and re-reads its pending list, which waits at
    // the proxy.
    let holds = to_node.holds.clone();
    let r = reread.clone();
    to_node.lose_reply_to(&claims, move || holds.hold(&r));
    let limit = Duration::from_secs(30);
    assert!(
        to_node.holds.waits_within(&reread, limit),
        "the node did not re-read its pending list (a reply lost: {})",
        to_node.fired.load(std::sync::atomic::Ordering::SeqCst)
    );
    // The re-read goes on (it finds the running call); the next claim
    // waits: the node has taken the re-read's reply.
    to_node.holds.hold(&claims);
    to_node.holds.let_through(&reread);
    assert!(
        to_node.holds.waits_within(&claims, limit),
        "the node's next claim never came"
    );
    held.release();
    to_node.holds.let_through(&claims);
    assert_eq!(first.get_timeout(limit).unwrap(), held.worker());
    assert_eq!(apply_square(&pool, 5).unwrap(), 25);
    assert_eq!(server.pending(), 0);
    assert_eq!(
        (
            to_node.seen.times(&checked),
            to_node.seen.times(&unchecked),
            to_node.seen.times(&reread)
        ),
        (0, 2, 1),
        "DELIVERs (checked, unchecked) and re-reads of the pending list"
    );
    drop(node);
}
