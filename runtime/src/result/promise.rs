//! The pool's side of a result: the `Promise` that fills its cell, and the
//! functions that make a promise and its `AsyncResult` together.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::cell::{ResultCell, TaskName};
use super::{AsyncResult, Decoder, ErasedDecoder, Hub, Outcome};
use crate::error::Error;

/// The pool's promise to fill a result cell. Dropping it unfilled (a job discarded
/// on any path) fails the task instead of leaving its caller waiting forever.
/// (`Default`: an empty one, which fills nothing.)
#[derive(Default)]
pub(crate) struct Promise {
    cell: Option<Arc<ResultCell>>,
}

impl Promise {
    /// The id of the call this promise is for (0 for none; see [`pending`]).
    pub(crate) fn call_id(&self) -> u64 {
        self.cell.as_ref().map_or(0, |cell| cell.id())
    }

    /// The task of the call this promise is for (an empty promise's: "?").
    pub(crate) fn call_task(&self) -> &'static crate::task::TaskInfo {
        static NONE: crate::task::TaskInfo = crate::task::TaskInfo {
            name: "?",
            signature: "",
            fingerprint: 0,
        };
        self.cell.as_deref().map_or(&NONE, |cell| cell.task.0)
    }

    /// What the call's queue entry keeps in the result cell (see
    /// `crate::call::Job`): 0 for an empty promise.
    pub(crate) fn call_meta(&self) -> &std::sync::atomic::AtomicU64 {
        static NONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        self.cell.as_deref().map_or(&NONE, |cell| &cell.meta)
    }

    pub(crate) fn complete(mut self, outcome: Outcome) {
        if let Some(cell) = self.cell.take() {
            cell.fill(outcome);
        }
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            let task = cell.task.to_string();
            cell.fill(Err(Error::Terminated { task }));
        }
    }
}

/// Creates a connected promise and result for call `id` (0: none to
/// cancel) of the task named `task`.
pub(crate) fn pending<T: DeserializeOwned>(
    task: impl Into<TaskName>,
    hub: Hub,
    id: u64,
) -> (Promise, AsyncResult<T>) {
    let cell = Arc::new(ResultCell::new(task.into(), hub, id));
    let result = AsyncResult {
        cell: cell.clone(),
        _type: PhantomData,
    };
    (Promise { cell: Some(cell) }, result)
}

/// [`pending`] for a result of no call of its own (id 0: a map's, which
/// gathers its chunks'), whose outcome bytes `decode` reads.
pub(crate) fn pending_with<T: DeserializeOwned>(
    task: impl Into<TaskName>,
    hub: Hub,
    decode: Decoder<T>,
) -> (Promise, AsyncResult<T>) {
    let (promise, result) = pending(task, hub, 0);
    // SAFETY: read back only as a `Decoder<T>` (by `AsyncResult::<T>::decode`):
    // this cell belongs to `result` alone, an `AsyncResult<T>` for good.
    let erased = unsafe { std::mem::transmute::<Decoder<T>, ErasedDecoder>(decode) };
    result.cell.set_decoder(erased);
    (promise, result)
}

/// A result that is already known (the task was refused before it was sent).
pub(crate) fn ready<T: DeserializeOwned>(
    task: impl Into<TaskName>,
    hub: Hub,
    outcome: Outcome,
) -> AsyncResult<T> {
    let (promise, result) = pending(task, hub, 0);
    promise.complete(outcome);
    result
}
