//! The worker's end of its channel, kept where both the serve loop and the
//! test hook [`write_raw`] reach it. Only the serve loop's thread uses it,
//! but for that hook, which a task calls while the loop waits for it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::process::WorkerChannel;
use crate::shm::{Begin, Endpoint, Progress};
use crate::wire::{Frame, FrameError};

static CHANNEL: Mutex<Option<Endpoint>> = Mutex::new(None);
/// The count of map items started, as the first channel adopted has it
/// (a worker adopts one channel in its life).
static ITEMS: OnceLock<Progress> = OnceLock::new();

/// Keeps the worker's end of the channel the parent left (checked and
/// mapped) here; returns the frame limit the parent set.
pub(super) fn adopt(channel: WorkerChannel) -> Result<usize, String> {
    let endpoint = Endpoint::worker(Arc::new(channel.map))?;
    let max_frame = endpoint.max_frame();
    let _ = ITEMS.set(endpoint.progress());
    *CHANNEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(endpoint);
    Ok(max_frame)
}

fn with<T>(f: impl FnOnce(&mut Endpoint) -> Result<T, FrameError>) -> Result<T, FrameError> {
    match CHANNEL.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        Some(endpoint) => f(endpoint),
        None => Err(FrameError::Closed),
    }
}

/// The word that counts the map items this worker has started (see
/// `crate::shm::Progress`); a word nobody reads outside a worker.
pub(crate) fn item_count() -> &'static AtomicU64 {
    static NOWHERE: AtomicU64 = AtomicU64::new(0);
    ITEMS.get().map_or(&NOWHERE, Progress::word)
}

/// The next request (see [`Endpoint::recv`]).
pub(super) fn recv(timeout: Option<Duration>) -> Result<Frame, FrameError> {
    with(|endpoint| endpoint.recv(timeout))
}

/// Records that call `id` starts, waiting while the parent halts this
/// worker (see `crate::shm::Halter`): whether to run it, skip it (the
/// parent gave it back) or exit (the parent let this worker go).
pub(super) fn begin_call(id: u64) -> Begin {
    with(|endpoint| Ok(endpoint.begin_call(id))).unwrap_or(Begin::LetGo)
}

/// Sends (and publishes) the reply to call `id`, then records that it is
/// published.
pub(super) fn answer(id: u64, parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError> {
    with(|endpoint| {
        endpoint.send(parts, tail)?;
        endpoint.end_call(id);
        Ok(())
    })
}

/// Sends (and publishes) one frame.
pub(super) fn send(parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError> {
    with(|endpoint| endpoint.send(parts, tail))
}

/// For tests that play a corrupt worker (see `__private`): writes `bytes`
/// into this worker's reply ring as they are, ahead of the reply to the call
/// running now, and publishes them.
pub(crate) fn write_raw(bytes: &[u8]) -> Result<(), String> {
    with(|endpoint| endpoint.write_raw(bytes)).map_err(|e| e.to_string())
}
