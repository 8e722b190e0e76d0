//! The local dispatcher: a queue served by one slot thread per worker
//! process ([`super::slot`]), plus `apply`'s fast path, on which the calling
//! thread borrows an idle worker and does the exchange itself.

use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::config::Config;
use super::dispatcher::{Dispatcher, Status};
use super::exchange::{self, Exchange, DEATH_GRACE};
use super::queue::{Borrow, Queue};
use super::retire;
use super::slot::{self, Shared};
use crate::call::{Call, Job};
use crate::error::Error;
use crate::link::Backend;
use crate::result::{CancelOutcome, Hub, Outcome};

/// A pool of local workers, one slot thread each.
pub(crate) struct LocalPool {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
    /// Signalled when the slot threads have all been joined.
    joined: Condvar,
}

/// The slot threads, and how far joining them has got: the first `join`
/// joins them; any other `join` meanwhile waits for it, so no caller
/// returns before the work is done.
#[derive(Default)]
struct Threads {
    handles: Vec<JoinHandle<()>>,
    joining: bool,
    joined: bool,
}

impl LocalPool {
    /// Starts `config.processes` slots, each with a worker from `backend`,
    /// and waits until every worker is ready.
    pub(crate) fn start(config: Arc<Config>, backend: Box<dyn Backend>) -> Result<Self, Error> {
        let processes = config.processes;
        let shared = Arc::new(Shared {
            queue: Queue::new(processes, config.max_tasks_per_child),
            backend,
            switches: (0..processes).map(|_| Arc::default()).collect(),
            config,
        });
        let pool = LocalPool {
            shared: shared.clone(),
            threads: Mutex::default(),
            joined: Condvar::new(),
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
                .spawn(
                    move || match slot::start_retrying(&shared, index, || false) {
                        Ok(link) => {
                            let _ = ready.send(Ok(()));
                            slot::run(shared, index, link);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    },
                );
            match spawned {
                Ok(handle) => pool.threads().handles.push(handle),
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
                Err(_) => {
                    // A slot thread ended without a word (it panicked): the
                    // pool would lack that slot and its queue would never
                    // drain. The start failed.
                    first_error.get_or_insert(Error::WorkerStart {
                        task: String::new(),
                        message: "a pool thread ended while starting its worker".to_string(),
                    });
                    break;
                }
            }
        }
        match first_error {
            Some(e) => {
                pool.terminate();
                Err(e)
            }
            None => {
                log::info!(target: "procpool", "pool of {processes} workers ready");
                Ok(pool)
            }
        }
    }

    /// The scheduler's state (for the unit tests).
    #[cfg(test)]
    pub(super) fn queue(&self) -> &Queue {
        &self.shared.queue
    }

    fn threads(&self) -> MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Dispatcher for LocalPool {
    fn submit(&self, job: Job) {
        if let Err(job) = self.shared.queue.push(job) {
            let task = job.call().name().to_string();
            job.complete(Err(Error::PoolClosed { task }));
        }
    }

    /// When the queue is empty and a worker is idle, the calling thread
    /// talks to that worker itself: no hand-off to a slot thread and back.
    /// Never starts a worker: only slot threads do (the parent-death signal
    /// is tied to the spawning thread).
    fn run_here(&self, call: Call) -> Result<Outcome, Call> {
        let queue = &self.shared.queue;
        let (index, mut link) = match queue.borrow_idle() {
            Borrow::Closed => {
                let task = call.name().to_string();
                return Ok(Err(Error::PoolClosed { task }));
            }
            Borrow::Queue => return Err(call),
            Borrow::Worker(index, link) => (index, link),
        };
        let loss = match exchange::exchange(link.as_mut(), call.as_ref()) {
            Exchange::Done(outcome) => {
                if queue.served(index, 1) || retire::over_memory(&self.shared.config, link.as_mut())
                {
                    // Retired here, before the slot gets it back (a `join`
                    // waits for the slot: it must find the worker gone);
                    // the slot thread starts its successor.
                    retire::retire(queue, Some(link));
                    queue.give_back(index, None);
                } else {
                    queue.give_back(index, Some(link));
                }
                // (Dropping the call keeps its large buffers for this
                // thread's next call.)
                return Ok(outcome);
            }
            // The idle worker had died (or was stopped and never read the
            // call: it is killed): the slot thread replaces it and runs the
            // call, queued as usual. Unless it was killed by a terminate
            // racing this call: then the call fails as terminated, like one
            // in flight (not as a call after it).
            unstarted @ (Exchange::Undelivered | Exchange::Unread(_)) => {
                if let Exchange::Unread(_) = unstarted {
                    link.kill();
                }
                link.finish(DEATH_GRACE);
                if queue.is_terminated() {
                    queue.give_back(index, None);
                    return Ok(Err(call.terminated()));
                }
                // The call was taken before any `close`: it runs even if
                // one came meanwhile. Queued first, while the slot still
                // waits for its worker (so it has not stopped), not handed
                // back to the caller to be queued like a new call (refused
                // once the pool is closed).
                let (promise, result) =
                    crate::result::pending::<()>(call.task, Hub::default(), call.id);
                queue.requeue(std::iter::once(Job::new(call, promise)));
                queue.give_back(index, None);
                return Ok(result.into_outcome());
            }
            Exchange::Lost(loss) => loss,
        };
        let error = exchange::bury(queue, link, call.as_ref(), loss);
        queue.give_back(index, None);
        Ok(Err(error))
    }

    /// A running call's worker is killed through its slot's kill switch;
    /// the slot reports the loss as `Cancelled` and starts another worker
    /// (see [`super::in_flight`]). Returns once that worker has ended (a
    /// moment after the SIGKILL, [`DEATH_GRACE`] at most): the cancel
    /// settles the result as `Cancelled` as it returns, and a task stopped
    /// must no longer hold what it held (a lock, a file, a port) once its
    /// result says so, as when the slot settled it on seeing the death.
    fn cancel(&self, id: u64) -> CancelOutcome {
        let switches = &self.shared.switches;
        let mut killed = None;
        let outcome = self.shared.queue.cancel(
            id,
            |slot, behind| {
                let (kill, pidfd) = switches[slot].stop_for_cancel(id, behind);
                killed = pidfd;
                kill
            },
            // (Asked under the queue's lock: a slot that starts its worker
            // takes the cancelled calls out of its batch once it is up,
            // under that lock too, so it sees this cancel.)
            |slot| switches[slot].is_starting(),
            |slot, behind, cancelled| {
                switches[slot].hold_first_unbegun(behind, cancelled);
            },
        );
        if let Some(pidfd) = killed.filter(|_| outcome == CancelOutcome::Stopped) {
            crate::sys::pidfd_wait(std::os::fd::AsFd::as_fd(&*pidfd), Some(DEATH_GRACE));
        }
        outcome
    }

    fn cancel_queued(&self) -> usize {
        let switches = &self.shared.switches;
        self.shared.queue.cancel_queued(
            |slot| switches[slot].is_starting(),
            |slot, behind| switches[slot].hold_first_unbegun(behind, behind),
        )
    }

    fn close(&self) {
        self.shared.queue.close();
    }

    fn join(&self) {
        self.close();
        let mut threads = self.threads();
        if threads.joining {
            // Another caller is joining the slot threads: wait for it.
            while !threads.joined {
                threads = self.joined.wait(threads).unwrap_or_else(|e| e.into_inner());
            }
            return;
        }
        threads.joining = true;
        let handles = std::mem::take(&mut threads.handles);
        drop(threads);
        for handle in handles {
            let _ = handle.join();
        }
        // Jobs a cancel or a terminate on another thread took out of the
        // queue are settled by that thread: wait for it too.
        self.shared.queue.wait_settled();
        self.threads().joined = true;
        self.joined.notify_all();
    }

    fn terminate(&self) {
        let dropped = self.shared.queue.terminate();
        log::debug!(
            target: "procpool",
            "terminate: killing the workers, {dropped} queued tasks failed"
        );
        for switch in &self.shared.switches {
            // Also refuses later starts: a slot that finds its worker gone
            // must not start a new one and run its task after terminate.
            switch.close_and_kill();
        }
        self.join();
    }

    #[cfg(feature = "redis")]
    fn set_start_gate(&self, gate: super::queue::StartGate) {
        self.shared.queue.set_start_gate(gate);
    }

    fn status(&self) -> Status {
        self.shared.queue.status()
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        self.join();
    }
}
