//! The pool's callback thread: runs `callback` / `error_callback` closures in
//! the order their results arrived, off the threads that talk to workers, so
//! a slow callback never holds a worker up.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// On a callback thread, the id of the runner it belongs to (0
    /// elsewhere): a callback that joins its own pool (or drops its last
    /// handle) must not wait for its callback thread, i.e. for itself.
    static CALLBACK_THREAD_OF: Cell<usize> = const { Cell::new(0) };
    /// The runners whose rounds this thread is running now (one entry per
    /// round): a `flush` of one of them does not wait for its own rounds.
    static ROUNDS_HERE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A handle to one pool's callback thread, started on first use. The thread
/// ends when the pool and every `AsyncResult` of it are gone.
#[derive(Clone)]
pub(crate) struct CallbackRunner(Arc<RunnerParts>);

impl Default for CallbackRunner {
    fn default() -> CallbackRunner {
        // Never 0, never reused (not an address, which a later runner may
        // take while a finished runner's thread still ends).
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        CallbackRunner(Arc::new(RunnerParts {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            ..RunnerParts::default()
        }))
    }
}

#[derive(Default)]
struct RunnerParts {
    /// Which runner this is (see `CALLBACK_THREAD_OF`).
    id: usize,
    sender: Mutex<Option<Sender<Job>>>,
    /// Rounds of this pool's callbacks running now on any thread (another
    /// pool's callback thread may run them while it waits on the result):
    /// `flush` waits for them too.
    active: Mutex<usize>,
    /// Signalled when `active` drops.
    fewer_active: Condvar,
}

impl CallbackRunner {
    /// Queues `job` to run on the callback thread.
    pub(crate) fn post(&self, job: Job) {
        let mut sender = self.0.sender.lock().unwrap_or_else(|e| e.into_inner());
        let tx = sender.get_or_insert_with(|| spawn_thread(self.0.id));
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            // The thread is gone (it cannot be, while we hold a sender); run
            // the callback here rather than lose it.
            run_guarded(job);
        }
    }

    /// A round of this pool's callbacks begins (on whichever thread).
    pub(crate) fn begin_round(&self) {
        *self.0.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        // (`try_with`: a thread-local may be gone while a thread ends, and
        // a pool kept in one may be dropped then.)
        let _ = ROUNDS_HERE.try_with(|r| r.borrow_mut().push(self.0.id));
    }

    /// A round begun with [`begin_round`](Self::begin_round) ended.
    pub(crate) fn end_round(&self) {
        let _ = ROUNDS_HERE.try_with(|r| {
            let mut rounds = r.borrow_mut();
            if let Some(at) = rounds.iter().rposition(|&id| id == self.0.id) {
                rounds.remove(at);
            }
        });
        let mut active = self.0.active.lock().unwrap_or_else(|e| e.into_inner());
        *active -= 1;
        // (Every time: a `flush` on a thread running rounds of its own
        // waits for fewer than all of them.)
        self.0.fewer_active.notify_all();
    }

    /// Waits until every callback posted so far has run. On this runner's
    /// own callback thread it returns at once: waiting there would wait for
    /// itself (the callbacks posted before it have run; later ones still
    /// run). On another pool's callback thread it waits like anywhere else,
    /// but for the rounds of this runner's callbacks that this very thread
    /// is running (it runs the callbacks of a result it waits on).
    pub(crate) fn flush(&self) {
        if CALLBACK_THREAD_OF.with(Cell::get) == self.0.id {
            return;
        }
        let started = self
            .0
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !started {
            return;
        }
        let (tx, rx) = mpsc::channel::<()>();
        self.post(Box::new(move || {
            let _ = tx.send(());
        }));
        let _ = rx.recv();
        // Callbacks another pool's callback thread took over (it waited on
        // their result) may still run there.
        let here = ROUNDS_HERE
            .try_with(|r| r.borrow().iter().filter(|&&id| id == self.0.id).count())
            .unwrap_or(0);
        let mut active = self.0.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active > here {
            active = self
                .0
                .fewer_active
                .wait(active)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Starts the callback thread of runner `id`.
fn spawn_thread(id: usize) -> Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("procpool-callbacks".into())
        .spawn(move || {
            CALLBACK_THREAD_OF.with(|c| c.set(id));
            for job in rx {
                run_guarded(job);
            }
        });
    if let Err(e) = spawned {
        // Without a thread the receiver is dropped and `post` runs jobs inline.
        log::error!(
            target: "procpool",
            "could not start the callback thread ({e}); callbacks run inline"
        );
    }
    tx
}

/// Whether this thread is a pool's callback thread (any pool's).
pub(crate) fn on_callback_thread() -> bool {
    CALLBACK_THREAD_OF.with(Cell::get) != 0
}

/// Runs a job of the callback thread, logging (not propagating) its panic.
/// (A user's callback inside it is guarded on its own: see
/// [`run_callback`].)
pub(crate) fn run_guarded(job: Job) {
    run_logged(&"a job of the callback thread", job);
}

/// Runs one user callback of a result of `task`: its panic is caught and
/// reported as a `log` event (warning, target `procpool`) with the task's
/// name and the panic's message, never propagated, so the callbacks after
/// it still run and the result still completes.
pub(crate) fn run_callback(task: &str, callback: impl FnOnce()) {
    run_logged(&format_args!("a callback of task `{task}`"), callback);
}

/// Runs `f`; a panic is caught, logged as a warning naming `what` and the
/// panic's message, and dropped.
fn run_logged(what: &dyn std::fmt::Display, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let message = crate::unwind::message(&*payload)
            .unwrap_or("a panic without a message")
            .to_string();
        crate::unwind::discard(payload);
        log::warn!(target: "procpool", "{what} panicked: {message}; the pool carries on");
    }
}
