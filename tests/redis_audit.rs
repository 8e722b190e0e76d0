//! Boundaries of the distributed mode the other `redis_*` tests leave out:
//! what a node's SIGKILL leaves behind (processes, keys), a dead caller's
//! running call, a Redis that refuses a password or a payload, several
//! pools in one process, results nobody waits for.
#![cfg(feature = "redis")]

mod redis_support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use procpool::{BrokerReason, Error, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn pool(server: &RedisServer) -> Pool {
    Pool::builder().redis(&server.url()).build().unwrap()
}

/// Whether a process runs (exists and is not a zombie).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// The keys of the server, and the fields of its members hash.
fn layout(server: &RedisServer) -> (BTreeSet<String>, BTreeSet<String>) {
    let keys: BTreeSet<String> = server.keys().into_iter().collect();
    let fields = match server.key(":members") {
        Some(members) => server
            .cli(&["HKEYS", &members])
            .lines()
            .map(String::from)
            .collect(),
        None => BTreeSet::new(),
    };
    (keys, fields)
}

/// A node SIGKILLed while its worker runs a call takes the worker along:
/// nothing runs on after the caller was told `NodeLost` (with `redeliver`,
/// the call would otherwise run twice at once).
#[test]
fn a_sigkilled_nodes_worker_does_not_outlive_it() {
    let server = RedisServer::start();
    let mut node = NodeProc::env(&server, 1);
    let pool = pool(&server);
    let (held, result) = Held::start(&pool);
    let worker = held.worker() as i32;
    assert!(running(worker));
    let family = descendants(node.pid());
    assert!(family.contains(&worker), "{family:?}");
    node.kill9();
    wait_for(
        Duration::from_secs(5),
        "the node's processes to die",
        || family.iter().all(|p| !running(*p)),
    );
    match result.get() {
        Err(Error::NodeLost { task, .. }) => assert_eq!(task, "t/hold"),
        other => panic!("{other:?}"),
    }
    assert!(marks(&held.file, "end").is_empty(), "the call ran on");
}

/// A node SIGKILLed and declared lost leaves nothing of itself in Redis:
/// the keys and the members hash are as before it started.
#[test]
fn a_lost_nodes_keys_are_removed() {
    let server = RedisServer::start();
    let _stays = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = pool(&server);
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let before = layout(&server);
    let mut doomed = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let name = doomed.name.clone();
    wait_for(Duration::from_secs(10), "the node to register", || {
        layout(&server).1.contains(&name)
    });
    doomed.kill9();
    wait_for(
        Duration::from_secs(15),
        "the node to be declared lost",
        || !layout(&server).1.contains(&name),
    );
    // Let the reaper finish its round.
    std::thread::sleep(Duration::from_millis(500));
    let after = layout(&server);
    let reaper = |keys: &BTreeSet<String>| {
        keys.iter()
            .filter(|k| !k.ends_with(":reaper"))
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(reaper(&after.0), reaper(&before.0), "keys");
    assert_eq!(after.1, before.1, "members hash fields");
    assert_eq!(apply_square(&pool, 4).unwrap(), 16);
}

/// A caller SIGKILLed while a node runs its call: once the cluster forgets
/// the caller, the call is stopped on its node (its worker killed, the call
/// never ends) and the caller's keys are gone.
#[test]
fn a_dead_callers_running_call_is_stopped_and_its_keys_removed() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let before = layout(&server);
    let (mut child, _out) = caller_proc(&server.url(), &file, 40000);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    let worker = mark_pid(&marks(&file, "start")[0]);
    let caller = server
        .members()
        .into_iter()
        .find(|(_, kind)| kind == "caller")
        .map(|(name, _)| name)
        .expect("the caller is registered");
    let _ = child.kill();
    let _ = child.wait();
    // Forgotten at once rather than after 30 s.
    let alive = server
        .key_with(&format!("alive:{caller}"))
        .expect("the caller's heartbeat key");
    server.cli(&["DEL", &alive]);
    wait_for(
        Duration::from_secs(20),
        "the caller to be forgotten",
        || !layout(&server).1.contains(&caller),
    );
    wait_for(Duration::from_secs(15), "its running call to stop", || {
        !running(worker)
    });
    assert!(marks(&file, "end").is_empty(), "the forgotten call ran on");
    // The control stream keeps its broadcasts for 10 minutes, by design.
    let without_ctl = |(keys, fields): (BTreeSet<String>, BTreeSet<String>)| {
        let keys: BTreeSet<String> = keys.into_iter().filter(|k| !k.ends_with(":ctl")).collect();
        (keys, fields)
    };
    let before = without_ctl(before);
    let gone = wait_until(Duration::from_secs(10), || {
        without_ctl(layout(&server)) == before
    });
    let after = without_ctl(layout(&server));
    assert!(
        gone,
        "left: keys {:?}, fields {:?}",
        after.0.difference(&before.0).collect::<Vec<_>>(),
        after.1.difference(&before.1).collect::<Vec<_>>()
    );
    let pool = pool(&server);
    assert_eq!(apply_square(&pool, 5).unwrap(), 25, "the node serves on");
}

/// A wrong password is `Refused` at once (retrying cannot fix it), for a
/// caller's `build` and for a node starting, which exits with code 1 well
/// before its 15 s wait for an unreachable Redis.
#[test]
fn a_wrong_password_is_refused_at_once() {
    let server = RedisServer::start_full(
        &[("appendonly", "yes"), ("appendfsync", "always")],
        Some(":right"),
        &[],
        "127.0.0.1",
    );
    let wrong = server.url().replace(":right@", ":wrong@");
    let started = Instant::now();
    match Pool::builder().redis(&wrong).build() {
        Err(Error::Broker { reason, .. }) => assert_eq!(reason, BrokerReason::Refused),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("built with a wrong password"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (status, err) = env_node_exit(&[("PROCPOOL_NODE", &wrong)], "a wrong password");
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("cannot serve as a node"), "{err}");
    assert!(!err.contains("right") && !err.contains("wrong"), "{err}");
}

/// Starts this test binary as a node from the environment `env`, which
/// must make it exit (within 10 s, else the test fails naming `what`);
/// returns its exit status and what it wrote on stderr.
fn env_node_exit(env: &[(&str, &str)], what: &str) -> (std::process::ExitStatus, String) {
    let mut node = std::process::Command::new(HELPER)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = node.kill();
            let _ = node.wait();
            panic!("{what}: the node still runs after 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// Several pools of one process on one queue, used from threads at once:
/// every result reaches its own caller.
#[test]
fn pools_of_one_process_share_a_queue_and_keep_their_results_apart() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pools: Vec<Pool> = (0..3).map(|_| pool(&server)).collect();
    std::thread::scope(|s| {
        for (p, pool) in pools.iter().enumerate() {
            s.spawn(move || {
                let base = 1000 * p as u64;
                let calls: Vec<_> = (base..base + 200)
                    .map(|x| (x, apply_async_square(pool, x)))
                    .collect();
                for (x, c) in calls {
                    assert_eq!(c.get().unwrap(), x * x);
                }
                let mapped = map_square(pool, base..base + 300).unwrap();
                assert_eq!(
                    mapped,
                    (base..base + 300).map(|x| x * x).collect::<Vec<_>>()
                );
            });
        }
    });
    match pools[0].apply_by_name::<u64>("t/no-such-task", &(1u64,)) {
        Err(Error::UnknownTask { task, .. }) => assert_eq!(task, "t/no-such-task"),
        other => panic!("{other:?}"),
    }
}

/// Results whose `AsyncResult`s were dropped before they arrived are read
/// and dropped: Redis holds nothing for them afterwards.
#[test]
fn results_nobody_waits_for_leave_nothing_in_redis() {
    let server = RedisServer::start();
    let _node = NodeProc::env(&server, 2);
    let pool = pool(&server);
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let before = layout(&server);
    let dir = TempDir::new();
    for i in 0..20 {
        drop(apply_async_mark(
            &pool,
            dir.file("marks"),
            format!("{i}"),
            50,
        ));
    }
    wait_for(Duration::from_secs(20), "the calls to end", || {
        marks(&dir.file("marks"), "end").len() == 20
    });
    wait_for(
        Duration::from_secs(10),
        "Redis to hold nothing of them",
        || {
            let res = server
                .key_with(":res:")
                .map(|k| server.int(&["XLEN", &k]))
                .unwrap_or(0);
            server.queued() == 0 && res == 0 && layout(&server) == before
        },
    );
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
}

/// A Redis that refuses an entry for its size (`proto-max-bulk-len`,
/// here 1 MiB, under the pool's frame limit): the call fails with a typed
/// error in bounded time, alone; the calls after it run.
#[test]
fn an_argument_redis_refuses_for_its_size_fails_its_call_alone() {
    let server = RedisServer::start_with(&[
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("proto-max-bulk-len", "1mb"),
    ]);
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(3))
        .build()
        .unwrap();
    let small = apply_async_square(&pool, 6);
    let started = Instant::now();
    let got = apply_echo(&pool, vec![1; 3 << 20]);
    eprintln!("{got:?} after {:?}", started.elapsed());
    assert!(got.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(small.get().unwrap(), 36);
    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
    let got = apply_async_echo(&pool, vec![1; 3 << 20]).get();
    eprintln!("async: {got:?}");
    assert!(got.is_err());
    assert_eq!(apply_square(&pool, 8).unwrap(), 64);
}

/// The calls that shared a SUBMIT with an argument Redis refuses for its
/// size (a protocol error: Redis read none of that SUBMIT) are sent again
/// alone and run; only the oversized call fails. The batch is made sure
/// of: Redis stands still (SIGSTOP) while the writer waits on the call
/// before, and the calls behind it queue up meanwhile.
#[test]
fn the_calls_batched_with_an_oversized_argument_still_run() {
    let server = RedisServer::start_with(&[("proto-max-bulk-len", "1mb")]);
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    server.signal(libc::SIGSTOP);
    let first = apply_async_square(&pool, 3);
    std::thread::sleep(Duration::from_millis(100));
    let before: Vec<_> = (10..15).map(|x| apply_async_square(&pool, x)).collect();
    let big = apply_async_echo(&pool, vec![1; 3 << 20]);
    let after: Vec<_> = (20..25).map(|x| apply_async_square(&pool, x)).collect();
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGCONT);
    assert_eq!(first.get().unwrap(), 9);
    match big.get() {
        Err(Error::Broker {
            reason: BrokerReason::Refused,
            message,
            ..
        }) => assert!(message.contains("bulk length"), "{message}"),
        other => panic!("the oversized call: {other:?}"),
    }
    for (x, r) in (10..15).chain(20..25).zip(before.into_iter().chain(after)) {
        assert_eq!(r.get().unwrap(), x * x, "square({x}), batched with it");
    }
}

/// The same for a result: the call fails, and its node serves on (it is
/// not declared lost, and its other calls are not failed).
#[test]
fn a_result_redis_refuses_for_its_size_fails_its_call_alone() {
    let server = RedisServer::start_with(&[
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("proto-max-bulk-len", "1mb"),
    ]);
    let node = NodeProc::code(&server.url(), &[("processes", "2")], &[]);
    let pool = pool(&server);
    let dir = TempDir::new();
    let beside = apply_async_mark(&pool, dir.file("marks"), "beside".into(), 1500);
    wait_for(Duration::from_secs(10), "the call beside to start", || {
        marks(&dir.file("marks"), "start").len() == 1
    });
    let started = Instant::now();
    let got = apply_fill(&pool, 3 << 20);
    eprintln!(
        "{:?} after {:?}",
        got.as_ref().map(Vec::len),
        started.elapsed()
    );
    assert!(got.is_err());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(beside.get().is_ok(), "the call beside failed");
    assert_eq!(apply_square(&pool, 7).unwrap(), 49);
    assert!(
        server.members().iter().any(|(n, _)| *n == node.name),
        "the node was declared lost"
    );
}

/// One raw connection to `server` that sends `commands` (inline) and reads
/// one reply line for each; the connection stays open.
fn raw(server: &RedisServer) -> std::net::TcpStream {
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap()
}

fn send(stream: &mut std::net::TcpStream, command: &str) -> String {
    use std::io::{BufRead, Write};
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// Redis at its `maxclients` for a second (every connection of the pool
/// and the node dropped, and new ones refused with `ERR max number of
/// clients reached`): a passing condition, like a restart. A call running
/// meanwhile gets its value, and the pool and node carry on.
#[test]
fn a_redis_full_of_clients_for_a_second_is_ridden_out() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = pool(&server);
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let call = apply_async_mark(&pool, file.clone(), "through".into(), 300);
    wait_for(Duration::from_secs(10), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    let mut filler = raw(&server);
    assert!(send(&mut filler, "CONFIG SET maxclients 1").starts_with("+OK"));
    assert!(send(&mut filler, "CLIENT KILL TYPE normal SKIPME yes").starts_with(':'));
    std::thread::sleep(Duration::from_millis(200));
    let during = apply_async_square(&pool, 5);
    std::thread::sleep(Duration::from_millis(1300));
    let mut refused = raw(&server);
    let said = send(&mut refused, "PING");
    assert!(said.contains("max number of clients"), "{said}");
    assert!(send(&mut filler, "CONFIG SET maxclients 10000").starts_with("+OK"));
    let got = call.get();
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(during.get().unwrap(), 25);
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
}

/// `n` items for `t/mark` on `file`, tagged `i<k>`, each sleeping `ms`.
fn mark_items(file: &str, n: u64, ms: u64) -> Vec<(String, String, u64)> {
    (0..n)
        .map(|i| (file.to_string(), format!("i{i}"), ms))
        .collect()
}

/// With `redeliver`, a chunk whose node is SIGKILLed mid-way runs again on
/// another node: the map gets every value, in order.
#[test]
fn with_redeliver_a_chunk_whose_node_dies_runs_again_elsewhere() {
    let server = RedisServer::start();
    let mut victim = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let pool = Pool::builder()
        .redis(&server.url())
        .redeliver(1)
        .build()
        .unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    let r = map_async_mark_with(
        &pool,
        mark_items(&file, 6, 400),
        procpool::MapOptions::new().chunksize(3),
    );
    wait_for(Duration::from_secs(20), "a chunk to start", || {
        !marks(&file, "start").is_empty()
    });
    victim.kill9();
    let _second = NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[]);
    let got = r
        .get_timeout(Duration::from_secs(60))
        .expect("every item runs");
    assert_eq!(got.len(), 6);
    for i in 0..6 {
        assert!(
            marks(&file, "end")
                .iter()
                .any(|m| m.starts_with(&format!("end i{i} "))),
            "item {i} never ended"
        );
    }
    assert_eq!(server.queued(), 0);
}

/// `terminate` while an `imap` is being consumed: the rest of it ends at
/// once, each item `Terminated`, none left hanging.
#[test]
fn an_imap_ends_promptly_when_its_pool_is_terminated() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = pool(&server);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let mut it = imap_mark_with(
        &pool,
        mark_items(&file, 40, 300),
        procpool::MapOptions::new().chunksize(1),
    );
    assert!(it.next().unwrap().is_ok());
    let started = Instant::now();
    pool.terminate();
    let rest: Vec<_> = (&mut it).collect();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!rest.is_empty());
    for r in &rest {
        match r {
            Ok(_) | Err(Error::Terminated { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(rest.last(), Some(Err(Error::Terminated { .. }))));
    drop(it);
    drop(pool);
    wait_for(Duration::from_secs(10), "Redis to hold no call", || {
        server.queued() == 0 && server.pending() == 0
    });
}

/// Dropping a pool whose node is stopped (SIGSTOP) while it runs a call:
/// the drop waits for the call, which fails `NodeLost` once the node's
/// heartbeat expires; it does not wait for the node forever.
#[test]
fn dropping_a_pool_whose_node_is_stopped_returns() {
    let server = RedisServer::start();
    let mut node = NodeProc::env(&server, 1);
    let pool = pool(&server);
    let (_held, result) = Held::start(&pool);
    node.signal(libc::SIGSTOP);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(pool);
        tx.send(()).unwrap();
    });
    let dropped = rx.recv_timeout(Duration::from_secs(20));
    node.signal(libc::SIGCONT);
    node.kill9();
    assert!(dropped.is_ok(), "the drop still waits after 20 s");
    match result.get() {
        Err(Error::NodeLost { .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// A node from the environment with settings it cannot serve with exits
/// at once with code 1 and one line saying why.
#[test]
fn an_env_node_with_bad_settings_exits_saying_why() {
    let server = RedisServer::start();
    for (var, value, says) in [
        ("PROCPOOL_PROCESSES", "two", "PROCPOOL_PROCESSES"),
        ("PROCPOOL_PROCESSES", "0", "process"),
        ("PROCPOOL_QUEUE", "a{b}", "brace"),
        ("PROCPOOL_QUEUE", "", "empty"),
    ] {
        let url = server.url();
        let what = format!("{var}={value:?}");
        let (status, err) = env_node_exit(&[("PROCPOOL_NODE", &url), (var, value)], &what);
        assert_eq!(status.code(), Some(1), "{var}={value:?}: {err}");
        assert!(err.contains(says), "{var}={value:?}: {err}");
    }
    assert!(server.members().is_empty(), "{:?}", server.members());
}

/// A Redis without an append-only file and a pool on it (no node; it
/// waits for one for 600 s), with a snapshot taken once the pool
/// registered: a restart from it loses every call queued after.
fn snapshotted_with_a_pool() -> (RedisServer, Pool) {
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    let pool = Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(600))
        .build()
        .unwrap();
    server.cli(&["SAVE"]);
    (server, pool)
}

/// A Redis that comes back from a crash without the writes it had
/// acknowledged last (here: restarted from a snapshot taken after the pool
/// registered, before its calls were queued; what `appendfsync everysec`
/// does to the last second): the calls it lost fail with `Broker`
/// (`Lost`) soon after, as documented, instead of waiting for an outcome
/// that can never arrive (or for `node_wait`). (Redis went down during the
/// reader's first read, which came back on a second connection: that was
/// not taken for a reconnection, nothing was verified, and the call, and
/// the pool's drop, waited for ever with a node up.)
#[test]
fn calls_a_restarted_redis_lost_fail_as_lost() {
    let (mut server, pool) = snapshotted_with_a_pool();
    let queued = apply_async_square(&pool, 3);
    wait_for(Duration::from_secs(10), "the call to be queued", || {
        server.queued() == 1
    });
    server.kill9();
    server.restart();
    assert_eq!(server.queued(), 0, "the snapshot holds the call");
    let started = Instant::now();
    let got = queued.get_timeout(Duration::from_secs(10));
    if !matches!(
        got,
        Err(Error::Broker {
            reason: BrokerReason::Lost,
            ..
        })
    ) {
        // (Else its drop would wait for the call as long as `node_wait`.)
        pool.terminate();
        panic!("{got:?} after {:?}", started.elapsed());
    }
    let _node = NodeProc::env(&server, 1);
    assert_eq!(apply_square(&pool, 4).unwrap(), 16, "the pool carries on");
}

/// The same for an `apply` (its fast path reads its own outcome; the
/// reader thread had never been needed): the call Redis lost fails as
/// `Lost`, it does not wait for ever.
#[test]
fn an_apply_a_restarted_redis_lost_fails_as_lost() {
    let (mut server, pool) = snapshotted_with_a_pool();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| tx.send(apply_square(&pool, 3)).unwrap());
        wait_for(Duration::from_secs(10), "the call to be queued", || {
            server.queued() == 1
        });
        server.kill9();
        server.restart();
        let started = Instant::now();
        let got = rx.recv_timeout(Duration::from_secs(10));
        if !matches!(
            got,
            Ok(Err(Error::Broker {
                reason: BrokerReason::Lost,
                ..
            }))
        ) {
            // (Else the apply, and the pool's drop, would wait as long as
            // `node_wait`.)
            pool.terminate();
            panic!("{got:?} after {:?}", started.elapsed());
        }
    });
    let _node = NodeProc::env(&server, 1);
    assert_eq!(apply_square(&pool, 4).unwrap(), 16, "the pool carries on");
}

/// The consumers of the nodes' group on the task stream.
fn consumers(server: &RedisServer) -> BTreeSet<String> {
    let Some(tasks) = server.key(":tasks") else {
        return BTreeSet::new();
    };
    let out = server.cli(&["--raw", "XINFO", "CONSUMERS", &tasks, "nodes"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "name")
        .map(|w| w[1].to_string())
        .collect()
}

/// Nodes that leave, gracefully or killed, leave no consumer behind in
/// the group (names are never reused: each would stay for ever, and every
/// reaper round reads them all).
#[test]
fn nodes_that_leave_leave_no_consumer_behind() {
    let server = RedisServer::start();
    let _stays = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = pool(&server);
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let before = (layout(&server), consumers(&server));
    let mut killed = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let stopped = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let names = [killed.name.clone(), stopped.name.clone()];
    // Both claim (become consumers).
    let calls: Vec<_> = (0..40u64).map(|x| apply_async_square(&pool, x)).collect();
    for (x, c) in calls.into_iter().enumerate() {
        assert_eq!(c.get().unwrap(), (x * x) as u64);
    }
    stopped.stop();
    killed.kill9();
    wait_for(Duration::from_secs(20), "both to be gone", || {
        let fields = layout(&server).1;
        let group = consumers(&server);
        names
            .iter()
            .all(|n| !fields.contains(n) && !group.contains(n))
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = (layout(&server), consumers(&server));
    let drop_reaper = |keys: &BTreeSet<String>| {
        keys.iter()
            .filter(|k| !k.ends_with(":reaper"))
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(drop_reaper(&after.0 .0), drop_reaper(&before.0 .0));
    assert_eq!(after.0 .1, before.0 .1);
    assert_eq!(after.1, before.1);
}

/// A Redis that closes idle connections (`timeout 1`, as some managed
/// ones do after a while): every connection left idle for a moment is
/// found closed on its next use; nothing fails for it.
#[test]
fn a_redis_closing_idle_connections_fails_nothing() {
    let server = RedisServer::start_with(&[
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("timeout", "1"),
    ]);
    let _node = NodeProc::code(&server.url(), &[("processes", "2")], &[]);
    let pool = pool(&server);
    let dir = TempDir::new();
    for round in 0..3u64 {
        assert_eq!(apply_square(&pool, round).unwrap(), round * round);
        assert_eq!(
            apply_async_square(&pool, round + 1).get().unwrap(),
            (round + 1).pow(2)
        );
        assert_eq!(
            map_square(&pool, 0..20).unwrap(),
            (0..20u64).map(|x| x * x).collect::<Vec<_>>()
        );
        let slow = apply_async_mark(&pool, dir.file("marks"), format!("c{round}"), 60_000);
        wait_for(Duration::from_secs(20), "the slow call to start", || {
            marks(&dir.file("marks"), "start").len() == round as usize + 1
        });
        assert_eq!(slow.cancel(), procpool::CancelOutcome::Stopped);
        std::thread::sleep(Duration::from_millis(2500));
    }
    assert!(marks(&dir.file("marks"), "end").is_empty());
}

/// Cancels racing the reader's check after a Redis restart (append-only
/// file on: nothing was lost): every call cancelled is `Cancelled`, none
/// is taken for lost because its cancel removed it from Redis meanwhile.
/// (One was, in about one run of this round in three: its cancel answered
/// `Finished` and its result was `Broker` `Lost`.)
#[test]
fn cancels_racing_the_check_after_a_restart_are_cancels() {
    let mut server = RedisServer::start();
    let pool = Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(600))
        .build()
        .unwrap();
    for _round in 0..3 {
        let calls: Vec<_> = (0..3000u64).map(|x| apply_async_square(&pool, x)).collect();
        wait_for(Duration::from_secs(20), "the calls to be queued", || {
            server.queued() == 3000
        });
        server.kill9();
        let mut outcomes = std::collections::BTreeMap::new();
        std::thread::scope(|s| {
            let canceller = s.spawn(|| {
                let mut outcomes = std::collections::BTreeMap::new();
                for c in &calls {
                    *outcomes.entry(format!("{:?}", c.cancel())).or_insert(0) += 1;
                }
                outcomes
            });
            std::thread::sleep(Duration::from_millis(300));
            server.restart();
            outcomes = canceller.join().unwrap();
        });
        let mut errors = std::collections::BTreeMap::new();
        for c in calls {
            let e = match c.get() {
                Err(e) => format!("{:?}", e.kind()),
                Ok(v) => format!("ok {v}"),
            };
            *errors.entry(e).or_insert(0) += 1;
        }
        eprintln!("{outcomes:?} {errors:?}");
        assert_eq!(errors.len(), 1, "{outcomes:?} {errors:?}");
        assert_eq!(server.queued(), 0);
    }
}

/// `build()` against a Redis that stands still past the connections'
/// timeout (5 s; stopped for 6 s): the pool is built once Redis answers
/// again (or fails with a clear `Unreachable`), and then works: no late
/// reply is read as the answer to a later command.
#[test]
fn a_pool_built_while_redis_stands_still_works() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    std::thread::scope(|s| {
        server.signal(libc::SIGSTOP);
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(6));
            server.signal(libc::SIGCONT);
        });
        let started = Instant::now();
        let built = Pool::builder().redis(&server.url()).build();
        eprintln!("{:?} after {:?}", built.as_ref().err(), started.elapsed());
        match built {
            Ok(pool) => assert_eq!(apply_square(&pool, 6).unwrap(), 36),
            Err(Error::Broker { reason, .. }) => assert_eq!(reason, BrokerReason::Unreachable),
            Err(other) => panic!("{other:?}"),
        }
    });
}

/// `build()` against a Redis that accepts connections but never answers
/// (stopped with SIGSTOP) fails with `Unreachable` and says why in words:
/// it said "Resource temporarily unavailable (os error 11)".
#[test]
fn a_pool_built_against_a_stopped_redis_says_it_did_not_answer() {
    let server = RedisServer::start();
    server.signal(libc::SIGSTOP);
    let started = Instant::now();
    let built = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(1))
        .build();
    let took = started.elapsed().as_secs_f64();
    server.signal(libc::SIGCONT);
    match built {
        Err(Error::Broker {
            reason, message, ..
        }) => {
            assert_eq!(reason, BrokerReason::Unreachable, "{message}");
            // The time it says is the time it took (it said the connect
            // timeout, 2 s, after waiting 4).
            let said: f64 = message
                .split("no answer within ")
                .nth(1)
                .and_then(|rest| rest.split('s').next())
                .and_then(|secs| secs.parse().ok())
                .unwrap_or_else(|| panic!("no time in {message}"));
            assert!((said - took).abs() < 0.5, "took {took:.2} s: {message}");
            assert!(!message.contains("os error"), "{message}");
            assert!(message.contains(&server.url()), "{message}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a pool was built against a stopped Redis"),
    }
}

/// `build()` connects once, to fail at once when Redis is not there; a
/// connection closed as it opens (Redis closing clients, a reset on the
/// way) is tried once more, since Redis answered: the pool is built and
/// works. (It failed with `Broker`: 2 of 60 builds while every client
/// connection was killed every 40 ms.)
#[test]
fn a_pool_built_as_its_first_connection_is_reset_works() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let proxy = proxy::Proxy::start(format!("127.0.0.1:{}", server.port));
    proxy.drop_next(1);
    let url = format!("redis://127.0.0.1:{}/0", proxy.port);
    let pool = Pool::builder().redis(&url).build().unwrap();
    assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    // Two in a row: Redis is not answering there; `build()` says so.
    proxy.drop_next(2);
    match Pool::builder().redis(&url).build() {
        Err(Error::Broker { message, .. }) => {
            assert!(message.contains("cannot reach Redis"), "{message}")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("built through two closed connections"),
    }
}

/// A distributed pool dropped by a panic is terminated, as a local one is:
/// the panic does not wait for the call running on a node (stopped there),
/// its result fails with `Terminated`, and the caller unregisters.
#[test]
fn a_pool_dropped_by_a_panic_is_terminated_on_its_nodes() {
    let server = RedisServer::start();
    let _node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let dir = TempDir::new();
    let file = dir.file("marks");
    let gate = dir.file("gate");
    let before = layout(&server);
    let (tx, rx) = std::sync::mpsc::channel();
    let url = server.url();
    let (marks_file, gate_file) = (file.clone(), gate.clone());
    let panicked = std::thread::spawn(move || {
        let pool = Pool::builder().redis(&url).build().unwrap();
        let held = apply_async_hold(&pool, marks_file.clone(), "held".into(), gate_file);
        tx.send(held).unwrap();
        wait_for(Duration::from_secs(20), "the call to start", || {
            marks(&marks_file, "start").len() == 1
        });
        panic!("the test fails here");
    })
    .join();
    assert!(panicked.is_err());
    let held = rx.recv().unwrap();
    assert!(
        matches!(
            held.get_timeout(Duration::ZERO),
            Err(Error::Terminated { .. })
        ),
        "the held call's result"
    );
    let worker = mark_pid(&marks(&file, "start")[0]);
    wait_for(Duration::from_secs(15), "the running call to stop", || {
        !running(worker)
    });
    assert!(marks(&file, "end").is_empty(), "the call ran to its end");
    wait_for(Duration::from_secs(10), "the caller to unregister", || {
        layout(&server).1 == before.1
    });
}

/// `close_and_cancel`, `terminate` and the drop while Redis is gone: each
/// returns within a few `broker_retry`s and settles every call.
#[test]
fn taking_calls_back_while_redis_is_gone_returns_in_bounded_time() {
    let mut server = RedisServer::start();
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(2))
        .node_wait(Duration::from_secs(600))
        .build()
        .unwrap();
    let calls: Vec<_> = (0..50u64).map(|x| apply_async_square(&pool, x)).collect();
    wait_for(Duration::from_secs(10), "the calls to be queued", || {
        server.queued() == 50
    });
    server.kill9();
    let started = Instant::now();
    pool.close_and_cancel();
    let cancelled = started.elapsed();
    for c in calls {
        assert!(c.get_timeout(Duration::from_secs(10)).is_err());
    }
    pool.terminate();
    drop(pool);
    let all = started.elapsed();
    assert!(
        cancelled < Duration::from_secs(8),
        "close_and_cancel took {cancelled:?}"
    );
    assert!(all < Duration::from_secs(20), "all took {all:?}");
}

/// An `imap` whose queued chunks a restarted Redis lost: those items are
/// `Lost`, the imap goes on with the rest (on a node started after), and
/// ends.
#[test]
fn an_imap_whose_chunks_redis_lost_goes_on() {
    let (mut server, pool) = snapshotted_with_a_pool();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let pool = &pool;
        s.spawn(move || {
            let it = imap_square_with(pool, 0..400u64, procpool::MapOptions::new().chunksize(1));
            let mut lost = 0;
            let mut ok = 0;
            for (x, r) in it.enumerate() {
                match r {
                    Ok(v) => {
                        assert_eq!(v, (x * x) as u64);
                        ok += 1;
                    }
                    Err(Error::Broker {
                        reason: BrokerReason::Lost,
                        ..
                    }) => lost += 1,
                    Err(other) => panic!("item {x}: {other:?}"),
                }
            }
            tx.send((lost, ok)).unwrap();
        });
        wait_for(Duration::from_secs(10), "calls to be queued", || {
            server.queued() > 0
        });
        server.kill9();
        server.restart();
        let _node = NodeProc::env(&server, 2);
        let got = rx.recv_timeout(Duration::from_secs(30));
        if got.is_err() {
            pool.terminate();
        }
        let (lost, ok) = got.expect("the imap ends");
        eprintln!("{lost} lost, {ok} ok");
        assert_eq!(lost + ok, 400);
        assert!(lost > 0);
    });
}

/// A cancel the parent had under way at a fork (Redis stands still, so it
/// waits for Redis's answer): cancelling that result in the copy answers
/// `Finished` at once, as for every result of the parent's pool there; it
/// does not wait for the parent's cancel, which never ends in the copy.
#[test]
fn a_cancel_under_way_at_a_fork_leaves_the_copys_cancel_alone() {
    let server = RedisServer::start();
    let pool = Pool::builder()
        .redis(&server.url())
        .node_wait(Duration::from_secs(600))
        .build()
        .unwrap();
    let call = apply_async_square(&pool, 3);
    wait_for(Duration::from_secs(10), "the call to be queued", || {
        server.queued() == 1
    });
    server.signal(libc::SIGSTOP);
    let status = std::thread::scope(|s| {
        let canceller = s.spawn(|| call.cancel());
        // The cancel waits for Redis meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: fork in a test binary; the copy runs only the cancel
        // below and leaves with `_exit`, never returning into the harness.
        let copy = unsafe { libc::fork() };
        assert!(copy >= 0, "fork failed");
        if copy == 0 {
            // SAFETY: a hang here ends by SIGALRM, never outliving the test.
            unsafe { libc::alarm(5) };
            let code = match call.cancel() {
                procpool::CancelOutcome::Finished => 0,
                _ => 2,
            };
            // SAFETY: ends the copy at once, running nothing of the harness.
            unsafe { libc::_exit(code) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        let status = loop {
            // SAFETY: waits (without blocking) for our own child.
            let got = unsafe { libc::waitpid(copy, &mut status, libc::WNOHANG) };
            if got == copy {
                break libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            }
            if Instant::now() >= deadline {
                // SAFETY: kills and reaps our own child.
                unsafe {
                    libc::kill(copy, libc::SIGKILL);
                    libc::waitpid(copy, &mut status, 0);
                }
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        server.signal(libc::SIGCONT);
        let _ = canceller.join();
        status
    });
    assert_eq!(status, Some(0), "the copy's cancel (None: it hung)");
}

/// A week, in ms: how long a queue's lasting keys outlive their last use.
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

/// Every key in Redis with its time to live (ms, `PTTL`: -1 for none),
/// named by its kind (`tasks`, `res:<caller>`, ...).
fn times_to_live(server: &RedisServer) -> Vec<(String, i64)> {
    server
        .keys()
        .into_iter()
        .map(|k| {
            let ttl = server.int(&["PTTL", &k]);
            let kind = k.rsplit_once("}:").map_or(k.as_str(), |(_, kind)| kind);
            (kind.to_string(), ttl)
        })
        .collect()
}

/// The one caller's result stream, which `made_by` made: asserts that it
/// has a time to live of at most a week.
fn expiring_result_stream(server: &RedisServer, made_by: &str) -> String {
    let res = server
        .key_with(":res:")
        .unwrap_or_else(|| panic!("no result stream: {made_by} makes it"));
    let ttl = server.int(&["PTTL", &res]);
    assert!(
        ttl > 0 && ttl <= WEEK_MS,
        "the result stream {made_by} made: time to live {ttl} ms"
    );
    res
}

/// Once a queue's last caller and node are gone, every key it leaves in
/// Redis has a time to live: the stops sent to the nodes (the control
/// stream) expire ten minutes after the last one, the age past which
/// nodes no longer need them, and the task stream and id counter a week
/// after the last member's reaper round. (The control stream had no time
/// to live at first, and the task stream and id counter until stop 46: a
/// build nobody ran any more stayed in Redis for ever.)
#[test]
fn every_key_a_queue_leaves_has_a_time_to_live() {
    let server = RedisServer::start();
    let node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let pool = pool(&server);
    let (_held, result) = Held::start(&pool);
    pool.terminate();
    assert!(matches!(result.get(), Err(Error::Terminated { .. })));
    drop(pool);
    node.stop();
    assert!(server.key(":ctl").is_some(), "the stop was sent");
    let left = times_to_live(&server);
    let kinds: Vec<&str> = left.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ctl", "ids", "reaper", "tasks"],
        "the keys left: {left:?}"
    );
    for (kind, ttl) in &left {
        let most = if kind == "ids" || kind == "tasks" {
            WEEK_MS
        } else {
            600_000
        };
        assert!(
            *ttl > 0 && *ttl <= most,
            "{kind}'s time to live: {ttl} ms (at most {most}): {left:?}"
        );
    }
}

/// A caller and a node SIGKILLed with nobody else up leave their
/// registrations and the caller's result stream: nobody is left to forget
/// them. Those keys expire too, a week after their last use, and while
/// the queue was in use every reaper round renewed them.
#[test]
fn a_queue_whose_members_all_died_leaves_only_keys_that_expire() {
    use std::io::{BufRead, Write};
    let server = RedisServer::start();
    let mut node = NodeProc::code(&server.url(), &[("processes", "1")], &[]);
    let dir = TempDir::new();
    let (mut child, mut out) = caller_proc(&server.url(), &dir.file("marks"), 0);
    let mut line = String::new();
    // The result stream is there, with its time to live, from the
    // caller's registration: it cannot be left without one, whenever the
    // caller dies.
    expiring_result_stream(&server, "the caller's registration");
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ok "), "{line}");
    // Renewed while in use: set at registration, 2.5 s ago or more, and
    // by every round since (a node's and a caller's tick is at most 0.5 s).
    std::thread::sleep(Duration::from_millis(2500));
    let tasks = server.key(":tasks").expect("the task stream");
    let ttl = server.int(&["PTTL", &tasks]);
    assert!(
        ttl > WEEK_MS - 1500 && ttl <= WEEK_MS,
        "the task stream's time to live while in use: {ttl} ms"
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "7").unwrap();
    stdin.flush().unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "square 49");
    let _ = child.kill();
    let _ = child.wait();
    node.kill9();
    let left = times_to_live(&server);
    for kind in ["tasks", "members", "ids"] {
        assert!(
            left.iter().any(|(k, _)| k == kind),
            "no {kind} key: {left:?}"
        );
    }
    assert!(
        left.iter().any(|(k, _)| k.starts_with("res:")),
        "the dead caller's result stream is left: {left:?}"
    );
    let forever: Vec<&(String, i64)> = left.iter().filter(|(_, ttl)| *ttl <= 0).collect();
    assert!(forever.is_empty(), "keys that never expire: {forever:?}");
    assert!(
        left.iter().all(|(_, ttl)| *ttl <= WEEK_MS),
        "a time to live over a week: {left:?}"
    );
}

/// A dropped pool wakes its reader with an entry in its result stream,
/// then unregisters (which deletes that stream). A caller whose result
/// stream is gone (a `terminate` deleted it, or it expired; here, deleted
/// by hand) gets it again from that wake-up: it must get its time to live
/// at once, or a pool whose unregister does not happen (its process killed
/// between the two, Redis out of reach for the second) leaves a stream
/// nobody deletes and nothing expires, even once the build's other keys
/// have expired. The unregister is made to fail here by taking DEL from
/// the pool's ACL user after `build()`: its HDEL still removes the
/// registration, so no reaper would ever forget it.
#[test]
fn a_result_stream_made_by_a_dropped_pools_wake_up_expires() {
    let server = RedisServer::start_full(
        &[
            ("appendonly", "no"),
            ("user", "alice on >s3cret ~pp:* +@all"),
        ],
        None,
        &[],
        "127.0.0.1",
    );
    let url = format!("redis://alice:s3cret@127.0.0.1:{}/0", server.port);
    let pool = Pool::builder().redis(&url).build().unwrap();
    let made = expiring_result_stream(&server, "registration");
    server.cli(&["DEL", &made]);
    server.cli(&["ACL", "SETUSER", "alice", "-del"]);
    drop(pool);
    let res = server
        .key_with(":res:")
        .expect("the wake-up's result stream, which the failed unregister left");
    let ttl = server.int(&["PTTL", &res]);
    assert!(
        ttl > 0 && ttl <= WEEK_MS,
        "the result stream the wake-up made: time to live {ttl} ms (-1: never expires)"
    );
}
