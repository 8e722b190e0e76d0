//! The caller's keeper: renews its heartbeat, runs the reaper (so a dead
//! node's calls fail with `NodeLost` even when no other node is up) and
//! refreshes the node count.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::conn::Conn;
use super::super::keys;
use super::super::member;
use super::cancel::remove_unclaimed;
use super::state::{for_task, Inner, Queued};
use super::writer::forgotten;
use crate::error::{BrokerReason, Error};

/// `regroups`: the mark of the last making of the task stream's consumer
/// group when this caller registered (see [`check_regroups`]).
pub(super) fn keep_loop(inner: Arc<Inner>, mut conn: Conn, mut regroups: Option<i64>) {
    let node_ttl = inner.cfg.broker.node_ttl;
    let tick = (node_ttl / 6).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let beat_every = inner.cfg.caller_ttl / 3;
    let mut last_beat = Instant::now();
    let mut last_count: Option<Instant> = None;
    let mut no_node_since: Option<Instant> = None;
    while !inner.stopping() {
        // A tick between rounds, cut short when the pool is dropped or
        // terminated: a dropped pool's drop waits for this thread (it
        // slept its whole tick, so every drop of a pool took 0.5 s).
        let st = inner.lock();
        let (st, _) = inner
            .to_keeper
            .wait_timeout_while(st, tick, |st| !st.terminated && !inner.stopping())
            .unwrap_or_else(|e| e.into_inner());
        if st.terminated || inner.stopping() {
            return;
        }
        drop(st);
        if last_beat.elapsed() >= beat_every {
            let ttl = inner.cfg.caller_ttl;
            match member::heartbeat(&mut conn, &inner.keys, &inner.name, ttl, node_ttl) {
                Ok(true) => last_beat = Instant::now(),
                Ok(false) => forgotten_by_redis(&inner),
                Err(_) => continue,
            }
        }
        // After any (re)connection, give every member one TTL to beat
        // again before judging: a Redis restart must not read as the death
        // of every node. (Meanwhile the round keeps the reaper's clock: a
        // caller's own heartbeat is rare.)
        let judge = conn.since.elapsed() >= node_ttl;
        if let Ok(reaped) = member::reap(&mut conn, &inner.keys, node_ttl, judge) {
            check_regroups(&inner, &mut regroups, reaped.regroups);
        }
        // Every 2 s; every tick while no node is up, so that `NoNode`
        // comes within a tick of `node_wait`.
        let every = match inner.processes.load(Ordering::Relaxed) {
            0 => tick,
            _ => Duration::from_secs(2),
        };
        if last_count.is_none_or(|at| at.elapsed() >= every) {
            check_nodes(&inner, &mut conn, &mut no_node_since);
            last_count = Some(Instant::now());
        }
    }
}

/// The task stream's consumer group was made again since the last round
/// (`seen` held its mark then, `now` another): the stream had been deleted
/// or evicted with the calls it held, which no node will ever answer. The
/// reader checks which of this caller's calls Redis still has, as after a
/// reconnection, and fails the others (`BrokerReason::Lost`) rather than
/// leave them waiting for ever. Any other mark counts, not only a larger
/// one: the reaper's clock deleted or evicted with the stream starts its
/// count over (see `group.lua`). (No mark, 0, the clock gone alone, is only
/// taken as the new baseline; a check for nothing lost fails nothing.)
fn check_regroups(inner: &Inner, seen: &mut Option<i64>, now: Option<i64>) {
    let Some(now) = now else { return };
    if now != 0 && seen.is_some_and(|before| now != before) {
        log::warn!(
            target: "procpool",
            "the task stream of Redis queue {:?} was gone (deleted or evicted) and has been \
             made again: calls it held are lost",
            inner.cfg.broker.queue
        );
        let mut st = inner.lock();
        st.suspect = true;
        inner.wake(&st);
    }
    *seen = Some(now);
}

/// The cluster forgot this caller (its registration is gone): every call
/// in flight fails with [`forgotten`], and so does every later one.
pub(super) fn forgotten_by_redis(inner: &Inner) {
    let error = forgotten();
    log::warn!(target: "procpool", "{error}");
    inner.lock().broken = Some(error.clone());
    inner.fail_flight(None, |task| for_task(&error, task));
}

/// Refreshes the node count; fails the calls no node has taken once calls
/// have waited `node_wait` with no node of this build up. Then, until a
/// node is up, new calls fail at once (see `State::no_node`), not one
/// `node_wait` later each: an `imap`'s windows of chunks, one after
/// another, would otherwise wait one each.
fn check_nodes(inner: &Inner, conn: &mut Conn, no_node_since: &mut Option<Instant>) {
    let Ok(n) = member::node_processes(conn, &inner.keys) else {
        return;
    };
    inner.processes.store(n, Ordering::Relaxed);
    if n > 0 && inner.lock().no_node.take().is_some() {
        log::info!(target: "procpool", "a node of this build is up: calls are sent again");
    }
    let waiting = {
        let st = inner.lock();
        !st.flight.is_empty() || !st.queue.is_empty()
    };
    if n > 0 || !waiting {
        *no_node_since = None;
        return;
    }
    let since = *no_node_since.get_or_insert_with(|| {
        log::warn!(
            target: "procpool",
            "calls wait in Redis queue {:?}, but no node of this build ({}) is up",
            inner.cfg.broker.queue, inner.cfg.broker.build
        );
        Instant::now()
    });
    if since.elapsed() >= inner.cfg.node_wait {
        give_up_waiting(inner, conn);
        *no_node_since = None;
    }
}

/// Removes the calls no node has taken from Redis and fails them (and the
/// calls waiting here) with `NoNode`; a call queued again after its node
/// died running it (a redelivery) fails with `NodeLost` instead: it never
/// ran again, but it may have run there.
fn give_up_waiting(inner: &Inner, conn: &mut Conn) {
    let others = other_builds(inner, conn);
    let mut message = format!(
        "no node of this program's build ({}) served queue {:?} for {:?}; the call never ran",
        inner.cfg.broker.build, inner.cfg.broker.queue, inner.cfg.node_wait
    );
    if !others.is_empty() {
        message.push_str(&format!(
            " (nodes of other builds serve it: {}; callers and nodes must register the same \
             tasks with the same signatures)",
            others.join(", ")
        ));
    }
    log::warn!(target: "procpool", "{message}");
    let error = Error::Broker {
        task: String::new(),
        reason: BrokerReason::NoNode,
        message,
    };
    let (queued, handing) = {
        let mut st = inner.lock();
        st.no_node = Some(error.clone());
        let q: Vec<Queued> = st.queue.drain(..).collect();
        // `join` waits until their promises are complete.
        let handing = inner.hand_over(&mut st);
        inner.wake(&st);
        (q, handing)
    };
    for q in queued {
        let e = for_task(&error, q.call.name());
        q.promise.complete(Err(e));
    }
    drop(handing);
    // Until what it removed is settled (see `Inner::taking_back`).
    let _taking_back = inner.taking_back.read().unwrap_or_else(|e| e.into_inner());
    if let Ok(removed) = remove_unclaimed(inner, false) {
        let mut never = Vec::new();
        for r in removed {
            match r.lost_on {
                None => never.push(r.seq),
                Some(node) => inner.fail_flight(Some(&[r.seq]), |task| Error::NodeLost {
                    task: task.to_string(),
                    node: node.clone(),
                }),
            }
        }
        inner.fail_flight(Some(&never), |task| for_task(&error, task));
    }
}

/// The builds whose nodes serve this queue, other than this one.
fn other_builds(inner: &Inner, conn: &mut Conn) -> Vec<String> {
    let queue = &inner.cfg.broker.queue;
    let pattern = keys::members_of_every_build(queue);
    let found = conn.run("look for other builds", |con| {
        let mut cursor = 0u64;
        let mut names = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(con)?;
            names.extend(batch);
            if next == 0 || names.len() > 100 {
                break;
            }
            cursor = next;
        }
        let mut builds = Vec::new();
        for key in names {
            let Some(build) = keys::build_of_members_key(queue, &key) else {
                continue;
            };
            if build == inner.cfg.broker.build {
                continue;
            }
            let kinds: Vec<String> = redis::cmd("HVALS").arg(&key).query(con)?;
            if kinds.iter().any(|k| k == "node") {
                builds.push(build.to_string());
            }
        }
        Ok(builds)
    });
    found.unwrap_or_default()
}
