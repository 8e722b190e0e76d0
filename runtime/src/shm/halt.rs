//! The start handshake: how the parent kills a worker for a cancel without
//! ever killing a call it did not mean to.
//!
//! A slot pipelines calls: while the parent has not yet read the reply to
//! call A, its worker may have finished A and started B. A kill meant for A
//! (A was cancelled) would then kill B, a call nobody cancelled. So before
//! such a kill the parent *halts* the worker, and looks at what it started:
//!
//! - parent: stores `halt = 1`, then loads `started`;
//! - worker, before it runs each call: stores `started = id`, then loads
//!   `halt`, and while it is set starts nothing (it sleeps on the word).
//!
//! Both sides use sequentially consistent operations, so at least one sees
//! the other's store. If the parent saw none of the calls behind A started,
//! the worker sees the halt before it starts any of them: the kill can only
//! stop A, or a worker between calls, or one halted before B. If the parent
//! saw one of them started, A had finished: the parent lifts the halt and
//! wakes the worker, and nothing is killed. The parent's decisions for one
//! worker are made one at a time (under its slot's kill switch).
//!
//! Only once past the halt does the worker store `running = id` and run the
//! call, so after a death the parent tells a call that ran (`running` is its
//! id) from one that never started.
//!
//! The worker also stores `finished = id` once A's reply is published: a
//! worker halted between A and B (A done, B not yet started) is then let go
//! too, rather than killed and replaced for nothing.
//!
//! A call cancelled while it waits in the batch behind the one running is
//! *held*: the parent stores its id in `hold` at once (the first cancelled
//! call the worker has not begun: one hold word serves a batch), and the
//! worker does not start that call (it waits as while halted). The kill decided once
//! the call in front is answered then finds it unstarted, however quickly
//! the worker got through the calls in between. (Without the hold a worker
//! racing through quick calls reached the cancelled one before the parent
//! had read the reply in front, and ran it.)
//!
//! The hold is read and moved with the worker halted: the parent stores
//! `halt = 1`, loads `started`, stores `hold`, then lifts the halt. The
//! call the worker announced last may be past its check of the hold word
//! (it read `halt` as 0 before the store): it counts as begun
//! (`close_and_cancel` then leaves it to finish), unless the hold names
//! it and the worker has not run it, when it waits before it. Any call
//! after it, the worker announces after the parent's load, so it reads
//! the halt set, and the hold word only once the halt is lifted, the new
//! hold in place. So a hold, only ever placed on a call the worker has not
//! announced, stops it there; and a hold moved back, to a call before the
//! one held (a cancel of an earlier call of the batch, as a map's cancel
//! makes, its chunks last first, or `close_and_cancel` after a cancel),
//! never lets the worker past the one held meanwhile. (Placed with no
//! halt, store `hold` then load `started`, and moved back, it could: a
//! worker that had read the old hold word for the call before it ran that
//! call, and the one held too, before the parent put the hold back on it.)
//!
//! The same halt lets a slot give back the calls pipelined behind a call
//! that turns out slow, so that an idle worker runs them instead of them
//! waiting (see `crate::pool::exchange`): halted, the worker has started
//! none of them, so the parent stores how many it is to `skip` and lifts
//! the halt; the worker reads each of them, runs none and answers none
//! (they went back to the queue), and goes on with what was sent after.
//! The parent gives back only while no earlier skip is still pending, so
//! the count always means the next calls the worker reads.
//! A call both held and given back is skipped: it is back in the queue,
//! where its cancel settles it. A skipped call is no start: the worker puts
//! `started` back to the call it ran last before it counts the skip down,
//! and the parent does not read `started` while the count is not done (the
//! worker has then begun no call sent after those it skips). A call given
//! back may come to the same worker again, under the same id, right
//! behind its skipped copy: taken for begun, a cancel of the call in front
//! of it answered `Finished` and that call ran after it.
//!
//! A worker could write these words to make the parent believe it went
//! past a call it still runs; a cancel of that call then reports
//! `Finished` and the call runs on (to its time limit, if it has one). Only
//! the worker's own calls are affected, and the parent reads the words for
//! nothing else.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use super::layout::Control;
use crate::sys::{self, SharedMap};

/// How long a halted worker sleeps before it looks again whether it was let
/// go (the parent wakes it when it lifts the halt; this bounds a lost wake).
const HALTED_NAP: Duration = Duration::from_millis(100);

/// The parent's hold on whether a worker starts its next call.
#[derive(Clone)]
pub(crate) struct Halter(Arc<SharedMap>);

impl Halter {
    /// The halter of the channel in `map` (its control page written).
    pub(crate) fn new(map: Arc<SharedMap>) -> Halter {
        Halter(map)
    }

    fn ctl(&self) -> &Control {
        // SAFETY: the mapping is a channel (control page first), alive as
        // long as `self.0`.
        unsafe { Control::at(self.0.base()) }
    }

    /// Halts the worker unless it went past call `call`: it published its
    /// reply, or started one of the calls in `behind` (those sent after
    /// it). `true`: halted, and it starts no call until killed, so a kill
    /// now stops `call` or nothing. `false`: `call` has finished; the halt
    /// is lifted and the worker runs on.
    pub(crate) fn halt_unless_past(&self, call: u64, behind: &[u64]) -> bool {
        let c = self.ctl();
        c.halt.0.store(1, SeqCst);
        let started = self.started_unless_skipping();
        if started.is_some_and(|s| behind.contains(&s)) || c.finished.0.load(SeqCst) == call {
            self.lift();
            return false;
        }
        true
    }

    /// Halts the worker unless it started call `call`: it is about to run
    /// it, runs it, finished it, or went on to one of the calls in
    /// `behind` (those sent after it, which it runs only after `call`).
    /// `true`: halted before `call`, and it starts no call until killed, so
    /// a kill now stops a worker that never ran `call` nor any call behind
    /// it. `false`: the halt is lifted.
    pub(crate) fn halt_unless_started(&self, call: u64, behind: &[u64]) -> bool {
        let c = self.ctl();
        c.halt.0.store(1, SeqCst);
        let started = self.started_unless_skipping();
        let finished = c.finished.0.load(SeqCst);
        let reached = |id: u64| id == call || behind.contains(&id);
        if started.is_some_and(reached) || reached(finished) {
            self.lift();
            return false;
        }
        true
    }

    /// The call the worker began last (read with the halt set), or `None`
    /// while it still has calls given back to skip: then it began none
    /// sent after them, and the word may name one of those it skips,
    /// whose id can come again in a later batch (sent from the queue).
    fn started_unless_skipping(&self) -> Option<u64> {
        let c = self.ctl();
        if c.skip.0.load(SeqCst) > 0 {
            return None;
        }
        // (A worker done with its count has put back the word first.)
        Some(c.started.0.load(SeqCst))
    }

    /// Holds the worker before call `call` (a cancelled call pipelined
    /// behind the one it runs): it does not start it, and waits there until
    /// it is killed or let go. One call is held at a time: the first
    /// cancelled call of the batch the worker has not begun (see
    /// [`hold_first_unbegun`](Self::hold_first_unbegun)).
    pub(crate) fn hold_before(&self, call: u64) {
        self.ctl().hold.0.store(call, SeqCst);
    }

    /// How many of `behind` (the calls pipelined behind the one the worker
    /// runs, in the order sent) it has begun, read with the halt set (it
    /// then passes the hold check of no call it announces): the calls
    /// before the one it announced last, and that one too unless it waits
    /// before it, held (the hold names it and it has not run it: a hold is
    /// only ever placed on a call the worker has not announced, so it saw
    /// it); none while it runs the call in front, or has calls given back
    /// still to skip.
    fn begun_behind(&self, behind: &[u64]) -> usize {
        let c = self.ctl();
        self.started_unless_skipping()
            .and_then(|started| {
                let at = behind.iter().position(|&id| id == started)?;
                let waits = c.hold.0.load(SeqCst) == started && c.running.0.load(SeqCst) != started;
                Some(at + usize::from(!waits))
            })
            .unwrap_or(0)
    }

    /// Holds the worker before the first call of `cancelled` (cancelled
    /// calls among `behind`, those pipelined behind the one it runs, in
    /// the order sent) that it has not begun, and returns how many of
    /// `behind` it has begun (exact: a call it is found not to have begun,
    /// it will not begin while held, nor any call after it).
    ///
    /// A worker that began one of them (it finished the call in front in
    /// the instant of the cancel) runs it, but is held before the next: a
    /// hold on the first one alone left every later cancelled call to run.
    ///
    /// The worker is halted while the hold is read and moved (see the
    /// module docs): the call it announced last may be past its check of
    /// the hold word, and counts as begun unless it waits before it held;
    /// any call after it, it announces only now, and checks the hold once
    /// the halt is lifted, the new hold in place. So the hold may move
    /// back, to a call before the one held (a cancel of an earlier call):
    /// the worker cannot go past the new one, nor reach the old one,
    /// meanwhile. A worker halted already (for a kill) stays halted.
    pub(crate) fn hold_first_unbegun(&self, behind: &[u64], cancelled: &[u64]) -> usize {
        let c = self.ctl();
        let halted = c.halt.0.swap(1, SeqCst) != 0;
        let from = self.begun_behind(behind);
        let held = behind
            .iter()
            .skip(from)
            .find(|id| cancelled.contains(id))
            .copied();
        // (0 holds nothing: no call held.)
        self.hold_before(held.unwrap_or(0));
        if !halted {
            self.lift();
        }
        from
    }

    /// Takes back the calls `behind` (sent after `call`, in order), if the
    /// worker runs `call` (or finished it) and has started none of them,
    /// nor has calls taken back before still to skip: `true` if it will
    /// read them without running or answering them. The worker is not
    /// stopped: it goes on with `call`. (Only once it runs `call` are the
    /// calls it reads next those of `behind`: before, it may have calls to
    /// skip, or `call` itself, ahead of them.)
    pub(crate) fn give_back(&self, call: u64, behind: &[u64]) -> bool {
        if behind.is_empty() {
            return false;
        }
        let c = self.ctl();
        c.halt.0.store(1, SeqCst);
        let started = c.started.0.load(SeqCst);
        let running = c.running.0.load(SeqCst);
        let taken = started == call && running == call && c.skip.0.load(SeqCst) == 0;
        if taken {
            c.skip.0.store(behind.len() as u64, SeqCst);
        }
        self.lift();
        taken
    }

    /// Lifts a halt and wakes the worker (a killed worker's halt is moot).
    fn lift(&self) {
        let c = self.ctl();
        c.halt.0.store(0, SeqCst);
        sys::futex_wake(&c.halt.0, u32::MAX);
    }
}

/// What a worker is to do with the call it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Run it.
    Run,
    /// Neither run nor answer it: the parent gave it back to the queue.
    Skip,
    /// Exit: the parent let the worker go.
    LetGo,
}

#[cfg(test)]
impl Begin {
    /// Whether the call is to run.
    pub(crate) fn runs(self) -> bool {
        self == Begin::Run
    }
}

/// In a worker: records that call `id` is about to start, waits while the
/// parent halts the worker or holds this call, then records that it runs,
/// unless the parent gave it back or let the worker go meanwhile.
pub(crate) fn begin_call(c: &Control, id: u64) -> Begin {
    c.started.0.store(id, SeqCst);
    loop {
        let halt = c.halt.0.load(SeqCst);
        if halt == 0 {
            // (Read only while not halted: a give-back writes it halted.)
            let skip = c.skip.0.load(SeqCst);
            if skip > 0 {
                // No start: `started` goes back to the call last run
                // before the count moves, so that a parent which reads
                // the count done never reads this call as begun (its id
                // may come again: sent from the queue after its copy).
                c.started.0.store(c.running.0.load(SeqCst), SeqCst);
                c.skip.0.store(skip - 1, SeqCst);
                return Begin::Skip;
            }
            // (0 holds nothing: the initializer's call has id 0.)
            let held = c.hold.0.load(SeqCst);
            if held == 0 || held != id {
                break;
            }
        }
        if c.closed.0.load(SeqCst) != 0 {
            return Begin::LetGo;
        }
        // Held with no halt: sleeps until the halt word changes (a kill
        // comes first, as a rule) or the nap ends.
        sys::futex_wait(&c.halt.0, halt, Some(HALTED_NAP));
    }
    c.running.0.store(id, SeqCst);
    Begin::Run
}

/// In a worker: the reply to call `id` is published.
pub(crate) fn end_call(c: &Control, id: u64) {
    c.finished.0.store(id, SeqCst);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Begin;
    use crate::shm::pair_for_tests as pair;

    #[test]
    fn a_halted_worker_starts_no_call_and_a_worker_past_the_call_is_let_go() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        assert_eq!(parent.last_run(), 1);
        // Call 1 runs; 2 and 3 are behind it: halted.
        assert!(halter.halt_unless_past(1, &[2, 3]));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let begun = worker.begin_call(2);
            tx.send(begun).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a halted worker started a call"
        );
        // It announced call 2 but never ran it.
        assert_eq!(parent.last_run(), 1);
        // Letting the worker go ends its wait without starting the call.
        parent.close();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(super::Begin::LetGo)
        );
        let worker = thread.join().unwrap();
        assert_eq!(parent.last_run(), 1);
        drop(worker);
    }

    /// A call held (cancelled while pipelined) is not started: the calls
    /// before it run, the worker waits before it (it announced it, never
    /// ran it) until let go; a call of id 0 (the initializer's) is never
    /// held by the empty word.
    #[test]
    fn a_held_call_is_not_started_and_the_calls_before_it_run() {
        let (parent, worker) = pair();
        assert!(
            worker.begin_call(0).runs(),
            "id 0 held by an empty hold word"
        );
        parent.halter().hold_before(3);
        assert!(worker.begin_call(1).runs());
        worker.end_call(1);
        assert!(worker.begin_call(2).runs());
        worker.end_call(2);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(3)).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a held call started"
        );
        assert_eq!(parent.last_run(), 2);
        // The kill decided once 2 is answered finds 3 unstarted.
        assert!(parent.halter().halt_unless_past(3, &[4]));
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        drop(thread.join().unwrap());
        assert_eq!(parent.last_run(), 2);
    }

    /// `begun_behind` counts the calls behind the one in front that the
    /// worker began: none while it runs the front one, the one it runs,
    /// and not one it announced but is held before (nor one it skips).
    #[test]
    fn the_calls_begun_behind_the_front_one_are_those_the_worker_ran() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        assert_eq!(halter.begun_behind(&[2, 3, 4]), 0, "runs the front call");
        worker.end_call(1);
        // The slot has not read 1's reply: 2 runs already.
        assert!(worker.begin_call(2).runs());
        assert_eq!(halter.begun_behind(&[2, 3, 4]), 1);
        worker.end_call(2);
        halter.hold_before(3);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(3)).unwrap();
            worker
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        assert_eq!(halter.begun_behind(&[2, 3, 4]), 1, "3 announced, held");
        assert_eq!(halter.begun_behind(&[5, 6]), 0, "none of these");
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        drop(thread.join().unwrap());
    }

    /// A held call (cancelled while pipelined) that is then given back
    /// with the calls around it is skipped, not waited before: it is back
    /// in the queue, where its cancel settles it, and the worker goes on.
    #[test]
    fn a_held_call_given_back_is_skipped_not_waited_before() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        halter.hold_before(3);
        assert!(halter.give_back(1, &[2, 3, 4]));
        worker.end_call(1);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let begun: Vec<Begin> = (2..=5).map(|id| worker.begin_call(id)).collect();
            tx.send(begun).unwrap();
            worker
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(vec![Begin::Skip, Begin::Skip, Begin::Skip, Begin::Run])
        );
        drop(thread.join().unwrap());
        assert_eq!(parent.last_run(), 5);
    }

    #[test]
    fn a_worker_that_started_a_call_behind_is_not_halted() {
        let (parent, worker) = pair();
        assert!(worker.begin_call(7).runs());
        // The parent still waits for the reply to 6, but 7 started: 6 is done.
        assert!(!parent.halter().halt_unless_past(6, &[7, 8]));
        assert!(worker.begin_call(8).runs(), "the halt was not lifted");
        assert_eq!(parent.last_run(), 8);
        // 8's reply is out, 9 not started: 8 is done.
        worker.end_call(8);
        assert!(!parent.halter().halt_unless_past(8, &[9]));
        // 9 runs, nothing behind it started: halted.
        assert!(worker.begin_call(9).runs());
        assert!(parent.halter().halt_unless_past(9, &[10]));
    }

    /// The start-limit check (`halt_unless_started`): a worker that has
    /// not reached call `call` is halted (and then killed by the caller);
    /// one that started it, finished it, or went on to a call pipelined
    /// behind it is let go: killing it would stop, and run again, calls
    /// that had started.
    #[test]
    fn a_worker_is_halted_for_a_call_only_if_it_has_not_reached_it() {
        let (parent, worker) = pair();
        assert!(worker.begin_call(4).runs());
        worker.end_call(4);
        // Waiting for 5 (6 and 7 behind), the worker still after 4.
        assert!(parent.halter().halt_unless_started(5, &[6, 7]));
        parent.halter().lift();
        // It started 5.
        assert!(worker.begin_call(5).runs());
        assert!(!parent.halter().halt_unless_started(5, &[6, 7]));
        // It finished 5, and went on to 6 and 7: past 5, not halted.
        worker.end_call(5);
        assert!(!parent.halter().halt_unless_started(5, &[6, 7]));
        assert!(worker.begin_call(6).runs(), "the halt was not lifted");
        worker.end_call(6);
        assert!(worker.begin_call(7).runs());
        assert!(!parent.halter().halt_unless_started(5, &[6, 7]));
        worker.end_call(7);
        assert!(!parent.halter().halt_unless_started(5, &[6, 7]));
        // A call of a later batch, 8, with the worker done with 7: halted.
        assert!(parent.halter().halt_unless_started(8, &[]));
    }

    #[test]
    fn calls_given_back_are_skipped_and_only_behind_a_call_that_runs() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        // Call 1 not begun yet: nothing is given back (1 itself is next).
        assert!(!halter.give_back(1, &[2, 3]));
        assert_eq!(worker.begin_call(1), Begin::Run);
        // 1 runs; 2 and 3 behind: taken back, once.
        assert!(halter.give_back(1, &[2, 3]));
        assert!(!halter.give_back(1, &[2, 3]), "given back twice");
        worker.end_call(1);
        // Not behind 4 while 2 and 3 are still to skip.
        assert!(!halter.give_back(4, &[5]));
        assert_eq!(worker.begin_call(2), Begin::Skip);
        assert_eq!(worker.begin_call(3), Begin::Skip);
        assert_eq!(parent.last_run(), 1, "a skipped call counted as run");
        assert_eq!(worker.begin_call(4), Begin::Run, "the halt was not lifted");
        assert!(!halter.give_back(4, &[]));
        // 5, behind 4, started: not given back, and not halted.
        worker.end_call(4);
        assert_eq!(worker.begin_call(5), Begin::Run);
        assert!(!halter.give_back(4, &[5, 6]));
        assert_eq!(worker.begin_call(6), Begin::Run);
    }

    /// Calls given back go to the front of the queue, and the slot that
    /// gave them back may take them again for the same worker once the
    /// call in front returned: the same ids, sent after their skipped
    /// copies. The worker's word for its last skipped copy is no start:
    /// a cancel of the first of them (the one the parent thinks runs)
    /// stops the worker, which has not begun it, rather than answering
    /// that the worker went past it (it then ran after `Finished`); and
    /// a worker that does not begin it within the start limit is stopped.
    #[test]
    fn a_call_given_back_and_sent_again_is_not_taken_as_begun_by_its_skipped_copy() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        assert!(halter.give_back(1, &[2, 3]));
        worker.end_call(1);
        assert_eq!(worker.begin_call(2), Begin::Skip);
        // 2 and 3 sent again; the worker still has 3's old copy to skip.
        assert!(halter.halt_unless_past(2, &[3]), "taken as past 2");
        halter.lift();
        assert_eq!(worker.begin_call(3), Begin::Skip);
        // Both copies skipped; the new 2 not begun.
        assert!(
            halter.halt_unless_past(2, &[3]),
            "the skipped 3 taken as begun"
        );
        halter.lift();
        assert!(
            halter.halt_unless_started(2, &[3]),
            "the skipped 3 taken as begun (start limit)"
        );
        halter.lift();
        assert!(
            halter.halt_unless_started(3, &[]),
            "the skipped 3 taken as begun"
        );
        halter.lift();
        // The new copies run, and are seen as begun.
        assert_eq!(worker.begin_call(2), Begin::Run);
        assert!(!halter.halt_unless_started(2, &[3]));
        worker.end_call(2);
        assert_eq!(worker.begin_call(3), Begin::Run);
        assert!(!halter.halt_unless_past(2, &[3]));
        assert_eq!(parent.last_run(), 3);
    }

    /// `close_and_cancel` marks every call pipelined behind the one
    /// running; a worker that, in that instant, finished the call in front
    /// and began the first of them runs that one, but no other: it is held
    /// before the next cancelled call. Likewise past a call not cancelled.
    #[test]
    fn a_worker_past_the_first_cancelled_call_is_held_before_the_next() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        worker.end_call(1);
        // The parent has not read 1's reply: 2, 3, 4 are behind it.
        assert!(worker.begin_call(2).runs());
        assert_eq!(halter.hold_first_unbegun(&[2, 3, 4], &[2, 3, 4]), 1);
        worker.end_call(2);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(3)).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a cancelled call behind the one begun started"
        );
        assert!(halter.halt_unless_past(3, &[4]));
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        let worker = thread.join().unwrap();
        assert_eq!(parent.last_run(), 2);
        drop(worker);
        // Begun 5 (not cancelled), 6 and 7 behind it cancelled: held at 6.
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(5).runs());
        assert_eq!(halter.hold_first_unbegun(&[5, 6, 7], &[6, 7]), 1);
        worker.end_call(5);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(6)).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "6 started"
        );
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        drop(thread.join().unwrap());
        // Not begun any: held at the first cancelled one.
        let (parent, worker) = pair();
        assert_eq!(parent.halter().hold_first_unbegun(&[8, 9], &[8, 9]), 0);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(8)).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "8 started"
        );
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        drop(thread.join().unwrap());
    }

    #[test]
    fn under_a_race_calls_given_back_are_skipped_and_every_other_runs() {
        // A worker thread begins calls 1, 2, ... in order as fast as it
        // can; the parent thread keeps giving back up to three calls behind
        // the one it last saw run. Every call given back is skipped, and
        // every other one runs: none lost, none run twice.
        const CALLS: u64 = 3000;
        let (parent, worker) = pair();
        let halter = parent.halter();
        let thread = std::thread::spawn(move || {
            let mut ran = Vec::new();
            let mut skipped = Vec::new();
            for id in 1..=CALLS {
                match worker.begin_call(id) {
                    Begin::Run => {
                        for _ in 0..500 {
                            std::hint::spin_loop();
                        }
                        ran.push(id);
                        worker.end_call(id);
                    }
                    Begin::Skip => skipped.push(id),
                    Begin::LetGo => panic!("let go"),
                }
            }
            (ran, skipped)
        });
        let mut given = Vec::new();
        while !thread.is_finished() {
            let seen = parent.last_run();
            let behind: Vec<u64> = (seen + 1..=(seen + 3).min(CALLS))
                .filter(|id| !given.contains(id))
                .collect();
            if halter.give_back(seen, &behind) {
                given.extend(behind);
            }
        }
        let (ran, skipped) = thread.join().unwrap();
        assert!(!given.is_empty(), "nothing was ever given back");
        assert_eq!(skipped, given);
        let mut all: Vec<u64> = ran.iter().chain(&skipped).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=CALLS).collect::<Vec<_>>());
    }

    /// A worker that announced the call about to be held may have read
    /// the hold word just before it was written, and run the call: the
    /// call is counted as begun (not cancelled), and the worker is held
    /// before the next one instead.
    #[test]
    fn a_call_announced_as_the_hold_is_placed_counts_as_begun() {
        let (parent, worker) = pair();
        let halter = parent.halter();
        assert!(worker.begin_call(1).runs());
        worker.end_call(1);
        // The worker announced 2 and is past its check of the hold word
        // (it has not yet written that it runs 2).
        halter.ctl().started.0.store(2, SeqCst);
        assert_eq!(halter.hold_first_unbegun(&[2, 3, 4], &[2, 3, 4]), 1);
        assert_eq!(halter.ctl().hold.0.load(SeqCst), 3, "not held before 3");
        // It runs 2, then waits before 3.
        halter.ctl().running.0.store(2, SeqCst);
        worker.end_call(2);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            tx.send(worker.begin_call(3)).unwrap();
            worker
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "3 started"
        );
        assert_eq!(halter.hold_first_unbegun(&[2, 3, 4], &[2, 3, 4]), 1);
        parent.close();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Begin::LetGo));
        drop(thread.join().unwrap());
        assert_eq!(parent.last_run(), 2);
    }

    #[test]
    fn under_a_race_a_call_found_unbegun_and_held_never_starts() {
        // A worker thread begins calls 1, 2, ... as fast as it can; the
        // parent thread, as `close_and_cancel` does, asks over and over
        // how many of the calls behind the one it last saw run (all sent)
        // the worker has begun, and holds it before the first of the
        // others (all of them cancelled). A call found unbegun must never
        // start while it is held.
        const CALLS: u64 = 3000;
        let (parent, worker) = pair();
        let halter = parent.halter();
        let thread = std::thread::spawn(move || {
            for id in 1..=CALLS {
                assert!(worker.begin_call(id).runs());
                worker.end_call(id);
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
            }
            worker
        });
        let ids: Vec<u64> = (1..=CALLS).collect();
        let mut held = 0;
        loop {
            let seen = parent.last_run();
            if seen == CALLS {
                break;
            }
            let behind = &ids[seen as usize..];
            let from = halter.hold_first_unbegun(behind, behind);
            if let Some(&call) = behind.get(from) {
                held += 1;
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
                let ran = parent.last_run();
                assert!(ran < call, "call {call} found unbegun, held, ran ({ran})");
                halter.hold_before(0);
                halter.lift();
            }
        }
        drop(thread.join().unwrap());
        assert!(held > 0, "never held");
    }

    #[test]
    fn under_a_race_a_held_call_stays_held_when_an_earlier_one_is_held() {
        // A worker thread begins calls 1, 2, ... as fast as it can, up to
        // the last one sent; the parent thread sends a few more at a time
        // and, as a cancel of a pipelined call does, holds the worker
        // before the third call behind the one it last saw run, then, as a
        // cancel of an earlier one of them (or `close_and_cancel`) does
        // next, before the first it has not begun. The call held first,
        // found unbegun, must never start.
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        const CALLS: u64 = 100_000;
        let (parent, worker) = pair();
        let halter = parent.halter();
        let sent = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let sent = Arc::clone(&sent);
            move || {
                for id in 1..=CALLS {
                    while sent.load(SeqCst) < id {
                        std::hint::spin_loop();
                    }
                    assert!(worker.begin_call(id).runs());
                    worker.end_call(id);
                }
                worker
            }
        });
        let ids: Vec<u64> = (1..=CALLS).collect();
        let mut held = 0;
        loop {
            let seen = parent.last_run();
            if seen + 6 > CALLS {
                sent.store(CALLS, SeqCst);
                break;
            }
            sent.fetch_max(seen + 6, SeqCst);
            let behind = &ids[seen as usize..sent.load(SeqCst) as usize];
            let later = behind[2];
            if halter.hold_first_unbegun(behind, &[later]) <= 2 {
                held += 1;
                let from = halter.hold_first_unbegun(behind, behind);
                assert!(
                    from <= 2,
                    "call {later} found unbegun and held, then begun ({from} begun)"
                );
                assert!(parent.last_run() < later, "call {later} held, ran");
            }
            halter.hold_before(0);
            halter.lift();
        }
        drop(thread.join().unwrap());
        assert!(held > 0, "never held");
    }

    #[test]
    fn under_a_race_a_halted_worker_never_starts_a_call_behind() {
        // A worker thread starts calls 1, 2, ... as fast as it can (the
        // even ones published as finished at once); the parent thread halts
        // it over and over for the call it last saw run, all later calls
        // being behind it. Whenever the halt holds, the worker must stay on
        // that call until it is let go.
        const CALLS: u64 = 3000;
        let (parent, worker) = pair();
        let halter = parent.halter();
        let thread = std::thread::spawn(move || {
            for id in 1..=CALLS {
                assert!(worker.begin_call(id).runs());
                for _ in 0..500 {
                    std::hint::spin_loop();
                }
                if id % 2 == 0 {
                    worker.end_call(id);
                }
            }
            worker
        });
        let ids: Vec<u64> = (1..=CALLS).collect();
        let (mut held, mut let_go) = (0, 0);
        loop {
            let seen = parent.last_run();
            if seen == CALLS {
                break;
            }
            let behind = &ids[seen as usize..];
            if halter.halt_unless_past(seen, behind) {
                held += 1;
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
                assert_eq!(parent.last_run(), seen, "a halted worker went on");
                halter.lift();
            } else {
                let_go += 1;
            }
        }
        drop(thread.join().unwrap());
        assert!(held > 0, "never halted ({let_go} let go)");
    }
}
