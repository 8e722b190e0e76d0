//! The feeder: claims calls while the node has room, and queues each on the
//! local pool without waiting for it; each outcome, when the local pool
//! settles it, joins the deliverer's next batch. Quick calls queued together
//! are pipelined to the workers by the local pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::conn::{BrokerError, Conn};
use super::super::failure::RemoteFailure;
use super::super::keys::GROUP;
use super::super::scripts::scripts;
use super::claim::read_once;
use super::deliver::deliver;
use super::shared::{Done, Item, Shared};
use crate::error::BrokerReason;

pub(super) fn feed_loop(s: Arc<Shared>) {
    loop {
        let work: Vec<Item> = {
            let mut st = s.lock();
            loop {
                if !st.work.is_empty() {
                    break st.work.drain(..).collect();
                }
                if s.stopping() {
                    st.feeding = false;
                    s.wake(&st);
                    return;
                }
                if st.claimed.len() < s.capacity() {
                    st.reading = true;
                    break Vec::new();
                }
                st = s
                    .to_runners
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        if work.is_empty() {
            read_once(&s);
            continue;
        }
        // Claimed under a name the cluster has since declared dead: never
        // run here; given back (see `give_back_stale`).
        let (_, epoch) = s.identity();
        let (stale, work): (Vec<Item>, Vec<Item>) =
            work.into_iter().partition(|i| i.epoch != epoch);
        if !stale.is_empty() {
            give_back_stale(&s, stale);
        }
        let mut back = Vec::new();
        for item in work {
            // Beyond its idle processes, a node keeps only calls of tasks it
            // has seen be quick: they are pipelined. Others go back to
            // Redis, for whichever node is idle first.
            let idle = s.cfg.processes.saturating_sub(s.lock().local) > 0;
            if idle || s.is_quick(&item.call.task) {
                start(&s, item);
            } else {
                back.push(item);
            }
        }
        if !back.is_empty() {
            release(&s, back);
        }
    }
}

/// Gives back to Redis the calls claimed under an identity the cluster
/// declared dead and not started (`release.lua`): those the reaper has not
/// settled yet (claimed just before the node learned it: a node resumed
/// from a stop, or back from a partition) are queued again for any node,
/// rather than answered `NodeLost`; the others it has answered or queued
/// again itself. Never run here, whatever Redis says.
fn give_back_stale(s: &Arc<Shared>, items: Vec<Item>) {
    let mut by_name: Vec<(String, Vec<&str>)> = Vec::new();
    for item in &items {
        match by_name.iter_mut().find(|(name, _)| *name == item.consumer) {
            Some((_, ids)) => ids.push(&item.call.entry),
            None => by_name.push((item.consumer.clone(), vec![&item.call.entry])),
        }
    }
    let mut side = s.read.lock().unwrap_or_else(|e| e.into_inner());
    for (name, ids) in &by_name {
        match give_back(s, &mut side.conn, name, ids) {
            Ok(n) => log::debug!(
                target: "procpool",
                "node {name} was declared lost: {n} of its {} calls not started queued again",
                ids.len()
            ),
            Err(e) => {
                log::debug!(target: "procpool", "node {name}: {e}; the reaper settles its calls")
            }
        }
    }
    drop(side);
    let mut st = s.lock();
    for i in &items {
        st.unclaim(&i.call.entry);
        s.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
    s.wake(&st);
}

/// Runs `release.lua` for the entries `ids` claimed under `name`: how many
/// went back to the queue.
fn give_back(s: &Shared, conn: &mut Conn, name: &str, ids: &[&str]) -> Result<i64, BrokerError> {
    conn.run("give calls back", |con| {
        scripts()
            .release
            .key(s.keys.tasks())
            .key(s.keys.members())
            .arg(GROUP)
            .arg(name)
            .arg(ids)
            .invoke::<i64>(con)
    })
}

/// Gives claimed calls back to Redis (`release.lua`).
fn release(s: &Arc<Shared>, items: Vec<Item>) {
    s.hold.store(true, Ordering::Relaxed);
    let mut side = s.read.lock().unwrap_or_else(|e| e.into_inner());
    let consumer = items[0].consumer.clone();
    let ids: Vec<&str> = items
        .iter()
        .filter(|i| i.consumer == consumer)
        .map(|i| i.call.entry.as_str())
        .collect();
    let released = give_back(s, &mut side.conn, &consumer, &ids);
    match released {
        // Redis answered with an error: the script did not run, they are
        // still ours and run here after all.
        Err(e) if e.reason == BrokerReason::Refused => {
            drop(side);
            log::warn!(target: "procpool", "node {consumer}: {e}; running them here");
            for item in items {
                start(s, item);
            }
            return;
        }
        // No reply: the script may have run and queued them again for any
        // node, so they never run here. The next claim re-reads this
        // node's pending list: those still ours come back from it.
        Err(e) => {
            side.recover_all();
            log::warn!(target: "procpool", "node {consumer}: {e}; claimed again if still ours");
        }
        Ok(_) => {}
    }
    drop(side);
    // Given back, or to be read again (those the reaper settled first are
    // its own).
    let mut st = s.lock();
    for i in &items {
        st.unclaim(&i.call.entry);
    }
    s.wake(&st);
}

/// Queues one claimed call on the local pool (or answers it at once).
fn start(s: &Arc<Shared>, mut item: Item) {
    let (_, epoch) = s.identity();
    if item.epoch != epoch {
        // Claimed under an identity the cluster declared dead: never run it.
        give_back_stale(s, vec![item]);
        return;
    }
    if s.lock().is_cancelled(&item.call) {
        finish(s, &item, Err(RemoteFailure::Cancelled), None);
        return;
    }
    s.stats.ran.fetch_add(1, Ordering::Relaxed);
    s.lock().local += 1;
    let started = Instant::now();
    let shared = s.clone();
    let args = std::mem::take(&mut item.call.args);
    let mut call = item.call.clone();
    call.args = args;
    s.exec.start(&mut call, epoch, move |outcome| {
        finish(&shared, &item, outcome, Some(started))
    });
    // The node may have learned it was declared lost between the check
    // above and the call's registration, and cancelled its old name's
    // calls without this one: cancel it now.
    let (_, now) = s.identity();
    if now != epoch {
        s.exec.cancel_before(now);
    }
    // Likewise a stop, or its caller's terminate, that found the call
    // neither queued here nor on the local pool (between the check above
    // and its registration there). (`call` still names it: only its
    // arguments were taken.)
    let cancelled = s.lock().is_cancelled(&call);
    if cancelled {
        s.exec.cancel_one(&call.caller, call.seq);
    }
}

/// Settles `item`'s outcome: at once on this thread if nothing else waits
/// to be settled (so outcomes stay in order), else in the deliverer's next
/// batch.
fn finish(
    s: &Shared,
    item: &Item,
    outcome: Result<Vec<u8>, RemoteFailure>,
    started: Option<Instant>,
) {
    if let Some(started) = started {
        s.completed(&item.call.task, started);
    }
    let done = Done::of(item, outcome);
    let mut st = s.lock();
    if started.is_some() {
        st.local -= 1;
        s.hold.store(false, Ordering::Relaxed);
    }
    if st.abandoned {
        // Left to the cluster, never answered from here (see
        // `identity::give_up_if_cut_off`): the local pool's terminate fails
        // what it still held.
        return;
    }
    if st.done.is_empty() && !st.delivering {
        if let Ok(mut conn) = s.inline.try_lock() {
            st.delivering = true;
            drop(st);
            deliver(s, &mut conn, vec![done]);
            let mut st = s.lock();
            st.delivering = false;
            s.wake(&st);
            return;
        }
    }
    st.done.push(done);
    s.wake(&st);
}
