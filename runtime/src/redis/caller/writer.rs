//! The writer: moves queued calls into Redis in batches, one SUBMIT script
//! per batch, never more than `max_in_flight` calls at a time (the
//! back-pressure bound: more wait in this process, like a local pool's
//! queue).

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use super::super::conn::{BrokerError, Conn};
use super::super::entry::{kind_letter, timeout_field};
use super::super::scripts::scripts;
use super::state::{Flight, Inner};
use crate::call::Call;
use crate::error::{BrokerReason, Error};

pub(super) fn write_loop(inner: Arc<Inner>) {
    loop {
        let (conn, batch) = {
            let mut st = inner.lock();
            loop {
                // Closed and drained: done. Not while an `apply` under way
                // is unconfirmed: if its own send fails, it hands the call
                // back to this queue, for this thread to send.
                if st.terminated
                    || inner.stopping()
                    || (st.closed && st.queue.is_empty() && !st.inline_unconfirmed)
                {
                    return;
                }
                if !st.queue.is_empty()
                    && st.flight.len() < inner.cfg.max_in_flight
                    && !st.inline_unconfirmed
                {
                    break;
                }
                st = inner.to_writer.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            // Only this thread sends queued calls: never contended.
            let conn = inner.submit_conn.lock().unwrap_or_else(|e| e.into_inner());
            let room = inner.cfg.max_in_flight - st.flight.len();
            let n = room.min(inner.cfg.batch).min(st.queue.len());
            let mut batch = Vec::with_capacity(n);
            let st = &mut *st;
            for q in st.queue.drain(..n) {
                st.flight
                    .insert(q.seq, Flight::new(&q.call, q.promise, false));
                batch.push((q.seq, q.call));
            }
            (conn, batch)
        };
        send_batch(&inner, conn, &batch);
    }
}

/// One SUBMIT script for `batch` (EVALSHA; see [`run_script`]), with the
/// arguments in the order `submit.lua` reads them.
pub(super) fn submit_cmd<'a>(
    inner: &Inner,
    batch: impl IntoIterator<Item = &'a (u64, Call)>,
    count: usize,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(scripts().submit.get_hash())
        .arg(2)
        .arg(inner.keys.tasks())
        .arg(inner.keys.members())
        .arg(&inner.name)
        .arg(count);
    for (seq, call) in batch {
        cmd.arg(*seq)
            .arg(call.task.name)
            .arg(call.task.fingerprint)
            .arg(kind_letter(call.kind))
            .arg(inner.cfg.redeliver)
            .arg(timeout_field(call.timeout.get()))
            .arg(&call.args[..]);
    }
    cmd
}

/// Runs an EVALSHA of `script`, loading the script first if Redis does not
/// have it (a restarted Redis's script cache is empty).
pub(super) fn run_script<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    script: &redis::Script,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match cmd.query(con) {
        Err(e) if e.code() == Some("NOSCRIPT") => {
            script.load(con)?;
            cmd.query(con)
        }
        other => other,
    }
}

/// The error a refused SUBMIT means.
pub(super) fn submit_error(e: BrokerError) -> Error {
    if e.message.contains("PPFENCED") {
        forgotten()
    } else {
        e.to_error("")
    }
}

/// The cluster forgot this caller: its registration is gone from Redis
/// (it was silent past its time to live, or Redis lost its data).
pub(super) fn forgotten() -> Error {
    Error::Broker {
        task: String::new(),
        reason: BrokerReason::Forgotten,
        message: "the cluster forgot this caller: its registration is gone from Redis, \
                  either because it sent no heartbeat for longer than its time to live \
                  (was the process stopped?) or because Redis lost its data (restarted \
                  without persistence, or flushed); its queued calls are gone, and this \
                  pool sends no more: build a new one"
            .into(),
    }
}

/// Sends calls with one SUBMIT script; on failure fails them with `Broker`.
/// The connection's guard is released before any promise runs.
///
/// While Redis is known to be out of reach (a SUBMIT already spent a whole
/// retry budget, and none succeeded since), a batch gets one attempt: a
/// map's chunks or an imap's windows, queued one after another, fail within
/// about one budget rather than one budget each. The first success ends it.
fn send_batch(inner: &Inner, mut conn: MutexGuard<'_, Conn>, batch: &[(u64, Call)]) {
    let cmd = submit_cmd(inner, batch, batch.len());
    let submit =
        |con: &mut redis::Connection| run_script::<Vec<String>>(con, &scripts().submit, &cmd);
    let sent = if inner.out_of_reach.load(Ordering::SeqCst) {
        conn.run_within(
            "submit (Redis already out of reach: one attempt)",
            Duration::ZERO,
            submit,
        )
    } else {
        conn.run("submit", submit)
    };
    drop(conn);
    if let Err(e) = &sent {
        if batch.len() > 1 && e.message.contains("Protocol error") {
            // Redis could not read the SUBMIT (an argument over its
            // `proto-max-bulk-len`), so none of it ran: each call goes
            // again alone, and only those Redis refuses on their own fail,
            // not the calls that shared their batch.
            for one in batch {
                let conn = inner.submit_conn.lock().unwrap_or_else(|e| e.into_inner());
                send_batch(inner, conn, std::slice::from_ref(one));
            }
            return;
        }
    }
    match &sent {
        Ok(_) => {
            if inner.out_of_reach.swap(false, Ordering::SeqCst) {
                log::info!(target: "procpool", "Redis answers again: calls are sent as before");
            }
        }
        Err(e) if e.reason == BrokerReason::Unreachable => {
            if !inner.out_of_reach.swap(true, Ordering::SeqCst) {
                log::warn!(
                    target: "procpool",
                    "Redis out of reach for a whole retry budget: until it answers, \
                     each batch of calls gets one attempt"
                );
            }
        }
        Err(_) => {}
    }
    let (waiting, _handing) = {
        let mut st = inner.lock();
        let waiting = match &sent {
            Ok(ids) => {
                for (i, (seq, _)) in batch.iter().enumerate() {
                    if let Some(f) = st.flight.get_mut(seq) {
                        f.sent = true;
                        f.entry = ids.get(i).filter(|id| !id.is_empty()).cloned();
                    }
                }
                Vec::new()
            }
            // Redis stayed out of reach for a whole retry budget: the calls
            // waiting behind this batch fail with it, now, rather than each
            // batch in turn after a budget of its own (a queue of n batches
            // would take n budgets to fail). Calls made later try afresh.
            Err(e) if e.reason == BrokerReason::Unreachable => st.queue.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        // `join` waits until their promises are complete (see `hand_over`).
        let handing = (!waiting.is_empty()).then(|| inner.hand_over(&mut st));
        inner.wake(&st);
        (waiting, handing)
    };
    if let Err(e) = sent {
        log::warn!(
            target: "procpool",
            "{} calls not sent: {e}",
            batch.len() + waiting.len()
        );
        let error = submit_error(e);
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        inner.fail_flight(Some(&seqs), |task| super::state::for_task(&error, task));
        for q in waiting {
            let e = super::state::for_task(&error, q.call.task.name);
            q.promise.complete(Err(e));
        }
    }
}
