//! What the results of one pool share (`Hub`): its callback thread, how to
//! cancel its calls, and which process made it.

use std::sync::Arc;

use crate::callbacks::CallbackRunner;
use crate::cancel::{CancelFn, CancelOutcome};
use crate::error::Error;

/// What the results of one pool share: its callback thread, and how to
/// cancel its calls (by id, through its dispatcher). One pointer per result.
#[derive(Clone, Default)]
pub(crate) struct Hub(Arc<HubParts>);

#[derive(Default)]
struct HubParts {
    runner: CallbackRunner,
    cancel: Option<CancelFn>,
    /// The process of the pool (its id, and its fork generation: see
    /// `crate::sys::fork_generation`), for a hub made by one.
    owner: Option<(u32, u64)>,
}

impl Hub {
    /// A hub whose calls `cancel` cancels, made by a pool in this process.
    pub(crate) fn new(cancel: CancelFn) -> Hub {
        Hub(Arc::new(HubParts {
            runner: CallbackRunner::default(),
            cancel: Some(cancel),
            owner: Some((std::process::id(), crate::sys::fork_generation())),
        }))
    }

    /// The error for a call of task `task`, or a wait on its result, in a
    /// copy of the pool's process made by `fork`: the copy shares the
    /// pool's workers but none of its threads, so a call sent from there
    /// could take a reply meant for the parent, and no outcome ever arrives
    /// there. `None` in the pool's process.
    pub(crate) fn foreign(&self, task: &str) -> Option<Error> {
        let (pid, _) = self.0.owner?;
        self.in_copy().then(|| Error::Config {
            message: format!(
                "task `{task}`: its pool was made by process {pid}, and this process ({}) is \
                 a copy of it made by fork, which shares the pool's workers but none of its \
                 threads, so no call of that pool runs and no result of it arrives here: \
                 make a new pool in this process",
                std::process::id()
            ),
        })
    }

    /// The pool's callback thread.
    pub(crate) fn runner(&self) -> &CallbackRunner {
        &self.0.runner
    }

    /// Whether this is a copy of the pool's process made by `fork` (one
    /// atomic load: see `crate::sys::fork_generation`).
    pub(crate) fn in_copy(&self) -> bool {
        self.0
            .owner
            .is_some_and(|(_, generation)| generation != crate::sys::fork_generation())
    }

    /// Cancels call `id` (a hub without a canceller has nothing to cancel,
    /// nor one in a copy made by `fork`: the call, its queue and its worker
    /// are the parent's).
    pub(crate) fn cancel(&self, id: u64) -> CancelOutcome {
        if self.in_copy() {
            return CancelOutcome::Finished;
        }
        match &self.0.cancel {
            Some(cancel) => cancel(id),
            None => CancelOutcome::Finished,
        }
    }
}
