//! Access to Redis: a password or ACL user in the URL (never shown in
//! messages), and `rediss://` with a private CA (feature `redis-tls`); a
//! Redis set up to evict keys is warned of.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::time::Duration;

use procpool::{BrokerReason, Error, Node, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

#[test]
fn an_acl_user_limited_to_procpool_keys_is_enough() {
    // The default user is off; `alice` may touch only `pp:*` keys.
    let server = RedisServer::start_full(
        &[
            ("appendonly", "no"),
            ("user", "default off"),
            ("user", "alice on >s3cret ~pp:* +@all"),
        ],
        Some("alice:s3cret"),
        &[],
        "127.0.0.1",
    );
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 9).unwrap(), 81);
    assert_eq!(map_square(&pool, 0..20).unwrap().len(), 20);

    // A wrong password fails at once, typed, without showing it.
    let wrong = format!("redis://alice:nope@127.0.0.1:{}/0", server.port);
    match Pool::builder().redis(&wrong).build() {
        Err(Error::Broker {
            reason: BrokerReason::Refused,
            message,
            ..
        }) => {
            assert!(!message.contains("nope"), "password shown: {message}");
            assert!(message.contains("alice:***"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Debug output of a pool never shows it either.
    assert!(!format!("{pool:?}").contains("s3cret"));
}

/// An ACL that forbids INFO (`build()` asks it for the server's version):
/// calls are served all the same.
/// A Redis with a memory limit and a policy that evicts keys (the setting
/// of a cache) may drop a heartbeat or a call under memory pressure: a
/// caller's `build()` and a node's start say so in a warning that names
/// the setting to change. It still serves (it may never reach its limit).
/// A Redis with `noeviction`, or with no limit, gets no such warning.
#[test]
fn a_redis_that_may_evict_keys_is_warned_of_and_still_serves() {
    let log = support::capture_log();
    let lru = RedisServer::start_with(&[
        ("appendonly", "no"),
        ("maxmemory", "1gb"),
        ("maxmemory-policy", "allkeys-lru"),
    ]);
    let warned = |server: &RedisServer| {
        log.lines_with("maxmemory-policy")
            .into_iter()
            .filter(|l| l.contains(&format!(":{}/", server.port)))
            .collect::<Vec<_>>()
    };
    let _node = NodeProc::env(&lru, 1);
    let pool = Pool::builder().redis(&lru.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 6).unwrap(), 36);
    let lines = warned(&lru);
    assert_eq!(lines.len(), 1, "one warning, from build(): {lines:?}");
    assert!(
        lines[0].starts_with("WARN")
            && lines[0].contains("allkeys-lru")
            && lines[0].contains("noeviction"),
        "{lines:?}"
    );
    let node = Node::builder()
        .redis(&lru.url())
        .processes(1)
        .start()
        .unwrap();
    assert_eq!(warned(&lru).len(), 2, "and one from a node's start");
    drop(node);

    for config in [
        &[
            ("appendonly", "no"),
            ("maxmemory", "1gb"),
            ("maxmemory-policy", "noeviction"),
        ][..],
        &[("appendonly", "no"), ("maxmemory-policy", "allkeys-lru")][..],
    ] {
        let safe = RedisServer::start_with(config);
        let pool = Pool::builder().redis(&safe.url()).build().unwrap();
        drop(pool);
        assert_eq!(warned(&safe), Vec::<String>::new(), "{config:?}");
    }
}

#[test]
fn an_acl_user_without_info_is_enough() {
    let server = RedisServer::start_full(
        &[
            ("appendonly", "no"),
            ("user", "default off"),
            ("user", "alice on >s3cret ~pp:* +@all -info"),
        ],
        Some("alice:s3cret"),
        &[],
        "127.0.0.1",
    );
    let info = server.try_cli(&["INFO", "server"]).unwrap_or_default();
    assert!(!info.contains("redis_version"), "INFO is allowed: {info}");
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 9).unwrap(), 81);
    assert_eq!(map_square(&pool, 0..20).unwrap().len(), 20);
    let other = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&other, 4).unwrap(), 16);
}

#[cfg(feature = "redis-tls")]
#[test]
fn rediss_with_a_private_ca() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let dir = TempDir::new();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=pp-test-ca 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null");
    sh("printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile ext 2>/dev/null");
    let tls_port = free_port().to_string();
    let server = RedisServer::start_with(&[
        ("appendonly", "no"),
        ("tls-port", &tls_port),
        ("tls-cert-file", &dir.file("server.crt")),
        ("tls-key-file", &dir.file("server.key")),
        ("tls-ca-cert-file", &dir.file("ca.crt")),
        ("tls-auth-clients", "no"),
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    // The CA is trusted through SSL_CERT_FILE (read by the system-roots
    // loader), set for the node and caller processes alone.
    let ca = dir.file("ca.crt");
    let mut node = Command::new(HELPER)
        .env("PROCPOOL_NODE", &url)
        .env("PROCPOOL_PROCESSES", "1")
        .env("SSL_CERT_FILE", &ca)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut caller = Command::new(HELPER)
        .args(["caller", &url, &dir.file("marks"), "1"])
        .env("SSL_CERT_FILE", &ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(caller.stdin.take().unwrap(), "4").unwrap();
    let lines: Vec<String> = BufReader::new(caller.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let _ = caller.wait();
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(lines[0], "submitted");
    assert!(lines[1].starts_with("ok "), "{lines:?}");
    assert_eq!(lines[2], "square 16");
    // Without the CA, the connection is refused as untrusted, typed.
    match Pool::builder().redis(&url).build() {
        Err(Error::Broker { message, .. }) => assert!(message.contains("rediss://"), "{message}"),
        other => panic!("{other:?}"),
    }
    drop(server);
}

/// Anyone who can write the task stream can send a registered name with
/// any fingerprint: each is settled (answered `SignatureMismatch`, refused
/// before the node keeps anything of it), and the node serves on.
///
/// (That the node keeps nothing per fingerprint is not measured here: the
/// resident memory of a node varies run to run by as much as such entries
/// took, about 17 MB per 150,000.)
#[test]
fn hostile_fingerprints_are_settled_and_the_node_serves_on() {
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    let node = NodeProc::code(
        &server.url(),
        &[("processes", "2"), ("prefetch", "512")],
        &[],
    );
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let tasks = server.key(":tasks").expect("the task stream");
    let caller = server
        .members()
        .into_iter()
        .find(|(_, kind)| kind == "caller")
        .expect("the caller")
        .0;
    // Sends `n` entries of `t/square`, fingerprint `fp(j)`, and waits until
    // the node has settled them all.
    let send = |from: u64, n: u64, fp: &dyn Fn(u64) -> u64| {
        let commands: Vec<Vec<String>> = (from..from + n)
            .map(|j| {
                [
                    "XADD",
                    &tasks,
                    "*",
                    "c",
                    &caller,
                    "i",
                    &(1_000_000_000 + j).to_string(),
                    "t",
                    "t/square",
                    "f",
                    &fp(j).to_string(),
                    "k",
                    "s",
                    "r",
                    "0",
                    "o",
                    "",
                    "a",
                    "x",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            })
            .collect();
        server.cli_pipe(&commands);
        wait_for(Duration::from_secs(240), "the node to settle them", || {
            server.queued() == 0 && server.pending() == 0
        });
    };
    send(0, 20_000, &|j| j + 2);
    // It still serves.
    assert_eq!(apply_square(&pool, 4).unwrap(), 16);
    node.stop();
}

/// Anyone who can write a caller's result stream can give an entry any id
/// above the stream's last, the last sequence number of a millisecond
/// included: the caller's reader, working out where to trim after it
/// (`seq + 1`), overflowed and died (a debug build): the next
/// `apply_async` never completed (`get_timeout` ran out), and dropping the
/// pool hung. The entry is ignored (no call of that seq), and the caller
/// reads on.
#[test]
fn a_result_entry_with_the_last_id_of_a_millisecond_is_ignored_and_the_caller_reads_on() {
    let server = RedisServer::start_with(&[("appendonly", "no")]);
    let _node = NodeProc::env(&server, 1);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let queued = apply_async_square(&pool, 3);
    assert_eq!(queued.get_timeout(Duration::from_secs(60)).unwrap(), 9);
    let results = server
        .key_with(":res:")
        .expect("the caller's result stream");
    let last = format!("{}-{}", 32_503_680_000_000u64, u64::MAX);
    let added = server.cli(&[
        "XADD",
        &results,
        &last,
        "i",
        "999999999",
        "s",
        "v",
        "b",
        "x",
        "n",
        "hostile",
    ]);
    assert_eq!(added.trim(), last);
    for x in 4..8u64 {
        let queued = apply_async_square(&pool, x);
        assert_eq!(queued.get_timeout(Duration::from_secs(60)).unwrap(), x * x);
    }
}

/// A Redis that lets a user connect and register but refuses a command
/// procpool needs later (an ACL without it, or `rename-command` in
/// redis.conf) fails a node's start, an environment node and, when a
/// caller needs it too, `build()`, at once and naming the command. Before,
/// a node refused `XREADGROUP`, `XPENDING` or `XACK` (those inside its
/// scripts too) started and registered: callers saw a node of their build,
/// so `node_wait` never ran out, and every call waited for ever; a reaper
/// refused `XINFO` never found a dead node.
#[test]
fn a_redis_refusing_a_command_procpool_needs_is_refused_at_start_naming_it() {
    // (What the server refuses, the command named, whether callers need it.)
    let cases: [(&str, &str, bool); 6] = [
        ("acl -xreadgroup", "XREADGROUP", false),
        ("acl -xinfo", "XINFO", true),
        ("acl -xack", "XACK", true),
        ("acl -@scripting", "EVALSHA", true),
        ("rename XPENDING", "XPENDING", true),
        ("rename XREAD", "XREAD", true),
    ];
    for (setup, named, caller_too) in cases {
        let (what, arg) = setup.split_once(' ').unwrap();
        let server = if what == "acl" {
            RedisServer::start_full(
                &[
                    ("appendonly", "no"),
                    ("user", "default off"),
                    ("user", &format!("alice on >s3cret ~pp:* +@all {arg}")),
                ],
                Some("alice:s3cret"),
                &[],
                "127.0.0.1",
            )
        } else {
            RedisServer::start_with(&[
                ("appendonly", "no"),
                ("rename-command", &format!("{arg} \"\"")),
            ])
        };
        let url = server.url();
        let refused = |who: &str, got: Result<(), Error>| match got {
            Err(Error::Broker {
                reason: BrokerReason::Refused,
                message,
                ..
            }) => {
                assert!(message.contains(named), "{setup}, {who}: {message}");
                assert!(!message.contains("s3cret"), "{setup}, {who}: {message}");
            }
            other => panic!("{setup}, {who}: {other:?}"),
        };
        let begun = std::time::Instant::now();
        refused(
            "node",
            Node::builder().redis(&url).processes(1).start().map(drop),
        );
        let built = Pool::builder().redis(&url).build();
        if caller_too {
            refused("build", built.map(drop));
        } else {
            // The node's refusal left nothing a caller would take for it.
            let pool = built.unwrap();
            let pool = pool.with_task_timeout(None);
            drop(pool);
            assert!(
                !server.members().iter().any(|(_, kind)| kind == "node"),
                "{setup}: {:?}",
                server.members()
            );
        }
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{setup}: {:?}",
            begun.elapsed()
        );
        // An environment node exits 1, saying why.
        let out = std::process::Command::new(HELPER)
            .env("PROCPOOL_NODE", &url)
            .env("PROCPOOL_PROCESSES", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        let begun = std::time::Instant::now();
        while out.try_wait().unwrap().is_none() && begun.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = out.try_wait().unwrap();
        if status.is_none() {
            let _ = out.kill();
            let _ = out.wait();
        }
        let mut err = String::new();
        std::io::Read::read_to_string(&mut out.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{setup}: {err}");
        assert!(err.contains(named), "{setup}: {err}");
    }
}

/// A Redis whose `client-output-buffer-limit` caps normal clients closes
/// the connection of a node claiming a call with larger arguments, or of a
/// caller reading a larger result; the node or caller asks again after
/// reconnecting, for ever, and the calls behind wait (seen: a 4 MiB
/// argument under `normal 1mb 1mb 0` left every call of the queue, other
/// pools' included, waiting past 40 s). A pool's `build()` and a node's
/// start say so in a warning; Redis's default (no limit) gets none.
#[test]
fn a_redis_capping_its_clients_replies_is_warned_of() {
    let log = support::capture_log();
    let capped = RedisServer::start_with(&[
        ("appendonly", "no"),
        ("client-output-buffer-limit", "normal 1mb 1mb 0"),
    ]);
    let warned = |server: &RedisServer| {
        log.lines_with("client-output-buffer-limit")
            .into_iter()
            .filter(|l| l.contains(&format!(":{}/", server.port)))
            .collect::<Vec<_>>()
    };
    let pool = Pool::builder().redis(&capped.url()).build().unwrap();
    let lines = warned(&capped);
    assert_eq!(lines.len(), 1, "one warning, from build(): {lines:?}");
    assert!(
        lines[0].starts_with("WARN") && lines[0].contains("normal 0 0 0"),
        "{lines:?}"
    );
    let node = Node::builder()
        .redis(&capped.url())
        .processes(1)
        .start()
        .unwrap();
    assert_eq!(warned(&capped).len(), 2, "and one from a node's start");
    assert_eq!(apply_square(&pool, 6).unwrap(), 36, "small calls still run");
    drop(node);
    let default = RedisServer::start_with(&[("appendonly", "no")]);
    drop(Pool::builder().redis(&default.url()).build().unwrap());
    assert_eq!(warned(&default), Vec::<String>::new());
}
