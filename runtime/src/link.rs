//! A local pool's interface to one worker: a [`Link`] speaks the frame
//! protocol of [`crate::wire`] to it; a [`Backend`] starts workers. The
//! re-executed local processes of [`crate::process`] are the real backend;
//! [`fake`] is an in-memory one for unit tests of the scheduler and the slot
//! loop. (Where calls go as a whole, local workers or a broker, is the
//! business of the dispatcher seam, `crate::pool::Dispatcher`.)

#[cfg(test)]
pub(crate) mod fake;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ExitInfo};
use crate::shm::Halter;
use crate::wire::{Frame, FrameError};

/// The settings a worker is started with (from the pool's `Config`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest frame either side sends or accepts.
    pub(crate) max_frame: usize,
    /// How long a new worker may take to report ready.
    pub(crate) start_timeout: Duration,
    /// How long a frame that began to arrive may stop arriving (and a
    /// request being written may stop being taken in).
    pub(crate) stall_timeout: Duration,
}

/// Starts workers.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Starts one worker for slot `slot` of the pool and waits until it is
    /// ready for tasks. `kill` lets other threads stop it (see
    /// [`KillSwitch`]). The worker's tasks see `slot` as
    /// `procpool::worker_index()`.
    fn start(
        &self,
        kill: &Arc<KillSwitch>,
        limits: Limits,
        slot: usize,
    ) -> Result<Box<dyn Link>, Error>;
}

/// A connection to one running worker.
pub(crate) trait Link: Send {
    /// The worker's process id (or the backend's equivalent), for messages.
    fn pid(&self) -> u32;
    /// Sends one frame made of `parts`, then `tail`: a non-empty tail (a
    /// large block of bytes) reaches the worker as a buffer of its own.
    fn send(&mut self, parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError>;
    /// Sends several frames, each made of its parts, in one batch.
    fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError>;
    /// Receives one frame, waiting at most `timeout` for it to start
    /// (`None`: until the worker answers or is gone; never past its death).
    fn recv(&mut self, timeout: Option<Duration>) -> Result<Frame, FrameError>;
    /// Whether bytes of a reply are already there to read (checked without
    /// waiting): a reply under way needs no clock for its start limit.
    fn reply_waiting(&mut self) -> bool {
        false
    }
    /// Whether the worker has not yet read everything sent to it. A call it
    /// has not read whole has not started (after a single call timed out,
    /// or its worker died, `true` means that call never started).
    fn unread_requests(&mut self) -> bool {
        false
    }
    /// Whether the worker started call `id` (the first call it has not
    /// answered), as far as can be told: `false` only if it certainly did
    /// not (it was killed or died between two calls).
    fn started(&mut self, id: u64) -> bool {
        let _ = id;
        true
    }
    /// How many map items the worker has started, if it tells (see
    /// `crate::shm::Progress`): a map chunk's time limit restarts whenever
    /// this moves, so that it applies to each item.
    fn items_started(&mut self) -> Option<u64> {
        None
    }
    /// Whether the worker has ended (checked without waiting). Once true,
    /// [`finish`](Self::finish) returns at once.
    fn has_exited(&mut self) -> bool;
    /// The worker's resident memory in bytes, if it can be read (for
    /// `max_memory_per_child`).
    fn resident_bytes(&mut self) -> Option<u64>;
    /// Stops the worker at once.
    fn kill(&mut self);
    /// Stops the worker to stop call `call`, unless it went past it (see
    /// [`KillSwitch::kill_unless_past`]; `behind`: the calls sent after it).
    /// Returns whether it was stopped.
    fn kill_unless_past(&mut self, call: u64, behind: &[u64]) -> bool {
        let _ = (call, behind);
        self.kill();
        true
    }
    /// Stops a worker that did not start call `id`, unless it started it
    /// after all, or one of the calls in `behind` (see
    /// [`KillSwitch::kill_unless_started`]). Returns whether it was stopped.
    fn kill_unless_started(&mut self, id: u64, behind: &[u64]) -> bool {
        let started = self.started(id) || behind.iter().any(|&b| self.started(b));
        if !started {
            self.kill();
        }
        !started
    }
    /// Takes back the calls `behind`, pipelined after call `call`, that
    /// the worker has not started: `true` if it will skip them all (run
    /// and answer none), so they can run elsewhere; `false` (the default,
    /// for a worker that cannot) if they stay where they are.
    fn give_back(&mut self, call: u64, behind: &[u64]) -> bool {
        let _ = (call, behind);
        false
    }
    /// How long a worker may take to start a call sent to it (one it is
    /// free to start at once) before it is taken to be stopped and is
    /// replaced (`None`: no limit).
    fn start_limit(&self) -> Option<Duration> {
        None
    }
    /// Waits for the worker to end (killing it after `grace`) and reports how.
    fn finish(self: Box<Self>, grace: Duration) -> ExitInfo;
}

/// The worker a [`KillSwitch`] can stop: its pid (the number of its
/// process group), its pidfd, and the hold on its call starts, if its
/// channel has one.
pub(crate) struct Target {
    pid: u32,
    pidfd: Arc<OwnedFd>,
    halter: Option<Halter>,
}

impl Target {
    pub(crate) fn new(pid: u32, pidfd: Arc<OwnedFd>, halter: Option<Halter>) -> Target {
        Target { pid, pidfd, halter }
    }

    /// SIGKILL to the worker and its process group (see `sys::kill_worker`).
    fn kill(&self) {
        crate::sys::kill_worker(self.pid, self.pidfd.as_fd());
    }
}

/// When a kill is not to be made (see [`KillSwitch::kill_for`]).
#[derive(Clone, Copy)]
enum Unless<'a> {
    /// Always made.
    Nothing,
    /// Not if the worker went past this call (it finished, or started one
    /// of the calls behind it).
    Past(u64, &'a [u64]),
    /// Not if the worker started this call or one of those behind it.
    Started(u64, &'a [u64]),
}

/// What [`KillSwitch::stop_for_cancel`] did about the call a cancel names,
/// which its slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelKill {
    /// The worker was killed to stop it (or there was none to kill).
    Killed,
    /// The worker went past the call (it finished): nothing was killed.
    WentPast,
    /// The slot is starting the worker the call waits for: the call was
    /// never sent, and nothing is killed. The slot finds the call cancelled
    /// once that worker is up, settles it, and keeps the worker.
    Unsent,
}

/// Lets any thread stop whichever worker a pool slot currently runs. It
/// signals through the worker's pidfd, so a kill can never reach another
/// process that inherited a reused pid.
///
/// A start does not hold the switch's lock while the process is made (a
/// fork server may take a while to answer): it is [`begun`](Self::begin_start)
/// and [`published`](Self::publish) under the lock, and a kill or a
/// terminate that comes in between reaches the new worker when it is
/// published.
#[derive(Default)]
pub(crate) struct KillSwitch {
    state: std::sync::Mutex<Switch>,
    /// Set (under the lock) by `terminate`: from then on no worker may be
    /// started for this slot, so a terminated pool never spawns again.
    closed: std::sync::atomic::AtomicBool,
}

/// What a [`KillSwitch`] guards.
#[derive(Default)]
pub(crate) struct Switch {
    /// The slot's current worker.
    pub(crate) target: Option<Target>,
    /// A worker is being started for the slot.
    starting: bool,
    /// A kill came while it was: the new worker is killed once published.
    kill_asked: bool,
    /// The worker last started is ready for calls (it said hello and ran
    /// the pool's initializer): `false` from the start's beginning until
    /// then, while it has been sent no call.
    ready: bool,
}

impl Switch {
    /// A worker is being started (made, saying hello, or running the
    /// pool's initializer) and is not ready for calls yet.
    fn unready(&self) -> bool {
        !self.ready && (self.starting || self.target.is_some())
    }

    /// Forgets worker `pid`, which ended, if it is still the slot's current
    /// one. (A worker retired by a caller of `apply` ends on that caller's
    /// thread while the slot thread may already have published its
    /// successor, which must stay reachable: a cancel of its call must
    /// reach it.)
    pub(crate) fn forget(&mut self, pid: u32) {
        if self.target.as_ref().is_some_and(|target| target.pid == pid) {
            self.target = None;
        }
    }
}

/// A start for a slot whose pool was terminated.
#[derive(Debug)]
pub(crate) struct Closed;

impl KillSwitch {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Switch> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills the current worker (and its process group), if any; one
    /// being started is killed as soon as it is published.
    pub(crate) fn kill(&self) {
        self.kill_for(Unless::Nothing);
    }

    /// [`kill`](Self::kill) to stop call `call`, unless the worker went past
    /// it: it finished, or the worker started one of the calls in `behind`
    /// (those sent after it), which a kill must not stop (see
    /// [`crate::shm::Halter`]). Returns whether it killed (or will kill,
    /// once published) or found nothing to kill.
    pub(crate) fn kill_unless_past(&self, call: u64, behind: &[u64]) -> bool {
        self.kill_for(Unless::Past(call, behind))
    }

    /// For a cancel of call `call`, which the slot holds as its running
    /// call: [`kill_unless_past`](Self::kill_unless_past), unless the slot
    /// is starting the worker the call waits for (made, saying hello, or
    /// running the pool's initializer: see [`mark_ready`](Self::mark_ready)).
    /// Then the call was never sent: nothing is killed, where a kill would
    /// throw the new worker away (its initializer's work with it) and start
    /// another, for a call no worker had. Also gives the pidfd of the
    /// worker it killed, if it killed one: the cancel waits for its end.
    pub(crate) fn stop_for_cancel(
        &self,
        call: u64,
        behind: &[u64],
    ) -> (CancelKill, Option<Arc<OwnedFd>>) {
        let mut state = self.lock();
        if state.unready() {
            return (CancelKill::Unsent, None);
        }
        if self.kill_locked(&mut state, Unless::Past(call, behind)) {
            let killed = state.target.as_ref().map(|t| t.pidfd.clone());
            (CancelKill::Killed, killed)
        } else {
            (CancelKill::WentPast, None)
        }
    }

    /// Whether the slot is starting the worker its running call waits for
    /// (see [`stop_for_cancel`](Self::stop_for_cancel)): that call was
    /// never sent.
    pub(crate) fn is_starting(&self) -> bool {
        self.lock().unready()
    }

    /// Holds the current worker before the first of `cancelled`, the
    /// cancelled calls among `behind` (those pipelined behind the one it
    /// runs), that it has not begun, and returns how many of `behind` it
    /// has begun (see [`crate::shm::Halter::hold_first_unbegun`]); 0 if it
    /// cannot tell.
    pub(crate) fn hold_first_unbegun(&self, behind: &[u64], cancelled: &[u64]) -> usize {
        let state = self.lock();
        state
            .target
            .as_ref()
            .and_then(|t| t.halter.as_ref())
            .map_or(0, |halter| halter.hold_first_unbegun(behind, cancelled))
    }

    /// [`kill`](Self::kill) a worker that has not started call `call`
    /// (it never took it in: a stopped worker), unless it started it after
    /// all, or one of the calls in `behind` (those sent after it; see
    /// [`crate::shm::Halter`]). Returns whether it killed.
    pub(crate) fn kill_unless_started(&self, call: u64, behind: &[u64]) -> bool {
        self.kill_for(Unless::Started(call, behind))
    }

    /// Takes back the calls `behind`, pipelined after call `call`, from
    /// the current worker, unless it started one of them (see
    /// [`crate::shm::Halter::give_back`]): `true` if it will run none of
    /// them. The worker is not stopped.
    pub(crate) fn give_back(&self, call: u64, behind: &[u64]) -> bool {
        let state = self.lock();
        match state.target.as_ref().and_then(|t| t.halter.as_ref()) {
            Some(halter) => halter.give_back(call, behind),
            None => false,
        }
    }

    fn kill_for(&self, unless: Unless<'_>) -> bool {
        let mut state = self.lock();
        self.kill_locked(&mut state, unless)
    }

    /// [`kill_for`](Self::kill_for), under the lock already taken.
    fn kill_locked(&self, state: &mut Switch, unless: Unless<'_>) -> bool {
        match &state.target {
            Some(target) => {
                let halted = match (&target.halter, unless) {
                    (Some(halter), Unless::Past(call, behind)) => {
                        halter.halt_unless_past(call, behind)
                    }
                    (Some(halter), Unless::Started(call, behind)) => {
                        halter.halt_unless_started(call, behind)
                    }
                    _ => true,
                };
                if halted {
                    target.kill();
                } else {
                    log::debug!(
                        target: "procpool",
                        "worker {} not killed: {}",
                        target.pid,
                        match unless {
                            Unless::Past(call, _) => format!("it went past call {call}"),
                            Unless::Started(call, _) => format!("it started call {call}"),
                            Unless::Nothing => String::new(),
                        }
                    );
                }
                halted
            }
            None if state.starting => {
                state.kill_asked = true;
                true
            }
            None => true,
        }
    }

    /// Refuses every later start (see [`is_closed`](Self::is_closed)) and
    /// kills the current worker, both under the lock: a start either was
    /// published before (and its worker is killed here) or finds the flag
    /// when it begins or publishes, and gives up.
    pub(crate) fn close_and_kill(&self) {
        let state = self.lock();
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(target) = &state.target {
            target.kill();
        }
    }

    /// Marks a start under way, unless the pool was terminated.
    pub(crate) fn begin_start(&self) -> Result<(), Closed> {
        let mut state = self.lock();
        if self.is_closed() {
            return Err(Closed);
        }
        state.starting = true;
        state.kill_asked = false;
        state.ready = false;
        Ok(())
    }

    /// The worker the last start published is ready: it said hello and ran
    /// the pool's initializer, and calls may be sent to it from now on.
    pub(crate) fn mark_ready(&self) {
        self.lock().ready = true;
    }

    /// Ends a start that made no worker.
    pub(crate) fn abandon_start(&self) {
        let mut state = self.lock();
        state.starting = false;
        state.kill_asked = false;
    }

    /// Makes the worker a start made the slot's current one, killing it at
    /// once if a kill came while it started. `Err` (nothing published) if
    /// the pool was terminated meanwhile: the caller ends the worker.
    pub(crate) fn publish(&self, target: Target) -> Result<(), Closed> {
        let mut state = self.lock();
        state.starting = false;
        let kill = std::mem::take(&mut state.kill_asked);
        if self.is_closed() {
            return Err(Closed);
        }
        if kill {
            target.kill();
        }
        state.target = Some(target);
        Ok(())
    }

    /// Whether [`close_and_kill`](Self::close_and_kill) ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::sync::Arc;

    use super::{CancelKill, KillSwitch, Target};

    /// A real child process (leading its own process group, as a worker
    /// does) and the target that stops it.
    fn sleeper() -> (std::process::Child, Target) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let pidfd = crate::sys::pidfd_open(child.id()).expect("pidfd");
        let target = Target::new(child.id(), Arc::new(pidfd), None);
        (child, target)
    }

    #[test]
    fn a_kill_during_a_start_reaches_the_worker_once_it_is_published() {
        let switch = KillSwitch::default();
        switch.begin_start().unwrap();
        switch.kill(); // Nothing to kill yet: remembered.
        let (mut child, target) = sleeper();
        switch.publish(target).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        // With no start under way and no worker, a kill is not remembered:
        // the next worker lives until it is killed itself.
        switch.lock().target = None;
        switch.kill();
        switch.begin_start().unwrap();
        let (mut child, target) = sleeper();
        switch.publish(target).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            child.try_wait().unwrap().is_none(),
            "killed by a stale kill"
        );
        switch.kill();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_cancel_during_a_start_kills_nothing_until_the_worker_is_ready() {
        let (parent, _worker) = crate::shm::pair_for_tests();
        let switch = KillSwitch::default();
        switch.begin_start().unwrap();
        // Being made: the call waiting for it was never sent.
        assert_eq!(switch.stop_for_cancel(1, &[]).0, CancelKill::Unsent);
        let (mut child, target) = sleeper();
        let target = Target::new(target.pid, target.pidfd, Some(parent.halter()));
        switch.publish(target).unwrap();
        // Published, saying hello or running the initializer: still unsent.
        assert_eq!(switch.stop_for_cancel(1, &[]).0, CancelKill::Unsent);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(child.try_wait().unwrap().is_none(), "killed while starting");
        // Ready: a cancel of the call it holds kills it.
        switch.mark_ready();
        assert_eq!(switch.stop_for_cancel(1, &[]).0, CancelKill::Killed);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_kill_for_a_call_the_worker_went_past_is_not_made() {
        let (parent, worker) = crate::shm::pair_for_tests();
        let switch = KillSwitch::default();
        let (mut child, target) = sleeper();
        let target = Target::new(target.pid, target.pidfd, Some(parent.halter()));
        switch.begin_start().unwrap();
        switch.publish(target).unwrap();
        // The worker started call 2, behind call 1 the kill is meant for.
        assert!(worker.begin_call(2).runs());
        assert!(!switch.kill_unless_past(1, &[2, 3]));
        // Call 2's reply is out: a kill for it is not made either.
        worker.end_call(2);
        assert!(!switch.kill_unless_past(2, &[3]));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(child.try_wait().unwrap().is_none(), "killed the wrong call");
        assert!(worker.begin_call(3).runs(), "left halted");
        // It runs call 3: killed.
        assert!(switch.kill_unless_past(3, &[4]));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_terminate_during_a_start_refuses_its_worker_and_every_later_start() {
        let switch = KillSwitch::default();
        switch.begin_start().unwrap();
        switch.close_and_kill();
        let (mut child, target) = sleeper();
        assert!(switch.publish(target).is_err(), "published after terminate");
        assert!(switch.lock().target.is_none());
        assert!(switch.begin_start().is_err());
        // (The backend ends a refused worker itself.)
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
