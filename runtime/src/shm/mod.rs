//! The shared-memory channel between the parent and one worker: the
//! [`layout`] of the memory they share, the [`ring`] endpoints that move
//! frames through it, the [`halt`] handshake that lets a kill stop only the
//! call it is meant for, the map items' [`progress`] that lets a time limit
//! apply to each item, and the [`spin`] heuristic their waits use. Pure
//! memory and atomics: the mapping and the futex calls come from
//! [`crate::sys`].

mod halt;
pub(crate) mod layout;
mod progress;
pub(crate) mod ring;
mod spin;

pub(crate) use halt::{Begin, Halter};
pub(crate) use layout::{maker, offsets, total_bytes, Settings, DEFAULT_RING_BYTES};
pub(crate) use progress::Progress;
pub(crate) use ring::{wake_parent, Endpoint};

/// Both ends of a fresh channel in a real shared mapping (unit tests).
#[cfg(test)]
pub(crate) fn pair_for_tests() -> (Endpoint, Endpoint) {
    let bytes = total_bytes(DEFAULT_RING_BYTES);
    let (_fd, map) = crate::sys::SharedMap::create(c"procpool-test-pair", bytes).unwrap();
    let map = std::sync::Arc::new(map);
    let settings = Settings {
        ring_bytes: DEFAULT_RING_BYTES,
        max_frame: 1 << 20,
        maker: std::process::id(),
    };
    let stall = std::time::Duration::from_secs(10);
    let parent = Endpoint::parent(map.clone(), settings, stall);
    (parent, Endpoint::worker(map).unwrap())
}
