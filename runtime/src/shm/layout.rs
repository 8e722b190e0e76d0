//! The layout of a worker's shared memory: one control page, then the
//! request ring (parent → worker), then the reply ring (worker → parent),
//! each ring a power of two.
//!
//! The control page holds, each on its own cache line so that the two sides
//! do not fight over lines they both write: each ring's `head` (advanced by
//! its producer) and `tail` (advanced by its consumer), a [`Waiter`] per
//! side, the `closed` flag, and the words of the start handshake
//! (`started`, `halt`, `running`, `finished`, `skip`: see [`super::halt`]), and
//! the count of map items started (see [`super::progress`]). Every field is an atomic: the other process
//! may write any of them at any time, and a corrupt or hostile worker may
//! write nonsense, so the parent reads nothing here that it has not
//! validated (see [`super::ring`]), and it never reads the configuration
//! back: it uses its own.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Identifies a procpool channel and its layout version.
const MAGIC: u64 = u64::from_le_bytes(*b"ppring04");
/// Bytes before the request ring.
pub(crate) const CONTROL_BYTES: usize = 4096;
/// Each ring's size unless configured otherwise.
pub(crate) const DEFAULT_RING_BYTES: usize = 1 << 20;
/// The smallest ring a worker accepts.
const MIN_RING_BYTES: usize = 4096;

/// A value alone on a 64-byte cache line.
#[repr(C, align(64))]
pub(crate) struct Line<T>(pub(crate) T);

/// How one side sleeps and where it runs.
#[repr(C)]
pub(crate) struct Waiter {
    /// The futex word: bumped by whoever wakes this side.
    pub(crate) seq: AtomicU32,
    /// 0 while awake; otherwise what it sleeps for (`WANT_DATA`, `WANT_SPACE`).
    pub(crate) waiting: AtomicU32,
    /// The CPU this side last ran on (the spin heuristic's hint).
    pub(crate) cpu: AtomicU32,
}

impl Waiter {
    /// Wakes up to `n` threads sleeping on this side's futex word.
    pub(crate) fn wake(&self, n: u32) {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        crate::sys::futex_wake(&self.seq, n);
    }
}

/// The control page.
#[repr(C)]
pub(crate) struct Control {
    magic: AtomicU64,
    ring_bytes: AtomicU64,
    max_frame: AtomicU64,
    /// The pid of the process that made the channel (the pool's).
    maker: AtomicU64,
    pub(crate) req_head: Line<AtomicU64>,
    pub(crate) req_tail: Line<AtomicU64>,
    pub(crate) rep_head: Line<AtomicU64>,
    pub(crate) rep_tail: Line<AtomicU64>,
    pub(crate) parent: Line<Waiter>,
    pub(crate) worker: Line<Waiter>,
    /// Set by the parent when it lets the worker go (the worker exits cleanly).
    pub(crate) closed: Line<AtomicU32>,
    /// The id of the call the worker is about to start (written by the
    /// worker before it looks at `halt`; put back to `running` once it
    /// knows it is to skip the call, before it counts `skip` down).
    pub(crate) started: Line<AtomicU64>,
    /// Set by the parent while it decides whether to kill the worker: the
    /// worker starts no call while it is set.
    pub(crate) halt: Line<AtomicU32>,
    /// The id of the call the worker runs or ran last (written once it got
    /// past `halt`, before the task runs).
    pub(crate) running: Line<AtomicU64>,
    /// The id of the call whose reply the worker published last.
    pub(crate) finished: Line<AtomicU64>,
    /// A cancelled call pipelined behind the one the worker runs (0: none):
    /// the worker does not start it (it waits as while `halt` is set), so
    /// the kill that stops it finds it unstarted.
    pub(crate) hold: Line<AtomicU64>,
    /// How many map items the worker has started (see [`super::progress`]).
    pub(crate) items: Line<AtomicU64>,
    /// How many of the calls the worker reads next it is to skip, unrun
    /// and unanswered: the parent gave them back to the queue (set by the
    /// parent while the worker is halted, counted down by the worker; see
    /// [`super::halt`]).
    pub(crate) skip: Line<AtomicU64>,
}

const _: () = assert!(std::mem::size_of::<Control>() <= CONTROL_BYTES);

/// The size of the shared memory for rings of `ring_bytes` each.
pub(crate) fn total_bytes(ring_bytes: usize) -> usize {
    CONTROL_BYTES + 2 * ring_bytes
}

/// The configuration a worker reads from the control page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) ring_bytes: usize,
    pub(crate) max_frame: usize,
    /// The pid of the process that made the channel.
    pub(crate) maker: u32,
}

impl Control {
    /// # Safety
    /// `base` must point at a live mapping of at least [`CONTROL_BYTES`]
    /// bytes, page-aligned, that outlives the returned reference.
    pub(crate) unsafe fn at<'a>(base: *mut u8) -> &'a Control {
        // SAFETY: the caller guarantees a live, aligned mapping large enough
        // for a Control, which is all atomics: any bit pattern is valid.
        unsafe { &*base.cast::<Control>() }
    }

    /// Writes a fresh control page (the mapping is new and zeroed).
    pub(crate) fn init(&self, settings: Settings) {
        assert!(settings.ring_bytes.is_power_of_two() && settings.ring_bytes >= MIN_RING_BYTES);
        self.ring_bytes.store(settings.ring_bytes as u64, Relaxed);
        self.max_frame.store(settings.max_frame as u64, Relaxed);
        self.maker.store(u64::from(settings.maker), Relaxed);
        self.magic.store(MAGIC, Relaxed);
    }

    /// In a worker: the settings the parent wrote, checked against the size
    /// of the mapping `len`.
    pub(crate) fn settings(&self, len: usize) -> Result<Settings, String> {
        if self.magic.load(Relaxed) != MAGIC {
            return Err("the task channel has no procpool control page".into());
        }
        let ring_bytes = usize::try_from(self.ring_bytes.load(Relaxed)).unwrap_or(0);
        let max_frame = usize::try_from(self.max_frame.load(Relaxed)).unwrap_or(usize::MAX);
        if !ring_bytes.is_power_of_two()
            || ring_bytes < MIN_RING_BYTES
            || ring_bytes
                .checked_mul(2)
                .and_then(|r| r.checked_add(CONTROL_BYTES))
                != Some(len)
        {
            return Err(format!(
                "the task channel's rings ({ring_bytes} bytes each) do not fit its {len} bytes"
            ));
        }
        let maker = u32::try_from(self.maker.load(Relaxed)).unwrap_or(0);
        Ok(Settings {
            ring_bytes,
            max_frame,
            maker,
        })
    }
}

/// Where the parts of the control page are, in bytes from its start, for
/// tests that play a corrupt or hostile worker (see `__private`).
pub(crate) fn offsets() -> [(&'static str, usize); 6] {
    [
        ("req_head", std::mem::offset_of!(Control, req_head)),
        ("req_tail", std::mem::offset_of!(Control, req_tail)),
        ("rep_head", std::mem::offset_of!(Control, rep_head)),
        ("rep_tail", std::mem::offset_of!(Control, rep_tail)),
        ("parent_seq", std::mem::offset_of!(Control, parent)),
        ("rings", CONTROL_BYTES),
    ]
}

/// In a worker: the pid of the process that made the channel in `map`,
/// once its control page checks out.
pub(crate) fn maker(map: &crate::sys::SharedMap) -> Result<u32, String> {
    if map.len() < CONTROL_BYTES {
        return Err(format!("the channel is {} bytes", map.len()));
    }
    // SAFETY: a live mapping of at least a control page, page-aligned.
    let control = unsafe { Control::at(map.base()) };
    control.settings(map.len()).map(|settings| settings.maker)
}
