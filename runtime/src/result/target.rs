//! [`CancelTarget`]: what cancelling an `AsyncResult` (or an imap) reaches.

use std::sync::Arc;

use super::Hub;
use crate::cancel::CancelOutcome;

/// What cancelling an `AsyncResult` (or an imap) cancels. Holds no outcome,
/// so a map's result can keep its chunks' targets without their results.
#[derive(Clone)]
pub(crate) enum CancelTarget {
    /// Nothing: the result was known at once.
    None,
    /// One call of a pool, by id.
    Call(Hub, u64),
    /// Several parts (a `map_async`'s chunks), cancelled together.
    Parts(Arc<[CancelTarget]>),
}

impl CancelTarget {
    /// Cancels it: a call the dispatcher no longer holds had finished.
    pub(crate) fn cancel(&self) -> CancelOutcome {
        match self {
            CancelTarget::None => CancelOutcome::Finished,
            CancelTarget::Call(hub, id) => hub.cancel(*id),
            // The last first: the queued parts leave the queue before a
            // running one's worker is killed, whose slot would otherwise
            // take the next queued part to its new worker.
            CancelTarget::Parts(parts) => {
                CancelOutcome::combine(parts.iter().rev().map(|p| p.cancel()))
            }
        }
    }
}
