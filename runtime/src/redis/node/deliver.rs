//! Settling outcomes: the fenced DELIVER script, in batches, retried until
//! Redis answers. The node never drops an outcome itself; only Redis fences
//! one (its entry was reaped, the node having been declared dead). An
//! outcome Redis refuses to store (out of memory under `noeviction`, a
//! value over its limits) does not hold up the others: a refused batch is
//! sent again one outcome at a time, and a refused outcome is replaced by
//! a short error saying so (`Error::Broker` with `BrokerReason::Refused`
//! for its caller), tried until Redis takes it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::super::conn::{BrokerError, Conn};
use super::super::failure::RemoteFailure;
use super::super::keys::GROUP;
use super::super::scripts::scripts;
use super::shared::{Done, Shared};
use crate::error::BrokerReason;

pub(super) fn deliver_loop(s: Arc<Shared>, mut conn: Conn) {
    loop {
        let batch: Vec<Done> = {
            let mut st = s.lock();
            loop {
                // Given up on Redis: what is left to report stays pending
                // in Redis, for the cluster (see `Shared::drained`).
                if st.abandoned {
                    return;
                }
                if !st.done.is_empty() && !st.delivering {
                    let n = st.done.len().min(s.cfg.batch);
                    st.delivering = true;
                    break st.done.drain(..n).collect();
                }
                if Shared::drained(&st) {
                    return;
                }
                st = s
                    .to_deliverer
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        deliver(&s, &mut conn, batch);
        let mut st = s.lock();
        st.delivering = false;
        s.wake(&st);
    }
}

/// Settles outcomes with DELIVER, one script per consumer name (one,
/// normally; two right after an identity change).
pub(super) fn deliver(s: &Shared, conn: &mut Conn, batch: Vec<Done>) {
    let _shared = s.settle_gate.read().unwrap_or_else(|e| e.into_inner());
    let mut by_consumer: HashMap<&str, Vec<&Done>> = HashMap::new();
    for d in &batch {
        by_consumer.entry(d.consumer.as_str()).or_default().push(d);
    }
    for (consumer, outs) in by_consumer {
        // The connection a first attempt uses (made by it, if none is
        // open): a later one means the DELIVER was sent again.
        let g0 = conn.generation + u64::from(!conn.is_connected());
        let flags = settle(s, conn, consumer, &outs);
        count(s, consumer, &flags, conn.generation > g0);
        {
            let mut recent = s.recent.lock().unwrap_or_else(|e| e.into_inner());
            for (d, f) in outs.iter().zip(&flags) {
                if *f != 0 {
                    recent.remember(d);
                }
            }
        }
        let mut st = s.lock();
        for d in &outs {
            st.unclaim(&d.entry);
        }
        s.wake(&st);
    }
}

/// One DELIVER for `outs`, retried until Redis answers (or, once the node
/// is stopping, until the retry budget is spent). Per outcome: 1 written,
/// 2 dropped (its caller is gone), 0 fenced (this node had been declared
/// lost), 3 settled already (by an attempt whose reply was lost).
fn settle(s: &Shared, conn: &mut Conn, consumer: &str, outs: &[&Done]) -> Vec<i64> {
    let invocation = |check: bool| {
        let mut inv = scripts().deliver.prepare_invoke();
        inv.key(s.keys.tasks()).key(s.keys.members());
        let mut key_index: HashMap<&str, usize> = HashMap::new();
        for d in outs {
            let next = key_index.len() + 3;
            if let std::collections::hash_map::Entry::Vacant(v) = key_index.entry(d.caller.as_str())
            {
                v.insert(next);
                inv.key(s.keys.results(&d.caller));
            }
        }
        inv.arg(GROUP)
            .arg(consumer)
            .arg(outs.len())
            .arg(if check { "1" } else { "0" });
        for d in outs {
            inv.arg(&d.entry)
                .arg(key_index[d.caller.as_str()])
                .arg(&d.caller)
                .arg(d.seq)
                .arg(d.status)
                .arg(&d.body[..]);
        }
        inv
    };
    // Redis reads each entry back to check it still holds the same call
    // only when it may not: the DELIVER is sent again (its reply lost, the
    // entry settled already, and its id perhaps given to a new call by a
    // task stream that lost its data), or a new claim returned an id of
    // this batch again (`State::reused`). (A new claim of such an id between
    // here and the first attempt goes unseen: a window of a moment, after a
    // Redis lost its data.)
    let reused = {
        let st = s.lock();
        outs.iter().any(|d| st.reused.contains(&d.entry))
    };
    let plain = invocation(reused);
    let mut checked = None;
    let mut attempts = 0u32;
    loop {
        let sent = conn.run("deliver", |con| {
            attempts += 1;
            let inv = if attempts > 1 {
                checked.get_or_insert_with(|| invocation(true))
            } else {
                &plain
            };
            inv.invoke::<Vec<i64>>(con)
        });
        match sent {
            Ok(f) => return f,
            Err(e) if s.stopping() => {
                log::warn!(target: "procpool", "node {consumer}: {e}; {} outcomes dropped on the way out", outs.len());
                return vec![2; outs.len()];
            }
            // Even the short error that stands in for a refused outcome:
            // Redis refuses every write for now (out of memory). Wait here,
            // in this loop: a retry by recursion would grow the stack.
            Err(e) if e.reason == BrokerReason::Refused && stands_in(outs) => {
                log::warn!(target: "procpool", "node {consumer}: {}; retrying", e.message);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) if e.reason == BrokerReason::Refused => {
                return refused(s, conn, consumer, outs, e)
            }
            Err(e) => {
                log::warn!(target: "procpool", "node {consumer}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Redis refused `outs` as a whole (`why`): each is sent alone, so one
/// that Redis will not store (a large result, Redis out of memory) holds
/// up no other; one refused alone goes as an error saying so, retried
/// until Redis takes it (it is short: Redis may refuse it for a while, as
/// it does every write while out of memory, but not for its size). At
/// most two calls deep: `settle` retries a stand-in in its own loop.
fn refused(
    s: &Shared,
    conn: &mut Conn,
    consumer: &str,
    outs: &[&Done],
    why: BrokerError,
) -> Vec<i64> {
    let [done] = outs else {
        return outs
            .iter()
            .flat_map(|d| settle(s, conn, consumer, &[d]))
            .collect();
    };
    log::warn!(
        target: "procpool",
        "node {consumer}: Redis refused an outcome of {} bytes ({}); its caller gets that error instead",
        done.body.len(),
        why.message
    );
    let failure = RemoteFailure::Refused {
        message: format!(
            "Redis refused to store this call's outcome ({} bytes; the call ran): {}",
            done.body.len(),
            why.message
        ),
    };
    // Every field but the body (which may be large) copied.
    let instead = Done {
        entry: done.entry.clone(),
        consumer: done.consumer.clone(),
        caller: done.caller.clone(),
        seq: done.seq,
        status: "e",
        body: failure.encode(),
    };
    settle(s, conn, consumer, &[&instead])
}

/// Whether `outs` is one outcome standing in for one Redis refused.
fn stands_in(outs: &[&Done]) -> bool {
    matches!(outs, [done] if done.status == "e"
        && matches!(RemoteFailure::decode(&done.body), Ok(RemoteFailure::Refused { .. })))
}

/// Counts what became of a batch (`flags`, see [`settle`]) and says what
/// a node's operator should know: outcomes Redis fenced. `reconnected`:
/// the DELIVER was sent again on a new connection, so an earlier attempt
/// whose reply was lost may have settled the batch already.
fn count(s: &Shared, consumer: &str, flags: &[i64], reconnected: bool) {
    for f in flags {
        let counter = match f {
            0 => &s.stats.fenced,
            2 => &s.stats.dropped,
            _ => &s.stats.delivered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let again = flags.iter().filter(|f| **f == 3).count();
    if again > 0 {
        log::debug!(
            target: "procpool",
            "node {consumer}: {again} outcomes were settled already (the reply to their DELIVER was lost, and it was sent again)"
        );
    }
    let fenced = flags.iter().filter(|f| **f == 0).count();
    if fenced > 0 && reconnected {
        log::warn!(
            target: "procpool",
            "node {consumer}: this node had been declared lost when its DELIVER was sent again after a lost reply: \
             {fenced} outcomes were settled by the lost attempt, or ignored"
        );
    } else if fenced > 0 {
        log::warn!(
            target: "procpool",
            "node {consumer}: {fenced} late outcomes ignored (this node had been declared lost)"
        );
    }
}
