//! An in-memory backend for unit tests of the scheduler and the slot loop:
//! each fake worker answers the frames it is sent as a script says (reply,
//! reply late, die, hang, talk nonsense), records what it was sent, and can
//! be told to fail or stall its start. No process is involved, so these
//! tests run in milliseconds and are deterministic.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Backend, KillSwitch, Limits, Link};
use crate::error::{Error, ExitInfo};
use crate::wire::{self, Frame, FrameError, Reply, Request};

/// What a fake worker does with one call.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Answers at once with these result bytes.
    Reply(Vec<u8>),
    /// Answers with these bytes once this long has passed.
    ReplyAfter(Duration, Vec<u8>),
    /// Dies before answering (its later calls never run).
    Die,
    /// Dies after taking the call and before starting it (it never runs,
    /// nor do the calls after it).
    DieBeforeStart,
    /// Never answers.
    Hang,
    /// Answers with a frame that is no reply.
    Garbage,
    /// Begins a reply and stops in the middle of it, alive.
    Stall,
}

/// Decides what a fake worker does with a call of `task` on `args`.
pub(crate) type Script = Arc<dyn Fn(&str, &[u8]) -> Action + Send + Sync>;

/// One call a fake worker received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    /// The fake worker's number (its "pid").
    pub(crate) worker: u32,
    /// The call id.
    pub(crate) id: u64,
    pub(crate) task: String,
    /// The call's arguments (for a chunk, its items).
    pub(crate) args: Vec<u8>,
    /// How many frames the worker received in the same write.
    pub(crate) batch: usize,
    /// Whether the worker ran it (false: it arrived behind a call it died or
    /// hung on, so it never started).
    pub(crate) ran: bool,
}

/// What every fake worker of one backend shares with the test.
#[derive(Default)]
pub(crate) struct Log {
    received: Mutex<Vec<Received>>,
    /// Workers asked to exit (SHUTDOWN).
    shutdowns: Mutex<Vec<u32>>,
}

impl Log {
    pub(crate) fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// The calls that ran, in the order they ran.
    pub(crate) fn ran(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.ran).collect()
    }

    pub(crate) fn shutdowns(&self) -> Vec<u32> {
        lock(&self.shutdowns).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts fake workers.
pub(crate) struct FakeBackend {
    script: Script,
    pub(crate) log: Arc<Log>,
    next_pid: AtomicU32,
    /// Starts made so far.
    pub(crate) starts: AtomicUsize,
    /// How many of the next starts fail.
    pub(crate) fail_starts: AtomicUsize,
    /// How long each start takes.
    pub(crate) start_delay: Mutex<Duration>,
}

impl FakeBackend {
    pub(crate) fn new(script: impl Fn(&str, &[u8]) -> Action + Send + Sync + 'static) -> Self {
        FakeBackend {
            script: Arc::new(script),
            log: Arc::default(),
            next_pid: AtomicU32::new(1),
            starts: AtomicUsize::new(0),
            fail_starts: AtomicUsize::new(0),
            start_delay: Mutex::new(Duration::ZERO),
        }
    }
}

impl Backend for Arc<FakeBackend> {
    fn start(
        &self,
        kill: &Arc<KillSwitch>,
        limits: Limits,
        slot: usize,
    ) -> Result<Box<dyn Link>, Error> {
        FakeBackend::start(self, kill, limits, slot)
    }
}

impl Backend for FakeBackend {
    fn start(
        &self,
        kill: &Arc<KillSwitch>,
        _limits: Limits,
        _slot: usize,
    ) -> Result<Box<dyn Link>, Error> {
        let delay = *lock(&self.start_delay);
        std::thread::sleep(delay);
        // Like the real backend: checked under the switch's lock, so that
        // no worker starts once the pool was terminated.
        let _guard = kill.lock();
        if kill.is_closed() {
            return Err(Error::WorkerStart {
                task: String::new(),
                message: "the pool was terminated".into(),
            });
        }
        self.starts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::WorkerStart {
                task: String::new(),
                message: "a scripted start failure".into(),
            });
        }
        Ok(Box::new(FakeLink {
            pid: self.next_pid.fetch_add(1, Ordering::SeqCst),
            script: self.script.clone(),
            log: self.log.clone(),
            kill: kill.clone(),
            inbox: VecDeque::new(),
            state: State::Alive,
            last_run: 0,
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Alive,
    /// Stopped answering: it hangs on a call.
    Hung,
    Dead,
    Killed,
    ShutDown,
}

/// One fake worker. Calls run when they are sent; their replies wait in
/// `inbox` until they are due.
struct FakeLink {
    pid: u32,
    script: Script,
    log: Arc<Log>,
    kill: Arc<KillSwitch>,
    inbox: VecDeque<(Instant, Vec<u8>)>,
    state: State,
    /// The call it started last.
    last_run: u64,
}

impl FakeLink {
    /// Fails a write to a worker that was gone before it.
    fn writable(&self) -> Result<(), FrameError> {
        if self.gone() {
            return Err(FrameError::Closed);
        }
        Ok(())
    }

    /// Takes one frame of a write of `batch` frames: runs it, unless the
    /// worker died or hung on an earlier one.
    fn take(&mut self, frame: &[u8], batch: usize) {
        let (id, task, args, chunk) = match wire::parse_request(frame) {
            Ok(Request::Call { id, name, args, .. }) => (id, name, args, false),
            Ok(Request::CallBatch {
                id, name, items, ..
            }) => (id, name, items, true),
            Ok(Request::Shutdown) => {
                lock(&self.log.shutdowns).push(self.pid);
                self.state = State::ShutDown;
                return;
            }
            Err(e) => panic!("the fake worker got a bad request: {e}"),
        };
        let action = (self.state == State::Alive).then(|| (self.script)(task, args));
        let ran = action.is_some() && !matches!(action, Some(Action::DieBeforeStart));
        if ran {
            self.last_run = id;
        }
        lock(&self.log.received).push(Received {
            worker: self.pid,
            id,
            task: task.to_string(),
            args: args.to_vec(),
            batch,
            ran,
        });
        let Some(action) = action else {
            return;
        };
        let value = |bytes: &[u8]| {
            let reply = match chunk {
                false => Reply::Value {
                    id,
                    bytes: bytes.to_vec().into(),
                },
                true => Reply::Results {
                    id,
                    bytes: bytes.to_vec().into(),
                },
            };
            wire::encode_reply(&reply)
        };
        let due = |after: Duration| {
            let last = self.inbox.back().map_or_else(Instant::now, |(at, _)| *at);
            last.max(Instant::now()) + after
        };
        match action {
            Action::Reply(bytes) => self.inbox.push_back((due(Duration::ZERO), value(&bytes))),
            Action::ReplyAfter(after, bytes) => self.inbox.push_back((due(after), value(&bytes))),
            Action::Die | Action::DieBeforeStart => self.state = State::Dead,
            Action::Hang => self.state = State::Hung,
            Action::Stall => {
                // An empty "frame" stands for the stalled one (see `recv`).
                self.inbox.push_back((due(Duration::ZERO), Vec::new()));
                self.state = State::Hung;
            }
            Action::Garbage => {
                let hello = wire::encode_reply(&Reply::Hello { pid: self.pid });
                self.inbox.push_back((due(Duration::ZERO), hello));
            }
        }
    }

    fn gone(&self) -> bool {
        matches!(self.state, State::Dead | State::Killed | State::ShutDown) || self.kill.is_closed()
    }
}

impl Link for FakeLink {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn send(&mut self, parts: &[&[u8]], tail: &[u8]) -> Result<(), FrameError> {
        self.writable()?;
        self.take(&[parts.concat(), tail.to_vec()].concat(), 1);
        Ok(())
    }

    fn send_batch(&mut self, frames: &[[&[u8]; 2]]) -> Result<(), FrameError> {
        self.writable()?;
        for parts in frames {
            self.take(&parts.concat(), frames.len());
        }
        Ok(())
    }

    fn recv(&mut self, timeout: Option<Duration>) -> Result<Frame, FrameError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some((due, _)) = self.inbox.front() {
                if *due <= Instant::now() {
                    let frame = self.inbox.pop_front().expect("a reply is due").1;
                    if frame.is_empty() {
                        return Err(FrameError::Stalled(Duration::from_millis(1)));
                    }
                    return Ok(Frame::plain(frame));
                }
            } else if self.gone() {
                return Err(FrameError::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(FrameError::TimedOut);
            }
            if self.kill.is_closed() {
                self.state = State::Killed;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn started(&mut self, id: u64) -> bool {
        self.last_run == id
    }

    fn has_exited(&mut self) -> bool {
        self.gone()
    }

    fn resident_bytes(&mut self) -> Option<u64> {
        None
    }

    fn kill(&mut self) {
        // Replies already written stay readable; work in progress is lost.
        let now = Instant::now();
        self.inbox.retain(|(due, _)| *due <= now);
        self.state = State::Killed;
    }

    fn finish(self: Box<Self>, _grace: Duration) -> ExitInfo {
        match self.state {
            State::ShutDown => ExitInfo::Code(0),
            State::Dead => ExitInfo::Code(101),
            State::Alive | State::Hung | State::Killed => ExitInfo::Signal(9),
        }
    }
}
