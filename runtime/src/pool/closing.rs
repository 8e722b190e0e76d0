//! Closing a pool while a `map` or `imap` runs: as in Python, a map begun
//! before [`close`](super::Pool::close) runs to its end, although it
//! queues its chunks as it goes rather than all at once.
//!
//! A map takes a [`Ticket`] when it starts, and gives it back once its
//! input is exhausted (every chunk queued) or it stops. `close` refuses new
//! calls and new maps at once, but closes the dispatcher only when no
//! ticket is out; the last ticket given back closes it then. `join` waits
//! for the `map`s (their own threads drive them to their end), not for the
//! `imap`s, which progress only as their caller reads them: it closes the
//! dispatcher, and an `imap` read afterwards yields what was queued before,
//! then [`PoolClosed`](crate::Error::PoolClosed). Nor does it wait for a
//! `map` on its own thread (`join` called from that map's input iterator),
//! which cannot end before `join` returns: that map's chunks not queued yet
//! are then refused with `PoolClosed`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

/// Which kind of map holds a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lazy {
    /// `map`: driven by its caller's thread, which waits in it.
    Map,
    /// `imap` / `imap_unordered`: driven by whoever reads it.
    Imap,
}

/// The tickets out.
#[derive(Default)]
struct Open {
    /// The thread of each `map` out (the one that drives it, and gives its
    /// ticket back).
    maps: Vec<ThreadId>,
    imaps: usize,
}

/// A pool's closing state and the maps that keep it open (see the module's
/// documentation).
#[derive(Default)]
pub(crate) struct Closing {
    /// `close` was called: new calls and maps are refused. Read on every
    /// call without the lock; written only under it, so that a ticket given
    /// out and `close` are ordered.
    closing: AtomicBool,
    open: Mutex<Open>,
    /// Signalled when a `map` gives its ticket back.
    maps_done: Condvar,
}

/// A map's leave to queue chunks after `close`, until it is given back
/// (dropped) or [`released`](Closing::release).
#[derive(Debug)]
pub(crate) struct Ticket(Lazy);

impl Closing {
    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether new calls and maps are refused.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// A ticket for a map starting now; `None` once closing.
    pub(crate) fn admit(&self, kind: Lazy) -> Option<Ticket> {
        let mut open = self.lock();
        if self.is_closing() {
            return None;
        }
        match kind {
            Lazy::Map => open.maps.push(std::thread::current().id()),
            Lazy::Imap => open.imaps += 1,
        }
        Some(Ticket(kind))
    }

    /// Gives `ticket` back; `true` if the dispatcher is to be closed now
    /// (closing, and it was the last one).
    #[must_use = "the dispatcher must be closed when this returns true"]
    pub(crate) fn release(&self, ticket: Ticket) -> bool {
        let mut open = self.lock();
        match ticket.0 {
            Lazy::Map => {
                // (Given back on the thread that took it: a map's ticket
                // lives in the frame of the call that drives it.)
                let here = std::thread::current().id();
                let at = open.maps.iter().position(|&t| t == here);
                open.maps.swap_remove(at.unwrap_or(0));
                self.maps_done.notify_all();
            }
            Lazy::Imap => open.imaps -= 1,
        }
        self.is_closing() && open.maps.len() + open.imaps == 0
    }

    /// Refuses new calls and maps; `true` if the dispatcher is to be
    /// closed now (no ticket is out).
    #[must_use = "the dispatcher must be closed when this returns true"]
    pub(crate) fn close(&self) -> bool {
        let open = self.lock();
        self.closing.store(true, Ordering::Release);
        open.maps.len() + open.imaps == 0
    }

    /// Closes, then waits until every `map` driven by another thread has
    /// given its ticket back (one driven by this thread, which called
    /// `join` from its input, cannot end before this returns).
    pub(crate) fn close_and_wait_for_maps(&self) {
        let mut open = self.lock();
        self.closing.store(true, Ordering::Release);
        let here = std::thread::current().id();
        while open.maps.iter().any(|&t| t != here) {
            open = self.maps_done.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_ticket_back_after_close_closes_the_dispatcher() {
        let c = Closing::default();
        let map = c.admit(Lazy::Map).unwrap();
        let imap = c.admit(Lazy::Imap).unwrap();
        assert!(!c.close(), "tickets are out");
        assert!(c.is_closing());
        assert!(c.admit(Lazy::Map).is_none(), "no new map once closing");
        assert!(!c.release(map));
        assert!(c.release(imap), "the last one closes it");
    }

    #[test]
    fn tickets_given_back_before_close_leave_it_to_close() {
        let c = Closing::default();
        let t = c.admit(Lazy::Imap).unwrap();
        assert!(!c.release(t), "not closing yet");
        assert!(c.close());
    }

    #[test]
    fn waiting_for_maps_ends_when_the_last_map_gives_its_ticket_back() {
        let c = std::sync::Arc::new(Closing::default());
        let map = c.admit(Lazy::Map).unwrap();
        let _imap = c.admit(Lazy::Imap).unwrap();
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.close_and_wait_for_maps())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a map is still out");
        assert!(!c.release(map), "an imap is still out");
        waiter.join().unwrap();
    }
}
