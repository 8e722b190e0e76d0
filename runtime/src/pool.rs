//! `Pool`: the queue of jobs, the slots that run them, and the pool's life
//! cycle (`close`, `join`, `terminate`, drop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, KillSwitch, Link};
use crate::callbacks::CallbackRunner;
use crate::error::Error;
use crate::initializer::Initializer;
use crate::pipeline::{self, Durations};
use crate::process::ProcessBackend;
use crate::result::{self, AsyncResult, Promise};
use crate::{codec, dispatch, initializer, registry, wire};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Tasks are `#[pool_task]` functions, submitted with the generated
/// `apply_<fn>` (blocking) and `apply_async_<fn>` (returns an
/// [`AsyncResult`]). They queue in order and each goes to whichever worker is
/// free first. A blocking call that finds the queue empty and a worker idle
/// runs on that worker straight from the calling thread; many small queued
/// tasks go to busy workers in batches (see the crate's "Speed" notes).
///
/// Dropping a pool closes it and waits for the work already queued, like
/// [`close`](Self::close) then [`join`](Self::join). A `Pool` is a handle:
/// [`with_task_timeout`](Self::with_task_timeout) makes more handles to the
/// same workers and queue, and only dropping the last one closes and joins.
///
/// ```
/// use procpool::{pool_task, Pool};
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     assert_eq!(apply_square(&pool, 4)?, 16);
///     let pending: Vec<_> = (0..4).map(|x| apply_async_square(&pool, x)).collect();
///     let squares: Result<Vec<u64>, _> = pending.into_iter().map(|r| r.get()).collect();
///     assert_eq!(squares?, [0, 1, 4, 9]);
///     pool.close();
///     pool.join();
///     Ok(())
/// }
/// ```
pub struct Pool {
    inner: Arc<Inner>,
    /// The time limit of tasks submitted through this handle.
    task_timeout: Option<Duration>,
}

/// What every handle of one pool shares; dropping it closes and joins.
struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
    /// Signalled when the slot threads have all been joined.
    joined: Condvar,
}

/// The slot threads, and how far joining them has got: the first `join`
/// joins them; any other `join` meanwhile waits for it (and all then wait
/// for the callbacks), so no caller returns before the work is done.
#[derive(Default)]
struct Threads {
    handles: Vec<JoinHandle<()>>,
    joining: bool,
    joined: bool,
}

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
    config: Config,
    /// Why the initializer's arguments could not be encoded, reported by `build`.
    initializer_error: Option<Error>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_frame: usize,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) start_timeout: Duration,
    pub(crate) initializer: Option<Initializer>,
}

impl PoolBuilder {
    /// Number of worker processes (default: the available parallelism).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Largest frame either side sends or accepts, in bytes (default 256 MiB,
    /// at least 1 KiB: [`build`](Self::build) refuses less with
    /// [`Error::Config`]). A task whose arguments or result need more fails
    /// with [`Error::FrameTooLarge`].
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes;
        self
    }

    /// Time limit for every task (default: none). A task past it fails with
    /// [`Error::Timeout`], and its worker is killed and replaced.
    /// [`Pool::with_task_timeout`] overrides it for the calls made through
    /// another handle.
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.config.task_timeout = Some(limit);
        self
    }

    /// Replace each worker after it has run `n` tasks (Python's
    /// `maxtasksperchild`), e.g. to bound leaks in the code it runs.
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.config.max_tasks_per_child = Some(n);
        self
    }

    /// How long a new worker may take to report ready (default 60 s).
    pub fn start_timeout(mut self, limit: Duration) -> Self {
        self.config.start_timeout = limit;
        self
    }

    /// Runs the task registered as `task` once in each worker when it
    /// starts, before its first task (Python's `initializer` and
    /// `initargs`). `args` is the tuple of its arguments: `&(a, b)`, `&(a,)`
    /// or `&()`, with owned types as for
    /// [`apply_by_name`](Pool::apply_by_name) (`String` for `&str`). The
    /// types are checked against the task's when the pool is built, so other
    /// types fail there instead of being decoded as garbage. A worker is
    /// ready only once its initializer returned; if it
    /// panics or cannot run, [`build`](Self::build) fails with
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
    pub fn initializer<A: Serialize + ?Sized>(mut self, task: &str, args: &A) -> Self {
        match codec::encode(args) {
            Ok(args) => {
                let signature = crate::by_name::signature::<A, ()>();
                let arg_types = signature
                    .split_once(" -> ")
                    .map_or(signature.clone(), |(a, _)| a.to_string());
                self.config.initializer = Some(Initializer::new(task, args, arg_types));
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

    /// Starts the workers and waits until every one is ready.
    pub fn build(self) -> Result<Pool, Error> {
        if !crate::is_initialized() {
            return Err(Error::NotInitialized);
        }
        registry::validate()?;
        if let Some(e) = self.initializer_error {
            return Err(e);
        }
        if let Some(init) = &self.config.initializer {
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
        let processes = self
            .processes
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let config = self.config;
        if processes == 0 {
            return Err(Error::Config {
                message: "a pool needs at least one process".into(),
            });
        }
        if config.max_frame < wire::MIN_MAX_FRAME {
            return Err(Error::Config {
                message: format!(
                    "max_frame_bytes must be at least {} (got {})",
                    wire::MIN_MAX_FRAME,
                    config.max_frame
                ),
            });
        }
        if let Some(init) = &config.initializer {
            if init.task().len() > wire::MAX_NAME_LEN {
                return Err(Error::Config {
                    message: format!(
                        "the initializer's name is {} bytes; at most {} fit in a call",
                        init.task().len(),
                        wire::MAX_NAME_LEN
                    ),
                });
            }
        }
        if config.max_tasks_per_child == Some(0) {
            return Err(Error::Config {
                message: "max_tasks_per_child must be at least 1".into(),
            });
        }
        let backend = ProcessBackend::new(config.max_frame, config.start_timeout);
        Pool::start(Box::new(backend), config, processes)
    }
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            processes: None,
            config: Config {
                max_frame: wire::DEFAULT_MAX_FRAME,
                task_timeout: None,
                max_tasks_per_child: None,
                start_timeout: Duration::from_secs(60),
                initializer: None,
            },
            initializer_error: None,
        }
    }
}

/// A queued task.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) task: Arc<str>,
    pub(crate) fingerprint: u64,
    pub(crate) signature: &'static str,
    pub(crate) args: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) promise: Promise,
    /// A chunk of a map: sent as CALL_BATCH, answered with RESULTS.
    pub(crate) batch: bool,
}

/// What a direct call (`apply_<fn>`) carries besides its arguments.
pub(crate) struct DirectCall {
    pub(crate) task: &'static str,
    pub(crate) fingerprint: u64,
    pub(crate) signature: &'static str,
    pub(crate) timeout: Option<Duration>,
}

/// What a task submission carries besides its arguments.
pub(crate) struct TaskCall {
    pub(crate) task: Arc<str>,
    pub(crate) fingerprint: u64,
    pub(crate) signature: &'static str,
    pub(crate) timeout: Option<Duration>,
    /// A chunk of a map (see [`Job::batch`]).
    pub(crate) batch: bool,
}

/// What a slot thread is to do next.
pub(crate) enum Next {
    /// Run the jobs put in the batch.
    Jobs,
    /// Nothing came for a while: check the idle worker (`lost`: a caller
    /// lost the worker it borrowed from this slot).
    Idle { lost: bool },
    /// The pool is closed and drained, or terminated.
    Stop,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    terminated: bool,
    slots: Vec<SlotState>,
}

/// Where a slot's worker is while its thread is not running a job.
enum Parked {
    /// The slot thread holds its worker and runs a job.
    Busy,
    /// The slot thread waits for a job; its worker (if it has one) is here,
    /// where a caller of `apply` may borrow it.
    Idle(Option<Box<dyn Link>>),
    /// A caller borrowed the worker for one direct call.
    Lent,
}

/// What a direct call found.
enum Borrow {
    /// The pool is closed.
    Closed,
    /// No idle worker, or jobs are queued: the call queues too.
    Queue,
    /// Slot `.0`'s idle worker, lent to the caller.
    Worker(usize, Box<dyn Link>),
}

struct SlotState {
    parked: Parked,
    /// Woken for a queued job and not yet looked at the queue.
    signalled: bool,
    /// Tasks its current worker has run (for `max_tasks_per_child`).
    served: usize,
    /// A caller lost the worker it borrowed (the slot thread, when idle,
    /// starts a replacement).
    lost: bool,
}

/// State shared by the pool handle and its slot threads.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// One per slot: its thread waits on it for a job or its lent worker.
    wake: Vec<Condvar>,
    switches: Vec<Arc<KillSwitch>>,
    backend: Box<dyn Backend>,
    pub(crate) config: Config,
    runner: CallbackRunner,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks slot `index`'s worker (if any) and waits for the oldest queued
    /// job; puts it in `batch`, followed by as many more as may be pipelined
    /// with it (see [`pipeline`]), and the worker back in `worker`
    /// ([`Next::Jobs`]). [`Next::Idle`] (with the worker back in `worker`)
    /// if no job came within `idle`, so the slot can check on its idle
    /// worker; [`Next::Stop`] once the pool is closed and drained, or
    /// terminated, and the worker is not lent out.
    pub(crate) fn next_jobs(
        &self,
        index: usize,
        worker: &mut Option<Box<dyn Link>>,
        durations: &Durations,
        batch: &mut Vec<Job>,
        idle: Duration,
    ) -> Next {
        let mut queue = self.lock();
        queue.slots[index].parked = Parked::Idle(worker.take());
        let mut waited_out = false;
        loop {
            let queue_ref = &mut *queue;
            let slot = &mut queue_ref.slots[index];
            slot.signalled = false;
            if !matches!(slot.parked, Parked::Lent) {
                let next = if queue_ref.terminated {
                    Next::Stop
                } else if let Some(job) = queue_ref.jobs.pop_front() {
                    // Map chunks are batches already: never pipelined.
                    let mut window = if job.batch {
                        1
                    } else {
                        durations.window(&job.task)
                    };
                    let mut bytes = job.args.len();
                    batch.push(job);
                    if window > 1 {
                        let idle = queue_ref
                            .slots
                            .iter()
                            .filter(|s| matches!(s.parked, Parked::Idle(_)))
                            .count()
                            - 1;
                        let left = self
                            .config
                            .max_tasks_per_child
                            .map(|max| max.saturating_sub(queue_ref.slots[index].served));
                        window =
                            window.min(1 + pipeline::extra_jobs(queue_ref.jobs.len(), idle, left));
                    }
                    while batch.len() < window {
                        let Some(next) = queue_ref.jobs.front() else {
                            break;
                        };
                        bytes += next.args.len();
                        if bytes > pipeline::BYTE_BUDGET
                            || next.batch
                            || durations.window(&next.task) < 2
                        {
                            break;
                        }
                        batch.extend(queue_ref.jobs.pop_front());
                    }
                    Next::Jobs
                } else if queue_ref.closed {
                    Next::Stop
                } else if waited_out || queue_ref.slots[index].lost {
                    Next::Idle {
                        lost: std::mem::take(&mut queue_ref.slots[index].lost),
                    }
                } else {
                    let (guard, timeout) = self.wake[index]
                        .wait_timeout(queue, idle)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = guard;
                    waited_out = timeout.timed_out();
                    continue;
                };
                let slot = &mut queue_ref.slots[index];
                if let Parked::Idle(link) = std::mem::replace(&mut slot.parked, Parked::Busy) {
                    *worker = link;
                }
                return next;
            }
            // The worker is lent to a caller: wait for it. Not for ever: a
            // worker given back idle (no notification) must still be
            // checked every `idle`, so that one that dies then is reaped and
            // replaced at once, not at the next job.
            let (guard, _) = self.wake[index]
                .wait_timeout(queue, idle)
                .unwrap_or_else(|e| e.into_inner());
            queue = guard;
        }
    }

    /// Puts jobs that never started back at the front of the queue, in order.
    pub(crate) fn requeue(&self, jobs: impl DoubleEndedIterator<Item = Job>) {
        let mut queue = self.lock();
        if queue.terminated {
            // Dropped, their promises fail them as terminated.
            return;
        }
        for job in jobs.rev() {
            queue.jobs.push_front(job);
        }
        self.wake_one(&mut queue);
    }

    /// Counts a task run by slot `index`'s worker; `true` if the worker has
    /// now run as many as `max_tasks_per_child` allows.
    pub(crate) fn served(&self, index: usize, n: usize) -> bool {
        let mut queue = self.lock();
        let slot = &mut queue.slots[index];
        slot.served += n;
        self.config
            .max_tasks_per_child
            .is_some_and(|max| slot.served >= max)
    }

    /// Slot `index` has a new worker (or none).
    pub(crate) fn reset_served(&self, index: usize) {
        self.lock().slots[index].served = 0;
    }

    /// Wakes one slot thread that waits for work and is not already woken.
    fn wake_one(&self, queue: &mut Queue) {
        for (index, slot) in queue.slots.iter_mut().enumerate() {
            if matches!(slot.parked, Parked::Idle(_)) && !slot.signalled {
                slot.signalled = true;
                self.wake[index].notify_one();
                return;
            }
        }
    }

    fn wake_all(&self) {
        for wake in &self.wake {
            wake.notify_all();
        }
    }

    /// Borrows an idle worker for a direct call, if the queue is empty (a
    /// direct call never overtakes queued jobs) and a worker is idle.
    fn borrow_idle(&self) -> Borrow {
        let mut queue = self.lock();
        if queue.closed {
            return Borrow::Closed;
        }
        if !queue.jobs.is_empty() {
            return Borrow::Queue;
        }
        for (index, slot) in queue.slots.iter_mut().enumerate() {
            if matches!(slot.parked, Parked::Idle(Some(_))) {
                if let Parked::Idle(Some(link)) = std::mem::replace(&mut slot.parked, Parked::Lent)
                {
                    return Borrow::Worker(index, link);
                }
            }
        }
        Borrow::Queue
    }

    /// Gives a borrowed worker back to slot `index` (`None`: it is gone and
    /// the slot thread starts another when it next needs one).
    fn give_back(&self, index: usize, link: Option<Box<dyn Link>>, counted: bool) {
        let retired = {
            let mut queue = self.lock();
            let slot = &mut queue.slots[index];
            let mut link = link;
            let mut retired = None;
            if link.is_some() && counted {
                slot.served += 1;
                if self
                    .config
                    .max_tasks_per_child
                    .is_some_and(|max| slot.served >= max)
                {
                    retired = link.take();
                }
            }
            if link.is_none() {
                slot.served = 0;
                slot.lost = true;
            }
            let lost = link.is_none();
            slot.parked = Parked::Idle(link);
            // A slot thread waits for its worker to come back, for the jobs
            // queued meanwhile, and to replace a worker the caller lost.
            let wanted = lost || !queue.jobs.is_empty() || queue.closed || queue.terminated;
            if wanted {
                queue.slots[index].signalled = true;
                self.wake[index].notify_one();
            }
            retired
        };
        dispatch::retire(retired);
    }

    /// Whether the pool may still run work: not terminated, and not closed
    /// with an empty queue.
    pub(crate) fn wants_workers(&self) -> bool {
        let queue = self.lock();
        !(queue.terminated || (queue.closed && queue.jobs.is_empty()))
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.lock().terminated
    }

    /// Starts a worker for slot `index` and runs the pool's initializer in
    /// it, if any: the worker is ready only once that returned.
    pub(crate) fn start_worker(&self, index: usize) -> Result<Box<dyn Link>, Error> {
        let link = self.backend.start(&self.switches[index])?;
        match &self.config.initializer {
            Some(init) => initializer::run(link, init, self.config.start_timeout),
            None => Ok(link),
        }
    }
}

impl Pool {
    /// A pool of `processes` workers; short for
    /// `Pool::builder().processes(processes).build()`.
    ///
    /// ```
    /// # fn main() -> Result<(), procpool::Error> {
    /// procpool::init();
    /// let pool = procpool::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok(()) }
    /// ```
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A [`PoolBuilder`] with default settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn start(backend: Box<dyn Backend>, config: Config, processes: usize) -> Result<Pool, Error> {
        let task_timeout = config.task_timeout;
        let slots = (0..processes)
            .map(|_| SlotState {
                parked: Parked::Busy,
                signalled: false,
                served: 0,
                lost: false,
            })
            .collect();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                slots,
                ..Queue::default()
            }),
            wake: (0..processes).map(|_| Condvar::new()).collect(),
            switches: (0..processes).map(|_| Arc::default()).collect(),
            backend,
            config,
            runner: CallbackRunner::default(),
            next_id: AtomicU64::new(1),
        });
        let pool = Pool {
            inner: Arc::new(Inner {
                shared: shared.clone(),
                threads: Mutex::default(),
                joined: Condvar::new(),
            }),
            task_timeout,
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..processes {
            let shared = shared.clone();
            let ready = ready_tx.clone();
            // Each slot thread starts its own workers: the kernel's
            // parent-death signal is tied to the thread that forks, and this
            // thread lives exactly as long as the slot.
            let spawned = std::thread::Builder::new()
                .name(format!("procpool-slot-{index}"))
                .spawn(move || match shared.start_worker(index) {
                    Ok(link) => {
                        let _ = ready.send(Ok(()));
                        dispatch::run_slot(shared, index, link);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                });
            match spawned {
                Ok(handle) => pool.inner.threads().handles.push(handle),
                Err(e) => {
                    pool.terminate();
                    return Err(Error::io("could not start a pool thread", e));
                }
            }
        }
        drop(ready_tx);
        let mut first_error = None;
        for _ in 0..processes {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        match first_error {
            Some(e) => {
                pool.terminate();
                Err(e)
            }
            None => Ok(pool),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Number of worker processes.
    pub fn processes(&self) -> usize {
        self.shared().switches.len()
    }

    /// Another handle to this pool (same workers, same queue) whose tasks
    /// have the time limit `limit` instead of the pool-wide one (`None`: no
    /// limit). Pass it to the generated functions like the pool itself:
    /// `apply_f(&pool.with_task_timeout(Some(d)), x)`. A task past its limit
    /// fails with [`Error::Timeout`] and its worker is killed and replaced.
    ///
    /// The handles share one life cycle: `close`, `join` and `terminate` on
    /// any of them act on the whole pool, and the pool is closed and joined
    /// when the last handle is dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use procpool::{pool_task, Error, Pool};
    ///
    /// #[pool_task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// fn main() -> Result<(), procpool::Error> {
    ///     procpool::init();
    ///     let pool = Pool::new(1)?;
    ///     let impatient = pool.with_task_timeout(Some(Duration::from_millis(100)));
    ///     assert!(matches!(apply_nap(&impatient, 10_000), Err(Error::Timeout { .. })));
    ///     assert_eq!(apply_nap(&pool, 1)?, 1); // a new worker took over
    ///     Ok(())
    /// }
    /// ```
    pub fn with_task_timeout(&self, limit: Option<Duration>) -> Pool {
        Pool {
            inner: self.inner.clone(),
            task_timeout: limit,
        }
    }

    /// The largest frame the pool sends or accepts.
    pub(crate) fn max_frame(&self) -> usize {
        self.shared().config.max_frame
    }

    /// The pool's callback thread, for results made outside [`Pool::submit`].
    pub(crate) fn runner(&self) -> CallbackRunner {
        self.shared().runner.clone()
    }

    /// Queues a call; used by the generated `apply_async_<fn>`.
    pub(crate) fn submit<R: DeserializeOwned>(
        &self,
        call: TaskCall,
        args: Result<Vec<u8>, String>,
    ) -> AsyncResult<R> {
        let shared = self.shared();
        let runner = shared.runner.clone();
        if let Err(error) = check_name(&call.task) {
            return result::ready(call.task, runner, Err(error));
        }
        let args = match args {
            Ok(args) => args,
            Err(message) => {
                let error = Error::Encode {
                    task: call.task.to_string(),
                    what: "arguments",
                    message,
                };
                return result::ready(call.task, runner, Err(error));
            }
        };
        let (promise, result) = result::pending(call.task.clone(), runner);
        let job = Job {
            id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            task: call.task,
            fingerprint: call.fingerprint,
            signature: call.signature,
            args,
            timeout: call.timeout.or(self.task_timeout),
            promise,
            batch: call.batch,
        };
        let mut queue = shared.lock();
        if queue.closed {
            drop(queue);
            let task = job.promise.task().to_string();
            job.promise.complete(Err(Error::PoolClosed { task }));
        } else {
            queue.jobs.push_back(job);
            shared.wake_one(&mut queue);
        }
        result
    }

    /// Runs a call and waits for its result; used by the generated
    /// `apply_<fn>`. When the queue is empty and a worker is idle, the
    /// calling thread talks to that worker itself (no hand-off to a slot
    /// thread and back); otherwise the call queues like `apply_async`.
    pub(crate) fn call<R: DeserializeOwned>(
        &self,
        call: DirectCall,
        args: Result<Vec<u8>, String>,
        decode: fn(&[u8]) -> Result<R, String>,
    ) -> Result<R, Error> {
        check_name(call.task)?;
        let args = match args {
            Ok(args) => args,
            Err(message) => {
                return Err(Error::Encode {
                    task: call.task.to_string(),
                    what: "arguments",
                    message,
                })
            }
        };
        let timeout = call.timeout.or(self.task_timeout);
        let borrowed = self.shared().borrow_idle();
        if let Borrow::Closed = borrowed {
            return Err(Error::PoolClosed {
                task: call.task.to_string(),
            });
        }
        if let Borrow::Worker(index, link) = borrowed {
            let id = self.shared().next_id.fetch_add(1, Ordering::Relaxed);
            let request = dispatch::Call {
                batch: false,
                id,
                task: call.task,
                fingerprint: call.fingerprint,
                signature: call.signature,
                args: &args,
                timeout,
            };
            match dispatch::run_direct(self.shared(), link, &request) {
                dispatch::Direct::Done(outcome, link) => {
                    let counted = link.is_some();
                    self.shared().give_back(index, link, counted);
                    // Both large buffers serve this thread's next call.
                    wire::recycle(args);
                    let value = match &outcome {
                        Ok(bytes) => decode(bytes).map_err(|message| Error::Decode {
                            task: call.task.to_string(),
                            what: "result",
                            message,
                        }),
                        Err(e) => Err(e.clone()),
                    };
                    if let Ok(body) = outcome {
                        wire::recycle(body.into_buf());
                    }
                    return value;
                }
                // The idle worker had died: the slot thread replaces it and
                // runs the call, queued as usual. Unless it was killed by a
                // terminate racing this call: then the call fails as
                // terminated, like one in flight (not as a call after it).
                dispatch::Direct::Undelivered => {
                    self.shared().give_back(index, None, false);
                    if self.shared().is_terminated() {
                        return Err(Error::Terminated {
                            task: call.task.to_string(),
                        });
                    }
                }
            }
        }
        let task_call = TaskCall {
            task: Arc::from(call.task),
            fingerprint: call.fingerprint,
            signature: call.signature,
            timeout: call.timeout,
            batch: false,
        };
        self.submit(task_call, Ok(args)).get()
    }

    /// Accepts no more tasks (Python's `close()`). Queued tasks still run.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Waits until every queued task has run, every worker has exited and
    /// every callback has run (Python's `join()`). Closes the pool first, so
    /// it cannot wait forever for tasks that will never come.
    pub fn join(&self) {
        self.inner.join();
    }

    /// Stops now (Python's `terminate()`): workers are killed, and every task
    /// not finished fails with [`Error::Terminated`]. Returns once every
    /// worker is reaped.
    pub fn terminate(&self) {
        let shared = self.shared();
        let dropped = {
            let mut queue = shared.lock();
            queue.terminated = true;
            queue.closed = true;
            std::mem::take(&mut queue.jobs)
        };
        shared.wake_all();
        // Each promise fails its task as it drops.
        drop(dropped);
        for switch in &shared.switches {
            // Also refuses later starts: a slot that finds its worker gone
            // must not start a new one and run its task after terminate.
            switch.close_and_kill();
        }
        self.join();
    }
}

impl Inner {
    fn threads(&self) -> MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake_all();
    }

    fn join(&self) {
        self.close();
        let mut threads = self.threads();
        if threads.joining {
            // Another caller is joining the slot threads: wait for it.
            while !threads.joined {
                threads = self.joined.wait(threads).unwrap_or_else(|e| e.into_inner());
            }
            drop(threads);
        } else {
            threads.joining = true;
            let handles = std::mem::take(&mut threads.handles);
            drop(threads);
            for handle in handles {
                let _ = handle.join();
            }
            self.threads().joined = true;
            self.joined.notify_all();
        }
        self.shared.runner.flush();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.join();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.shared().lock();
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("queued", &queue.jobs.len())
            .field("closed", &queue.closed)
            .field("terminated", &queue.terminated)
            .field("task_timeout", &self.task_timeout)
            .finish()
    }
}

/// A name the wire cannot carry whole is refused, not cut short.
fn check_name(task: &str) -> Result<(), Error> {
    if task.len() <= wire::MAX_NAME_LEN {
        return Ok(());
    }
    Err(Error::Encode {
        task: task.to_string(),
        what: "task name",
        message: format!(
            "the task name is {} bytes; at most {} fit in a call",
            task.len(),
            wire::MAX_NAME_LEN
        ),
    })
}
