//! Calls taken back: `cancel` of one call, `close_and_cancel` of every call
//! still waiting, and `terminate`'s clean-up in Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::super::conn::{BrokerError, Conn};
use super::super::keys::GROUP;
use super::super::member;
use super::super::scripts::scripts;
use super::state::{Flight, Inner, Queued, State};
use crate::cancel::CancelOutcome;
use crate::error::Error;

/// Cancels the call with the pool's id `id`.
pub(super) fn cancel(inner: &Inner, id: u64) -> CancelOutcome {
    let (seq, entry) = {
        // A call on its way to Redis is looked for there once it arrived
        // (or came back to the queue, or failed).
        let unsent = |st: &State| st.seq_of(id).is_some_and(|seq| !st.flight[&seq].sent);
        let mut st = inner.wait_submitted(inner.lock(), unsent);
        if let Some(at) = st.queue.iter().position(|q| q.call.id == id) {
            let q = st.queue.remove(at).expect("found");
            // `join` waits until its promise is complete.
            let handing = inner.hand_over(&mut st);
            inner.wake(&st);
            drop(st);
            settle_cancelled_queued(q);
            drop(handing);
            return CancelOutcome::NotStarted;
        }
        let Some(seq) = st.seq_of(id) else {
            return CancelOutcome::Finished;
        };
        (seq, st.flight[&seq].entry.clone())
    };
    // Until its outcome is settled below (see `Inner::taking_back`).
    let _taking_back = inner.taking_back.read().unwrap_or_else(|e| e.into_inner());
    let answer = with_control(inner, "cancel", |con| {
        scripts()
            .cancel
            .key(inner.keys.tasks())
            .key(inner.keys.ctl())
            .arg(GROUP)
            .arg(&inner.name)
            .arg(seq)
            .arg(entry.as_deref().unwrap_or(""))
            .invoke::<String>(con)
    });
    let outcome = match answer.as_deref() {
        Ok("queued") => CancelOutcome::NotStarted,
        Ok("running") => CancelOutcome::Stopped,
        // Queued again after the node running it was lost: it started
        // there, and is now kept from running again.
        Ok("lost") => CancelOutcome::Stopped,
        // Settled: its outcome is on its way to the reader, and is kept.
        Ok(_) => return CancelOutcome::Finished,
        Err(e) => {
            // Unknown whether it runs: it is cancelled here all the same
            // (a late outcome is ignored).
            log::warn!(target: "procpool", "cancel could not reach Redis: {e}");
            CancelOutcome::Stopped
        }
    };
    let (taken, _handing) = {
        let mut st = inner.lock();
        let taken = st.take(seq);
        let handing = inner.hand_over(&mut st);
        inner.wake(&st);
        (taken, handing)
    };
    drop(_taking_back);
    match taken {
        Some(f) => {
            settle_cancelled(f);
            outcome
        }
        None => CancelOutcome::Finished,
    }
}

/// Cancels every call still waiting: in this process, and in Redis where
/// no node has claimed it yet. Returns how many.
pub(super) fn cancel_queued(inner: &Inner) -> usize {
    let (queued, handing) = {
        let mut st = inner.lock();
        let q: Vec<Queued> = st.queue.drain(..).collect();
        // `join` waits until their promises are complete.
        let handing = inner.hand_over(&mut st);
        inner.wake(&st);
        (q, handing)
    };
    let mut count = queued.len();
    for q in queued {
        settle_cancelled_queued(q);
    }
    drop(handing);
    // The calls of a batch the writer holds are not in Redis yet: they are
    // looked for there once they are (the pool is closed: no batch follows).
    drop(inner.wait_submitted(inner.lock(), |st| st.flight.values().any(|f| !f.sent)));
    // Until what it removed is settled (see `Inner::taking_back`).
    let _taking_back = inner.taking_back.read().unwrap_or_else(|e| e.into_inner());
    match remove_unclaimed(inner, false) {
        Ok(removed) => {
            let (taken, _handing) = {
                let mut st = inner.lock();
                let t: Vec<(Flight, Option<String>)> = removed
                    .into_iter()
                    .filter_map(|r| st.take(r.seq).map(|f| (f, r.lost_on)))
                    .collect();
                let handing = inner.hand_over(&mut st);
                inner.wake(&st);
                (t, handing)
            };
            drop(_taking_back);
            for (f, lost_on) in taken {
                match lost_on {
                    // It started on a node that was lost (then was queued
                    // again by a redelivery): not a call that never ran.
                    Some(node) => {
                        let task = f.task.to_string();
                        f.promise.complete(Err(Error::NodeLost { task, node }));
                    }
                    None => {
                        count += 1;
                        settle_cancelled(f);
                    }
                }
            }
        }
        Err(e) => log::warn!(target: "procpool", "close_and_cancel could not reach Redis: {e}"),
    }
    count
}

/// A call [`remove_unclaimed`] took out of Redis before any node claimed it.
pub(super) struct Unclaimed {
    pub(super) seq: u64,
    /// The node that died running it, if it was queued again for that (a
    /// redelivery): it may have run there, in part or whole.
    pub(super) lost_on: Option<String>,
}

impl Unclaimed {
    /// Reads one of `terminate.lua`'s answers: `seq`, or `seq:node`.
    fn parse(text: &str) -> Option<Unclaimed> {
        let (seq, lost_on) = match text.split_once(':') {
            Some((seq, node)) => (seq, Some(node.to_string())),
            None => (text, None),
        };
        Some(Unclaimed {
            seq: seq.parse().ok()?,
            lost_on,
        })
    }
}

/// Deletes this caller's entries that no node has claimed (`terminate.lua`)
/// and returns them. With `terminate`, first unregisters the caller and
/// tells the nodes to stop its running calls.
pub(super) fn remove_unclaimed(
    inner: &Inner,
    terminate: bool,
) -> Result<Vec<Unclaimed>, BrokerError> {
    let mut cursor = "-".to_string();
    let mut first = terminate;
    let mut removed = Vec::new();
    loop {
        let out = with_control(inner, "remove queued calls", |con| {
            member::remove_unclaimed_step(con, &inner.keys, &inner.name, first, &cursor)
        })?;
        first = false;
        let mut out = out.into_iter();
        let next = out.next().unwrap_or_default();
        removed.extend(out.filter_map(|s| Unclaimed::parse(&s)));
        if next.is_empty() {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Runs `op` on the control connection (a fresh one if another thread is
/// using it, so a cancel never waits behind another).
fn with_control<T>(
    inner: &Inner,
    what: &str,
    op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Result<T, BrokerError> {
    if let Ok(mut conn) = inner.control_conn.try_lock() {
        return conn.run(what, op);
    }
    let mut conn = Conn::new(
        &inner.cfg.broker.url,
        inner.cfg.broker.retry.clone(),
        Arc::new(AtomicBool::new(inner.stop.load(Ordering::SeqCst))),
    )?;
    conn.run(what, op)
}

fn settle_cancelled(f: Flight) {
    let task = f.task.to_string();
    f.promise.complete(Err(Error::Cancelled { task }));
}

fn settle_cancelled_queued(q: Queued) {
    let e = q.call.cancelled();
    q.promise.complete(Err(e));
}
