//! A runner: runs claimed calls on the node's local pool. When there is no
//! work and nobody is claiming, it claims itself (leader/follower), so an
//! idle node's call goes from the XREADGROUP reply to the local pool on one
//! thread. When nothing else waits it settles its own outcome at once, on
//! its own connection; otherwise the outcome joins the deliverer's batch.

use std::sync::Arc;
use std::time::Duration;

use super::super::conn::Conn;
use super::super::failure::RemoteFailure;
use super::claim::read_once;
use super::deliver::deliver;
use super::shared::{Done, Item, Shared};
use std::sync::atomic::Ordering;

pub(super) fn run_loop(s: Arc<Shared>, mut conn: Conn) {
    loop {
        let Some(item) = next_item(&s) else {
            return;
        };
        let Some(mut item) = item else {
            read_once(&s);
            continue;
        };
        let (_, epoch) = s.identity();
        if item.epoch != epoch {
            // Claimed under an identity the cluster declared dead: the
            // reaper already answered it (NodeLost) or queued it again.
            // Never run it.
            let mut st = s.lock();
            st.claimed.remove(&item.call.entry);
            s.stats.dropped.fetch_add(1, Ordering::Relaxed);
            s.wake(&st);
            continue;
        }
        let outcome = if s.lock().cancelled.contains(&item.call.caller) {
            Err(RemoteFailure::Cancelled)
        } else {
            s.stats.ran.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let outcome = s.exec.execute(&mut item.call);
            s.ran_for(started.elapsed());
            outcome
        };
        let done = Done::of(&item, outcome);
        let mut st = s.lock();
        if st.work.is_empty() && st.done.is_empty() {
            drop(st);
            deliver(&s, &mut conn, vec![done]);
        } else {
            st.done.push(done);
            s.wake(&st);
        }
    }
}

/// The next thing for this runner: `Some(Some(item))` to run,
/// `Some(None)` to claim, `None` to leave (the node is stopping).
fn next_item(s: &Shared) -> Option<Option<Item>> {
    let mut st = s.lock();
    loop {
        if let Some(item) = st.work.pop_front() {
            return Some(Some(item));
        }
        if s.stopping() {
            st.runners_left -= 1;
            s.wake(&st);
            return None;
        }
        if !st.reading && st.claimed.len() < s.capacity() {
            st.reading = true;
            return Some(None);
        }
        st = s
            .to_runners
            .wait_timeout(st, Duration::from_millis(200))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
