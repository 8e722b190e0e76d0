//! The pool's callback thread: runs `callback` / `error_callback` closures in
//! the order their results arrived, off the threads that talk to workers, so
//! a slow callback never holds a worker up.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Set on callback threads: a callback that joins its pool (or drops its
    /// last handle) must not wait for the callback thread, i.e. for itself.
    static ON_CALLBACK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A handle to one pool's callback thread, started on first use. The thread
/// ends when the pool and every `AsyncResult` of it are gone.
#[derive(Clone, Default)]
pub(crate) struct CallbackRunner(Arc<RunnerParts>);

#[derive(Default)]
struct RunnerParts {
    sender: Mutex<Option<Sender<Job>>>,
    /// Rounds of this pool's callbacks running now on any thread (another
    /// pool's callback thread may run them while it waits on the result):
    /// `flush` waits for them too.
    active: Mutex<usize>,
    /// Signalled when `active` drops to 0.
    none_active: Condvar,
}

impl CallbackRunner {
    /// Queues `job` to run on the callback thread.
    pub(crate) fn post(&self, job: Job) {
        let mut sender = self.0.sender.lock().unwrap_or_else(|e| e.into_inner());
        let tx = sender.get_or_insert_with(spawn_thread);
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            // The thread is gone (it cannot be, while we hold a sender); run
            // the callback here rather than lose it.
            run_guarded(job);
        }
    }

    /// A round of this pool's callbacks begins (on whichever thread).
    pub(crate) fn begin_round(&self) {
        *self.0.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    /// A round begun with [`begin_round`](Self::begin_round) ended.
    pub(crate) fn end_round(&self) {
        let mut active = self.0.active.lock().unwrap_or_else(|e| e.into_inner());
        *active -= 1;
        if *active == 0 {
            self.0.none_active.notify_all();
        }
    }

    /// Waits until every callback posted so far has run. On a callback
    /// thread it returns at once: waiting there would wait for itself (the
    /// callbacks posted before it have run; later ones still run).
    pub(crate) fn flush(&self) {
        if on_callback_thread() {
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
        let mut active = self.0.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active > 0 {
            active = self.0.none_active.wait(active).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn spawn_thread() -> Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("procpool-callbacks".into())
        .spawn(move || {
            ON_CALLBACK_THREAD.with(|c| c.set(true));
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

/// Whether this thread is a pool's callback thread.
pub(crate) fn on_callback_thread() -> bool {
    ON_CALLBACK_THREAD.with(|c| c.get())
}

/// Runs a callback, logging (not propagating) its panic.
pub(crate) fn run_guarded(job: Job) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
        crate::unwind::discard(payload);
        log::warn!(target: "procpool", "a result callback panicked; the pool carries on");
    }
}
