//! Settling outcomes: the fenced DELIVER script, in batches, retried until
//! Redis answers. The node never drops an outcome itself; only Redis fences
//! one (its entry was reaped, the node having been declared dead).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::super::conn::Conn;
use super::super::keys::GROUP;
use super::super::scripts::scripts;
use super::shared::{Done, Shared};

pub(super) fn deliver_loop(s: Arc<Shared>, mut conn: Conn) {
    loop {
        let batch: Vec<Done> = {
            let mut st = s.lock();
            loop {
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
        let flags = settle(s, conn, consumer, &outs);
        count(s, consumer, &flags);
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
            st.claimed.remove(&d.entry);
        }
        s.wake(&st);
    }
}

/// One DELIVER for `outs`, retried until Redis answers (or, once the node
/// is stopping, until the retry budget is spent). Per outcome: 1 written,
/// 2 dropped (its caller is gone), 0 fenced.
fn settle(s: &Shared, conn: &mut Conn, consumer: &str, outs: &[&Done]) -> Vec<i64> {
    let script = &scripts().deliver;
    let mut inv = script.prepare_invoke();
    inv.key(s.keys.tasks()).key(s.keys.members());
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    for d in outs {
        let next = key_index.len() + 3;
        if let std::collections::hash_map::Entry::Vacant(v) = key_index.entry(d.caller.as_str()) {
            v.insert(next);
            inv.key(s.keys.results(&d.caller));
        }
    }
    inv.arg(GROUP).arg(consumer).arg(outs.len());
    for d in outs {
        inv.arg(&d.entry)
            .arg(key_index[d.caller.as_str()])
            .arg(&d.caller)
            .arg(d.seq)
            .arg(d.status)
            .arg(&d.body[..]);
    }
    loop {
        match conn.run("deliver", |con| inv.invoke::<Vec<i64>>(con)) {
            Ok(f) => return f,
            Err(e) if s.stopping() => {
                log::warn!(target: "procpool", "node {consumer}: {e}; {} outcomes dropped on the way out", outs.len());
                return vec![2; outs.len()];
            }
            Err(e) => {
                log::warn!(target: "procpool", "node {consumer}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn count(s: &Shared, consumer: &str, flags: &[i64]) {
    for f in flags {
        let counter = match f {
            0 => &s.stats.fenced,
            2 => &s.stats.dropped,
            _ => &s.stats.delivered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let fenced = flags.iter().filter(|f| **f == 0).count();
    if fenced > 0 {
        log::warn!(
            target: "procpool",
            "node {consumer}: {fenced} late outcomes ignored (this node had been declared lost)"
        );
    }
}
