//! One side of a worker's channel: frames (see [`crate::wire::frame`]) go
//! out on one single-producer single-consumer byte ring and come in on the
//! other, both in the shared memory of [`super::layout`].
//!
//! - **Copies.** A frame is copied into the ring by its producer and out of
//!   it by its consumer, nothing else. A frame larger than the free space is
//!   streamed: the producer publishes every [`CHUNK`] bytes, so the consumer
//!   copies out while the producer copies in, and a frame may be any size.
//! - **Waking.** A Dekker pair, so no wake-up is lost: a waiter reads its
//!   `seq`, stores what it waits for in `waiting`, fences, checks its
//!   condition again and only then sleeps on `seq` (a futex). A producer of
//!   the event publishes, fences, and makes the `FUTEX_WAKE` call only if the
//!   peer sleeps waiting for it, clearing the flag as it does: a peer that is
//!   awake or spinning costs no system call, and a burst of frames to a
//!   sleeping peer costs one wake. Before sleeping, each side may spin
//!   ([`super::spin`]).
//! - **Ends.** The parent's waits also end when the worker dies (the death
//!   watch sets `dead` and wakes the parent's futex); what the worker
//!   published before it died is still read. The worker's waits end when the
//!   parent sets `closed`.
//! - **Trust.** The parent trusts nothing the worker writes: an index
//!   outside what the protocol allows marks the channel broken (the caller
//!   sees a protocol error), a frame length is checked against the limit
//!   before anything is reserved, buffers grow only as bytes arrive, and the
//!   rest of a started frame, or room to write one, is awaited at most
//!   the stall limit at a time.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{Control, Settings, Waiter, CONTROL_BYTES};
use super::spin::Spinner;
use crate::sys::{self, SharedMap};

/// What a sleeping side waits for (its `waiting` word).
const WANT_DATA: u32 = 1;
const WANT_SPACE: u32 = 2;
/// A large frame is copied in and out at most this many bytes at a time,
/// each piece published (or freed) at once: the consumer copies one piece
/// out while the producer copies the next in. (Copying the whole free ring
/// at once made the two sides take turns: half the speed.)
const CHUNK: u64 = 256 << 10;
/// A consumer tells a producer waiting for room every this many bytes.
const SIGNAL_EVERY: u64 = 64 << 10;
/// A buffer grown by at least this much asks for huge pages (fewer faults).
const HUGE_HINT: usize = 2 << 20;

/// Which end of the channel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Parent,
    Worker,
}

/// Why a wait ended without what it waited for.
#[derive(Debug)]
enum End {
    TimedOut,
    /// The worker died (parent side).
    Dead,
    /// The parent let the worker go (worker side).
    Closed,
    /// The peer broke the protocol, or stalled.
    Broken(String),
}

/// One side of a channel.
pub(crate) struct Endpoint {
    map: Arc<SharedMap>,
    side: Side,
    /// Each ring's size (a power of two).
    cap: u64,
    tx: *mut u8,
    rx: *const u8,
    /// Bytes written to the transmit ring, and the part of them published.
    tx_pos: u64,
    published: u64,
    /// Bytes consumed from the receive ring.
    rx_pos: u64,
    /// The peer's indices as last read (and validated).
    tail_cache: u64,
    head_cache: u64,
    /// Bytes consumed since a producer waiting for room was last looked for.
    unsignalled: u64,
    /// Why the channel became unusable (a corrupt peer index).
    broken: Option<String>,
    /// Set by the death watch (parent side; see [`Endpoint::death_watch`]).
    dead: Arc<AtomicBool>,
    spin: Spinner,
    max_frame: usize,
    /// How long a started frame may stall (`None`: the worker trusts its parent).
    stall: Option<Duration>,
}

// SAFETY: the raw pointers point into the mapping `map` keeps alive, and
// the endpoint is used by one thread at a time (`&mut self`); the other
// process is synchronised with through atomics only.
unsafe impl Send for Endpoint {}

impl Endpoint {
    /// The parent's end of a fresh channel in `map` (of
    /// [`super::total_bytes`]`(settings.ring_bytes)` bytes, zeroed): writes
    /// the control page. The rest of a frame that began to arrive, or room
    /// for the rest of one being written, is awaited at most `stall` at a
    /// time. The death watch is given [`death_watch`](Self::death_watch).
    pub(crate) fn parent(map: Arc<SharedMap>, settings: Settings, stall: Duration) -> Self {
        assert!(map.len() >= super::total_bytes(settings.ring_bytes));
        // SAFETY: a live mapping of at least a control page, page-aligned.
        unsafe { Control::at(map.base()) }.init(settings);
        Endpoint::new(map, Side::Parent, settings, Some(stall))
    }

    /// What the death watch needs of a parent's end: the flag it sets when
    /// the worker dies, and the mapping whose waits it then wakes.
    pub(crate) fn death_watch(&self) -> (Arc<AtomicBool>, Arc<SharedMap>) {
        (self.dead.clone(), self.map.clone())
    }

    /// The parent's hold on the worker's call starts (see [`super::halt`]).
    pub(crate) fn halter(&self) -> super::Halter {
        super::Halter::new(self.map.clone())
    }

    /// The count of map items the worker has started (see
    /// [`super::progress`]).
    pub(crate) fn progress(&self) -> super::Progress {
        super::Progress::new(self.map.clone())
    }

    /// Parent side: the id of the call the worker runs or ran last, as it
    /// wrote it (untrusted: only ever compared; see [`super::halt`]).
    pub(crate) fn last_run(&self) -> u64 {
        self.ctl()
            .running
            .0
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Worker side: the reply to call `id` is published (see [`super::halt`]).
    pub(crate) fn end_call(&self, id: u64) {
        super::halt::end_call(self.ctl(), id);
    }

    /// Worker side: call `id` starts (see [`super::halt`]); waits while the
    /// parent halts the worker; tells whether to run it, skip it or exit.
    pub(crate) fn begin_call(&self, id: u64) -> super::Begin {
        super::halt::begin_call(self.ctl(), id)
    }

    /// The worker's end of the channel the parent set up in `map`.
    pub(crate) fn worker(map: Arc<SharedMap>) -> Result<Self, String> {
        if map.len() < CONTROL_BYTES {
            return Err(format!("the task channel is {} bytes", map.len()));
        }
        // SAFETY: as above.
        let settings = unsafe { Control::at(map.base()) }.settings(map.len())?;
        Ok(Endpoint::new(map, Side::Worker, settings, None))
    }

    fn new(map: Arc<SharedMap>, side: Side, settings: Settings, stall: Option<Duration>) -> Self {
        // SAFETY: the mapping holds the control page and both rings (checked
        // by the callers), so both ring starts lie inside it.
        let (req, rep) = unsafe {
            let req = map.base().add(CONTROL_BYTES);
            (req, req.add(settings.ring_bytes))
        };
        let (tx, rx) = match side {
            Side::Parent => (req, rep.cast_const()),
            Side::Worker => (rep, req.cast_const()),
        };
        Endpoint {
            map,
            side,
            cap: settings.ring_bytes as u64,
            tx,
            rx,
            tx_pos: 0,
            published: 0,
            rx_pos: 0,
            tail_cache: 0,
            head_cache: 0,
            unsignalled: 0,
            broken: None,
            dead: Arc::default(),
            spin: Spinner::new(),
            max_frame: settings.max_frame,
            stall,
        }
    }

    /// How long a started frame may stall (`None`: no limit).
    pub(crate) fn stall_limit(&self) -> Option<Duration> {
        self.stall
    }

    /// When a wait for more of a started frame gives up (`None`: never).
    fn stall_deadline(&self) -> Option<Instant> {
        // (A limit too far to reach is none.)
        self.stall.and_then(|s| Instant::now().checked_add(s))
    }

    fn ctl(&self) -> &Control {
        // SAFETY: `map` is live for as long as `self`, and starts with the
        // control page.
        unsafe { Control::at(self.map.base()) }
    }

    fn indices(&self) -> (&AtomicU64, &AtomicU64, &AtomicU64, &AtomicU64) {
        let c = self.ctl();
        // (tx head, tx tail, rx head, rx tail)
        match self.side {
            Side::Parent => (&c.req_head.0, &c.req_tail.0, &c.rep_head.0, &c.rep_tail.0),
            Side::Worker => (&c.rep_head.0, &c.rep_tail.0, &c.req_head.0, &c.req_tail.0),
        }
    }

    fn me(&self) -> &Waiter {
        match self.side {
            Side::Parent => &self.ctl().parent.0,
            Side::Worker => &self.ctl().worker.0,
        }
    }

    fn peer(&self) -> &Waiter {
        match self.side {
            Side::Parent => &self.ctl().worker.0,
            Side::Worker => &self.ctl().parent.0,
        }
    }

    /// The largest frame this end sends or accepts.
    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Parent side: lets the worker go; its waits end and it exits cleanly.
    pub(crate) fn close(&self) {
        let c = self.ctl();
        c.closed.0.store(1, SeqCst);
        c.worker.0.wake(u32::MAX);
    }

    /// Whether the peer has consumed every byte sent to it (checked now).
    pub(crate) fn all_consumed(&mut self) -> bool {
        self.refresh_tail();
        self.broken.is_none() && self.tail_cache == self.published
    }

    /// Why a wait cannot go on, if it cannot.
    fn ended(&self) -> Option<End> {
        if let Some(why) = &self.broken {
            return Some(End::Broken(why.clone()));
        }
        let over = match self.side {
            Side::Parent => self.dead.load(Acquire),
            Side::Worker => self.ctl().closed.0.load(Acquire) != 0,
        };
        over.then_some(match self.side {
            Side::Parent => End::Dead,
            Side::Worker => End::Closed,
        })
    }

    /// Why a wait that found nothing cannot go on, if it cannot. The
    /// parent (the only side that sees `End::Dead`) looks once more after
    /// seeing the worker dead: what the worker
    /// published before it died (the reply to a call it finished before it
    /// started the one it died in) may have arrived since `ready` was last
    /// checked, and must be read, not taken for lost.
    fn check_end(&mut self, ready: fn(&mut Self) -> bool) -> Option<Result<(), End>> {
        let end = self.ended()?;
        Some(match end {
            End::Dead if ready(self) => Ok(()),
            end => Err(end),
        })
    }

    fn corrupt(&mut self, what: &str, value: u64) {
        if self.broken.is_none() {
            let peer = match self.side {
                Side::Parent => "worker",
                Side::Worker => "parent",
            };
            self.broken = Some(format!(
                "the {peer} wrote an impossible {what} index {value} on the shared-memory channel"
            ));
        }
    }

    /// Wakes the peer if it sleeps waiting for `what`.
    fn wake_peer(&self, what: u32) {
        fence(SeqCst);
        let peer = self.peer();
        if peer.waiting.load(Relaxed) == what
            && peer
                .waiting
                .compare_exchange(what, 0, SeqCst, Relaxed)
                .is_ok()
        {
            peer.wake(1);
        }
    }

    /// Waits until `ready`, spinning first if that may pay (see
    /// [`super::spin`]; `streaming`: in the middle of a frame), until the
    /// wait cannot go on, or until `deadline`.
    fn wait(
        &mut self,
        want: u32,
        deadline: Option<Instant>,
        streaming: bool,
        ready: fn(&mut Self) -> bool,
    ) -> Result<(), End> {
        if ready(self) {
            return Ok(());
        }
        if let Some(outcome) = self.check_end(ready) {
            return outcome;
        }
        let my_cpu = sys::current_cpu();
        self.me().cpu.store(my_cpu, Relaxed);
        let peer_cpu = self.peer().cpu.load(Relaxed);
        if let Some(turn) = self.spin.budget(peer_cpu, my_cpu, streaming) {
            let begun = Instant::now();
            let until = deadline.map_or(begun + turn.budget, |d| d.min(begun + turn.budget));
            loop {
                for _ in 0..64 {
                    std::hint::spin_loop();
                    if ready(self) {
                        if !streaming {
                            self.spin.hit();
                        }
                        return Ok(());
                    }
                }
                if let Some(outcome) = self.check_end(ready) {
                    return outcome;
                }
                if Instant::now() >= until {
                    break;
                }
            }
            if !streaming {
                self.spin.miss();
            }
        }
        self.sleep(want, deadline, ready)
    }

    /// The sleeping half of [`wait`](Self::wait).
    fn sleep(
        &mut self,
        want: u32,
        deadline: Option<Instant>,
        ready: fn(&mut Self) -> bool,
    ) -> Result<(), End> {
        loop {
            let seq = self.me().seq.load(SeqCst);
            self.me().waiting.store(want, SeqCst);
            fence(SeqCst);
            let outcome = if ready(self) {
                Some(Ok(()))
            } else if let Some(outcome) = self.check_end(ready) {
                Some(outcome)
            } else {
                match deadline {
                    Some(d) if Instant::now() >= d => Some(Err(End::TimedOut)),
                    _ => None,
                }
            };
            if let Some(outcome) = outcome {
                self.me().waiting.store(0, Relaxed);
                return outcome;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            sys::futex_wait(&self.me().seq, seq, left);
            self.me().waiting.store(0, Relaxed);
            self.me().cpu.store(sys::current_cpu(), Relaxed);
        }
    }
}

/// Wakes the parent's side of the channel in `map`, whatever it waits for
/// (the death watch calls this once the worker died and `dead` is set).
pub(crate) fn wake_parent(map: &SharedMap) {
    // SAFETY: `map` is a live channel mapping, starting with its control page.
    unsafe { Control::at(map.base()) }.parent.0.wake(u32::MAX);
}

mod recv;
mod send;
#[cfg(test)]
mod tests;
