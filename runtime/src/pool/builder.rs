//! [`PoolBuilder`]: a pool's settings as the user gives them, checked into
//! a [`Config`] when the pool is built.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::Config;
use super::initializer::Initializer;
use super::local::LocalPool;
use super::Pool;
use crate::error::Error;
use crate::process::ProcessBackend;
use crate::{codec, process, registry, task, wire};

/// The most worker processes a pool may have.
pub(crate) const MAX_PROCESSES: usize = 4096;

/// Configures a [`Pool`]; made by [`Pool::builder`].
///
/// ```
/// # fn main() -> Result<(), procpool::Error> {
/// # procpool::init();
/// use std::time::Duration;
/// let pool = procpool::Pool::builder()
///     .processes(2)
///     .task_timeout(Duration::from_secs(60))
///     .max_tasks_per_child(1000)
///     .build()?;
/// # drop(pool);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    processes: Option<usize>,
    /// `None`: the default, which depends on where calls go.
    pub(super) max_frame: Option<usize>,
    task_timeout: Option<Duration>,
    max_tasks_per_child: Option<usize>,
    max_memory_per_child: Option<u64>,
    start_timeout: Duration,
    stall_timeout: Duration,
    initializer: Option<Initializer>,
    /// Why the initializer's arguments could not be encoded, reported by `build`.
    initializer_error: Option<Error>,
    /// Redis settings: calls go to nodes instead of local workers.
    pub(super) remote: Option<super::remote::RemoteBuilder>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            processes: None,
            max_frame: None,
            task_timeout: None,
            max_tasks_per_child: None,
            max_memory_per_child: None,
            start_timeout: Duration::from_secs(60),
            stall_timeout: Self::DEFAULT_FRAME_STALL_TIMEOUT,
            initializer: None,
            initializer_error: None,
            remote: None,
        }
    }
}

impl PoolBuilder {
    /// Number of worker processes (default: the available parallelism, at
    /// most 4096); 1 to 4096, else [`build`](Self::build) returns
    /// [`Error::Config`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder().processes(2).build()?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Largest frame either side sends or accepts, in bytes (default 4 GiB;
    /// 256 MiB for a pool built with `redis()` and a node's local pool, as
    /// Redis keeps each value whole; at least 1 KiB: [`build`](Self::build)
    /// refuses less with [`Error::Config`]). A task whose arguments or result need more fails
    /// with [`Error::FrameTooLarge`]. The limit is for a call as `apply_<fn>`
    /// sends it and its reply: a map's chunk may go the few bytes of its
    /// framing (at most 32) over it, so a map of an item runs wherever
    /// `apply_<fn>` of it does (with a local pool; one built with `redis()`
    /// holds a chunk to the limit itself). The channel streams frames of any size
    /// and never trusts an announced length, so the limit is yours to set,
    /// not a safety margin.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .processes(1)
    ///     .max_frame_bytes(16 << 20) // 16 MiB each way
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame = Some(bytes);
        self
    }

    /// Time limit for every task (default: none). A task past it fails with
    /// [`Error::Timeout`], and its worker is killed and replaced. In a map
    /// the limit is for each item, however many a chunk holds (an item is
    /// stopped between 1 and 1⅛ times the limit after it started); when one
    /// item runs over, the rest of its chunk goes with the worker and fails
    /// with `Timeout` too (`chunksize(1)` keeps that to the one item).
    /// [`Pool::with_task_timeout`] overrides it for the calls made through
    /// another handle. A zero limit is refused by [`build`](Self::build)
    /// ([`Error::Config`]): no task could ever finish.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .processes(1)
    ///     .task_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Replace each worker after it has run `n` tasks (Python's
    /// `maxtasksperchild`), e.g. to bound leaks in the code it runs.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .processes(2)
    ///     .max_tasks_per_child(100) // a fresh worker every 100 tasks
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Replace a worker whose resident memory (RSS) exceeds `bytes` after a
    /// task (loky's memory-based recycling), e.g. to bound the growth of
    /// code that leaks or caches. Like
    /// [`max_tasks_per_child`](Self::max_tasks_per_child), the worker is
    /// asked to exit between tasks and a new one serves the rest: no task is
    /// lost or run twice. A task that by itself needs more still runs (the
    /// check comes after it). The check reads `/proc/<pid>/statm` once per
    /// task (or pipelined batch), and not at all when this is unset. At
    /// least 1 ([`build`](Self::build) refuses 0 with [`Error::Config`]).
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .processes(2)
    ///     .max_memory_per_child(512 << 20) // 512 MiB
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.max_memory_per_child = Some(bytes);
        self
    }

    /// How long a new worker may take to report ready (default 60 s),
    /// its [`initializer`](Self::initializer) included: an initializer
    /// still running then fails the start with [`Error::InitializerFailed`]
    /// ("it did not return within ..."), where Python waits for ever. Raise
    /// it for an initializer that loads much. [`build`](Self::build)
    /// refuses zero ([`Error::Config`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder()
    ///     .processes(1)
    ///     .start_timeout(Duration::from_secs(120)) // a slow initializer
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn start_timeout(mut self, limit: Duration) -> Self {
        self.start_timeout = limit;
        self
    }

    /// How long a frame on a worker's channel may stop flowing in the middle
    /// (default [`DEFAULT_FRAME_STALL_TIMEOUT`](Self::DEFAULT_FRAME_STALL_TIMEOUT),
    /// 10 s; [`build`](Self::build) refuses zero). A worker whose reply
    /// began and then stopped while it lived on (a task that wrote to the
    /// channel, a stopped process) is killed and replaced, and its task
    /// fails with [`Error::Protocol`]; one that stops taking in a request
    /// is killed too, and the request, which never started, runs on a new
    /// worker. Waiting for a reply to *begin* is the task's own time, bounded
    /// only by [`task_timeout`](Self::task_timeout).
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// use std::time::Duration;
    /// let pool = procpool::Pool::builder()
    ///     .processes(1)
    ///     .frame_stall_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// # drop(pool);
    /// # Ok(()) }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn frame_stall_timeout(mut self, limit: Duration) -> Self {
        self.stall_timeout = limit;
        self
    }

    /// The default of [`frame_stall_timeout`](Self::frame_stall_timeout).
    ///
    /// ```
    /// assert_eq!(
    ///     procpool::PoolBuilder::DEFAULT_FRAME_STALL_TIMEOUT,
    ///     std::time::Duration::from_secs(10)
    /// );
    /// ```
    pub const DEFAULT_FRAME_STALL_TIMEOUT: Duration = Duration::from_secs(10);

    /// Runs the task registered as `task` once in each worker when it
    /// starts, before its first task (Python's `initializer` and
    /// `initargs`). `args` is the tuple of its arguments: `&(a, b)`, `&(a,)`
    /// or `&()`, with owned types as for
    /// [`apply_by_name`](Pool::apply_by_name) (`String` for `&str`). The
    /// types are checked against the task's when the pool is built, so other
    /// types fail there instead of being decoded as garbage. A worker is
    /// ready only once its initializer returned; if it
    /// panics, returns `Err` (an initializer may return a `Result`, as
    /// Python's raises), cannot run, or runs longer than
    /// [`start_timeout`](Self::start_timeout) (default 60 s), [`build`](Self::build) fails with
    /// [`Error::InitializerFailed`], and so does a task whose replacement
    /// worker's initializer fails.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use procpool::{pool_task, Pool};
    ///
    /// static SCALE: AtomicU64 = AtomicU64::new(1);
    ///
    /// #[pool_task(name = "setup")]
    /// fn setup(scale: u64) { SCALE.store(scale, Ordering::SeqCst) }
    ///
    /// #[pool_task]
    /// fn scaled(x: u64) -> u64 { x * SCALE.load(Ordering::SeqCst) }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::builder().processes(1).initializer("setup", &(10u64,)).build()?;
    ///     assert_eq!(apply_scaled(&pool, 4)?, 40);
    ///     Ok(())
    /// }
    /// ```
    #[must_use = "the setter returns the changed builder"]
    pub fn initializer<A: Serialize + ?Sized>(mut self, task: &str, args: &A) -> Self {
        match codec::encode(args) {
            Ok(args) => {
                let signature = task::by_name_signature::<A, ()>();
                let arg_types = signature
                    .split_once(" -> ")
                    .map_or(signature.clone(), |(a, _)| a.to_string());
                self.initializer = Some(Initializer::new(task, args, arg_types));
                self.initializer_error = None;
            }
            Err(message) => {
                self.initializer_error = Some(Error::Encode {
                    task: task.to_string(),
                    what: "arguments",
                    message,
                });
            }
        }
        self
    }

    /// The settings only a pool with workers of its own has (a pool built
    /// with `redis()` has none: its nodes' local pools have them), by name.
    #[cfg(feature = "redis")]
    pub(super) fn local_only_settings(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.processes.is_some() {
            set.push("processes");
        }
        if self.max_tasks_per_child.is_some() {
            set.push("max_tasks_per_child");
        }
        if self.max_memory_per_child.is_some() {
            set.push("max_memory_per_child");
        }
        if self.initializer.is_some() || self.initializer_error.is_some() {
            set.push("initializer");
        }
        set
    }

    /// Starts the workers and waits until every one is ready.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn main() -> Result<(), procpool::Error> {
    /// # procpool::init();
    /// let pool = procpool::Pool::builder().processes(2).build()?;
    /// pool.close();
    /// pool.join();
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Pool, Error> {
        if self.remote.is_some() {
            return self.build_remote();
        }
        let config = Arc::new(self.validate()?);
        let local = LocalPool::start(config.clone(), Box::new(ProcessBackend::new()))?;
        Ok(Pool::from_dispatcher(Arc::new(local), config))
    }

    /// Checks every setting, and the initializer against its registration.
    pub(super) fn validate(self) -> Result<Config, Error> {
        if !process::is_initialized() {
            return Err(Error::NotInitialized);
        }
        registry::validate()?;
        if let Some(e) = self.initializer_error {
            return Err(e);
        }
        let config_error = |message: String| Err(Error::Config { message });
        if let Some(init) = &self.initializer {
            if init.task().len() > wire::MAX_NAME_LEN {
                return config_error(format!(
                    "the initializer's name is {} bytes; at most {} fit in a call",
                    init.task().len(),
                    wire::MAX_NAME_LEN
                ));
            }
            // Workers run this very program: a name unknown here is unknown there.
            let failed = |message: String| Error::InitializerFailed {
                task: init.task().to_string(),
                message,
                location: None,
            };
            let registration = registry::lookup(init.task()).map_err(|e| failed(e.to_string()))?;
            // Checked here: a worker would decode other types as garbage
            // (an i64 -1 read as a u64), not refuse them.
            if let Some(why) = init.type_mismatch(&(registration.by_name_signature)()) {
                return Err(failed(why));
            }
        }
        let processes = self.processes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_PROCESSES))
        });
        if processes == 0 {
            return config_error("a pool needs at least one process".into());
        }
        if processes > MAX_PROCESSES {
            return config_error(format!(
                "a pool of {processes} processes: at most {MAX_PROCESSES} (each worker is a \
                 process, a shared-memory channel and a thread of this one)"
            ));
        }
        let max_frame = self.max_frame.unwrap_or(wire::DEFAULT_MAX_FRAME);
        if max_frame < wire::MIN_MAX_FRAME {
            return config_error(format!(
                "max_frame_bytes must be at least {} (got {max_frame})",
                wire::MIN_MAX_FRAME,
            ));
        }
        if let Some(why) = self
            .initializer
            .as_ref()
            .and_then(|init| init.too_large_for(max_frame))
        {
            // Refused here: every worker start would fail so.
            return Err(Error::InitializerFailed {
                task: self
                    .initializer
                    .as_ref()
                    .map_or("", |i| i.task())
                    .to_string(),
                message: why,
                location: None,
            });
        }
        if self.start_timeout.is_zero() {
            return config_error(
                "start_timeout must be more than zero: no worker could report ready".into(),
            );
        }
        if self.stall_timeout.is_zero() {
            return config_error("frame_stall_timeout must be more than zero".into());
        }
        if self.task_timeout.is_some_and(|limit| limit.is_zero()) {
            return config_error(
                "task_timeout must be more than zero (leave it unset for no limit)".into(),
            );
        }
        if self.max_tasks_per_child == Some(0) {
            return config_error("max_tasks_per_child must be at least 1".into());
        }
        if self.max_memory_per_child == Some(0) {
            return config_error("max_memory_per_child must be at least 1 byte".into());
        }
        Ok(Config {
            processes,
            max_frame,
            task_timeout: self.task_timeout,
            max_tasks_per_child: self.max_tasks_per_child,
            max_memory_per_child: self.max_memory_per_child,
            start_timeout: self.start_timeout,
            stall_timeout: self.stall_timeout,
            initializer: self.initializer,
            #[cfg(feature = "redis")]
            remote: None,
        })
    }
}
