//! The caller's keeper: renews its heartbeat, runs the reaper (so a dead
//! node's calls fail with `NodeLost` even when no other node is up) and
//! refreshes the node count.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::conn::Conn;
use super::super::member;
use super::state::{for_task, Inner};
use super::writer::forgotten;

pub(super) fn keep_loop(inner: Arc<Inner>, mut conn: Conn) {
    let node_ttl = inner.cfg.broker.node_ttl;
    let tick = (node_ttl / 6).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let beat_every = inner.cfg.caller_ttl / 3;
    let mut last_beat = Instant::now();
    let mut last_count = Instant::now();
    let mut warned_no_node = false;
    while !inner.stopping() {
        std::thread::sleep(tick);
        if inner.lock().terminated {
            return;
        }
        if last_beat.elapsed() >= beat_every {
            match member::heartbeat(&mut conn, &inner.keys, &inner.name, inner.cfg.caller_ttl) {
                Ok(true) => last_beat = Instant::now(),
                Ok(false) => {
                    let error = forgotten();
                    log::warn!(target: "procpool", "{error}");
                    inner.lock().broken = Some(error.clone());
                    inner.fail_flight(None, |task| for_task(&error, task));
                }
                Err(_) => continue,
            }
        }
        // After any (re)connection, give every member one TTL to beat
        // again before judging: a Redis restart must not read as the death
        // of every node.
        if conn.since.elapsed() >= node_ttl {
            let _ = member::reap(&mut conn, &inner.keys);
        }
        if last_count.elapsed() >= Duration::from_secs(2) {
            if let Ok(n) = member::node_processes(&mut conn, &inner.keys) {
                inner.processes.store(n, Ordering::Relaxed);
                let waiting = !inner.lock().flight.is_empty();
                if n == 0 && waiting && !warned_no_node {
                    log::warn!(
                        target: "procpool",
                        "calls wait in Redis queue {:?}, but no node of this build ({}) is up",
                        inner.cfg.broker.queue, inner.cfg.broker.build
                    );
                }
                warned_no_node = n == 0 && waiting;
            }
            last_count = Instant::now();
        }
    }
}
