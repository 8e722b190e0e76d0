//! The queue's inbox: where callers leave jobs without taking the
//! scheduler's lock, which the slot threads take once per reply. Whoever
//! next holds that lock moves the jobs left here to the back of the queue
//! (see `Queue::lock`), so every look at the queue sees every job pushed
//! before it.
//!
//! A caller wakes a slot thread only when one waits for work. The count of
//! waiting slots and the inbox's "filled" flag are a Dekker pair: a slot
//! counts itself as waiting before it looks at the flag one last time, and a
//! caller sets the flag before it looks at the count (both sequentially
//! consistent), so at least one of the two sees the other: the slot takes
//! the job, or the caller wakes it.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Mutex, MutexGuard};

use crate::call::Job;

#[derive(Default)]
struct Left {
    jobs: Vec<Job>,
    closed: bool,
}

/// Jobs pushed and not yet moved to the queue (see the module's
/// documentation).
#[derive(Default)]
pub(crate) struct Inbox {
    left: Mutex<Left>,
    /// Whether `left.jobs` may hold jobs: lets the scheduler skip the
    /// inbox's lock when it is empty. Set and cleared under that lock.
    filled: AtomicBool,
    /// Slot threads waiting for work. On a cache line of its own: callers
    /// read it at every push, slots change it only when they wait.
    waiting: Apart<AtomicUsize>,
}

/// A value on cache lines of its own (two: CPUs fetch lines in pairs).
#[derive(Default)]
#[repr(align(128))]
struct Apart<T>(T);

impl<T> std::ops::Deref for Apart<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl Inbox {
    fn left(&self) -> MutexGuard<'_, Left> {
        self.left.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves `job` for the scheduler; gives it back if the pool is closed.
    /// `Ok(true)`: a slot thread waits for work, and must be woken.
    pub(crate) fn push(&self, job: Job) -> Result<bool, Job> {
        {
            let mut left = self.left();
            if left.closed {
                return Err(job);
            }
            left.jobs.push(job);
            if !self.filled.load(Relaxed) {
                self.filled.store(true, SeqCst);
            }
        }
        Ok(self.has_waiting())
    }

    /// Whether a slot thread waits for work.
    pub(crate) fn has_waiting(&self) -> bool {
        self.waiting.load(SeqCst) > 0
    }

    /// Accepts no more jobs; those left here are still moved to the queue.
    pub(crate) fn close(&self) {
        self.left().closed = true;
    }

    /// Moves the jobs left here to the back of `queue`, in order. The
    /// inbox's buffer goes with them (it becomes the queue's, if that is
    /// empty), so a burst leaves no second buffer of its size behind.
    pub(crate) fn take_into(&self, queue: &mut VecDeque<Job>) {
        if !self.filled.load(SeqCst) {
            return;
        }
        let jobs = {
            let mut left = self.left();
            self.filled.store(false, SeqCst);
            std::mem::take(&mut left.jobs)
        };
        if queue.is_empty() {
            *queue = VecDeque::from(jobs);
        } else {
            queue.extend(jobs);
        }
    }

    /// A slot thread is about to wait for work; `false` if jobs were left
    /// meanwhile (it takes them instead of waiting, and is not counted).
    /// Else it counts as waiting until [`Self::end_wait`].
    pub(crate) fn begin_wait(&self) -> bool {
        self.waiting.fetch_add(1, SeqCst);
        if self.filled.load(SeqCst) {
            self.waiting.fetch_sub(1, SeqCst);
            return false;
        }
        true
    }

    /// The slot thread that called [`Self::begin_wait`] woke.
    pub(crate) fn end_wait(&self) {
        self.waiting.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Call, Kind};
    use crate::result::{self, Hub};

    fn job(id: u64) -> Job {
        let call = Call {
            id,
            task: crate::task::intern("t", "fn()", 0),
            args: Vec::new().into(),
            kind: Kind::Single,
            timeout: None.into(),
        };
        let (promise, _result) = result::pending::<()>(call.task, Hub::default(), id);
        Job::new(call, promise)
    }

    #[test]
    fn jobs_move_in_order_and_a_closed_inbox_refuses_more() {
        let inbox = Inbox::default();
        assert!(!inbox.push(job(1)).unwrap_or_else(|_| panic!("open")));
        assert!(!inbox.push(job(2)).unwrap_or_else(|_| panic!("open")));
        let mut queue = VecDeque::new();
        inbox.take_into(&mut queue);
        assert_eq!(queue.iter().map(Job::id).collect::<Vec<_>>(), [1, 2]);
        inbox.take_into(&mut queue);
        assert_eq!(queue.len(), 2, "taken once");
        assert!(inbox.begin_wait(), "empty: the slot waits");
        assert!(
            inbox.push(job(3)).unwrap_or_else(|_| panic!("open")),
            "a waiting slot is woken"
        );
        inbox.end_wait();
        assert!(
            !inbox.begin_wait(),
            "filled: the slot takes the job instead"
        );
        inbox.close();
        assert_eq!(inbox.push(job(4)).err().map(|j| j.id()), Some(4));
        inbox.take_into(&mut queue);
        assert_eq!(queue.iter().map(Job::id).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
