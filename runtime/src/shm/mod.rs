//! The shared-memory channel between the parent and one worker: the
//! [`layout`] of the memory they share, the [`ring`] endpoints that move
//! frames through it, and the [`spin`] heuristic their waits use. Pure
//! memory and atomics: the mapping and the futex calls come from
//! [`crate::sys`].

pub(crate) mod layout;
pub(crate) mod ring;
mod spin;

pub(crate) use layout::{maker, offsets, total_bytes, Settings, DEFAULT_RING_BYTES};
pub(crate) use ring::{wake_parent, Endpoint};
