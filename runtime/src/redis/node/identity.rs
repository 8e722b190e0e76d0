//! A node's identity: its heartbeat, the reaper it runs, and a new name
//! when the cluster declared it dead (it was cut off past its time to live:
//! every call it held has been answered or queued again, and its late
//! outcomes are fenced).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::conn::{BrokerError, Conn};
use super::super::member::{self, Role};
use super::shared::Shared;

/// Beats every ttl/6 and runs the reaper, until the node has stopped.
pub(super) fn keep_loop(s: Arc<Shared>, mut conn: Conn) {
    let ttl = s.cfg.broker.node_ttl;
    let tick = (ttl / 6).max(Duration::from_millis(20));
    while !s.stopping() || !Shared::drained(&s.lock()) {
        std::thread::sleep(tick);
        if let Err(e) = beat(&s, &mut conn) {
            log::warn!(target: "procpool", "node {}: heartbeat: {e}", s.identity().0);
            give_up_if_cut_off(&s);
            continue;
        }
        // After a (re)connection, give every member one TTL to beat again
        // before judging: a Redis restart must not read as mass death.
        let judge = conn.since.elapsed() >= ttl;
        let _ = member::reap(&mut conn, &s.keys, ttl, judge);
    }
}

/// A stopping node that has not reached Redis for a whole retry budget
/// gives up what it still holds: calls its start gate keeps from starting
/// (it cannot confirm it is still a member) would wait for Redis for ever,
/// and outcomes could not be reported anyway. They stay pending in Redis
/// under its name, for the reaper: `NodeLost` for their callers, or run
/// again with `redeliver`; never answered from here. `Node::wait` then
/// terminates the local pool.
fn give_up_if_cut_off(s: &Shared) {
    let silent = s
        .last_beat
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .elapsed();
    if !s.stopping() || silent < s.cfg.broker.retry.budget {
        return;
    }
    let mut st = s.lock();
    // (Not drained: not given up yet, and something left to give up.)
    if !Shared::drained(&st) {
        log::warn!(
            target: "procpool",
            "node {}: stopping without reaching Redis for {silent:?}; its {} unsettled calls are left to the cluster",
            s.identity().0,
            st.claimed.len()
        );
        st.abandoned = true;
        // A report under way (the deliverer's, or one from the local
        // pool's callback thread) ends at its next attempt.
        s.given_up.store(true, std::sync::atomic::Ordering::SeqCst);
        s.to_runners.notify_all();
        s.to_deliverer.notify_all();
    }
}

/// Renews the heartbeat now; if this node was declared dead, takes a new
/// identity. Returns whether the old identity was still alive; an error if
/// neither could be done (the node then holds a name the cluster may have
/// declared dead: it must not claim under it).
pub(super) fn beat(s: &Shared, conn: &mut Conn) -> Result<bool, BrokerError> {
    let _one_at_a_time = s.beat_lock.lock().unwrap_or_else(|e| e.into_inner());
    let (name, _) = s.identity();
    let ttl = s.cfg.broker.node_ttl;
    // The key's time to live counts from no earlier than now: a reply that
    // comes late must not make the beat look later than it was.
    let sent = Instant::now();
    let alive = member::heartbeat(conn, &s.keys, &name, ttl, ttl)?;
    if !alive {
        take_new_identity(s, conn, &name)?;
    }
    *s.last_beat.lock().unwrap_or_else(|e| e.into_inner()) = sent;
    Ok(alive)
}

/// Whether this node has gone long enough without a successful beat that
/// it may have been declared dead (it was stopped, or cut off).
pub(super) fn beat_is_stale(s: &Shared) -> bool {
    stale(&s.last_beat, s.cfg.broker.node_ttl)
}

/// Whether a node whose last successful beat was at `last_beat` may have
/// been declared dead, with time to live `ttl` (it beats every ttl/6: half
/// the time to live without a beat is not normal running).
pub(super) fn stale(last_beat: &Mutex<Instant>, ttl: Duration) -> bool {
    last_beat
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .elapsed()
        > ttl / 2
}

/// Registers under a new name and stops the work claimed under the old one
/// that has not started (the reaper has answered it or queued it again, or
/// it is given back).
fn take_new_identity(s: &Shared, conn: &mut Conn, old: &str) -> Result<(), BrokerError> {
    let ttl = s.cfg.broker.node_ttl;
    let name = match member::register(conn, &s.keys, Role::Node, ttl, Some(s.cfg.processes)) {
        Ok(n) => n,
        Err(e) => {
            log::warn!(target: "procpool", "node {old} was declared lost, and cannot register again: {e}");
            return Err(e);
        }
    };
    log::warn!(target: "procpool", "node {old} was declared lost by the cluster; it serves on as {name}");
    let epoch = {
        let mut id = s.identity.lock().unwrap_or_else(|e| e.into_inner());
        id.0 = name;
        id.1 += 1;
        id.1
    };
    // What the old identity handed to the local pool: prefetched calls
    // queued there (held by its start gate) must not run now (their
    // callers were told `NodeLost`, or another node runs them).
    s.exec.cancel_before(epoch);
    // What it claimed and did not hand over yet goes back to Redis (the
    // feeder gives it back: `runner::give_back_stale`).
    let st = s.lock();
    s.wake(&st);
    Ok(())
}
