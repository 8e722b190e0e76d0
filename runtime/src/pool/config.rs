//! [`Config`]: a pool's settings once checked, the one place they live.
//! Every part of a pool reads them from here.

use std::time::Duration;

use super::initializer::Initializer;
use crate::link::Limits;

/// A pool's settings, checked by [`PoolBuilder::build`].
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Number of worker processes.
    pub(crate) processes: usize,
    pub(crate) max_frame: usize,
    /// The time limit of calls made through a handle that does not set its own.
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_child: Option<usize>,
    /// Resident bytes past which a worker is retired after its task.
    pub(crate) max_memory_per_child: Option<u64>,
    pub(crate) start_timeout: Duration,
    /// How long a frame may stop flowing before its worker is dropped.
    pub(crate) stall_timeout: Duration,
    pub(crate) initializer: Option<Initializer>,
}

impl Config {
    /// What a worker is started with.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_frame: self.max_frame,
            start_timeout: self.start_timeout,
            stall_timeout: self.stall_timeout,
        }
    }
}
