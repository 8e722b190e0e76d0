//! The seam between a [`Pool`](super::Pool) and whatever runs its calls.
//!
//! A `Pool` hands each call to a [`Dispatcher`]: something that accepts
//! calls and settles their promises. Local worker processes are one
//! implementation ([`super::local::LocalPool`]); a broker that feeds nodes
//! on other hosts is another, without touching the macro, the map family or
//! the user's API, which all go through the `Pool`.

use crate::call::{Call, Job};
use crate::result::{CancelOutcome, Outcome};

/// How many calls wait and whether the pool still takes more.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Status {
    pub(crate) queued: usize,
    pub(crate) closed: bool,
    pub(crate) terminated: bool,
}

/// Accepts calls and settles their promises.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    /// Accepts `job`. Its promise is settled exactly once, eventually,
    /// whatever happens to whatever runs it: with its outcome, or with
    /// `PoolClosed` if the pool no longer takes calls. Never blocks on the
    /// call itself.
    fn submit(&self, job: Job);

    /// Runs `call` on the calling thread if that can be done at once
    /// (`apply`'s fast path), or gives it back to be submitted. Only a call
    /// not taken is given back: one taken is settled by this call, even if
    /// the pool is closed meanwhile (a submit would then refuse it).
    fn run_here(&self, call: Call) -> Result<Outcome, Call> {
        Err(call)
    }

    /// Cancels the call `id` accepted earlier: one still waiting never runs;
    /// one running is stopped (whatever runs it is stopped and replaced,
    /// without touching other calls). Either way its promise is settled with
    /// `Cancelled`, at once or shortly after. One already settled (or
    /// unknown) is left as it is. Never blocks on the call itself.
    fn cancel(&self, id: u64) -> CancelOutcome;

    /// Settles every call that has not started as `Cancelled` (they never
    /// run), those queued at once and those pipelined behind a running call
    /// once it has its outcome, and returns how many there were; running
    /// calls go on.
    fn cancel_queued(&self) -> usize;

    /// Accepts no more calls; those accepted still run.
    fn close(&self);

    /// Closes, then waits until every accepted call is settled and
    /// everything that ran them is stopped.
    fn join(&self);

    /// Stops now: every call not finished fails with `Terminated`. Returns
    /// once everything that ran them is stopped.
    fn terminate(&self);

    /// How many calls wait, and whether the pool still takes calls.
    fn status(&self) -> Status;

    /// How many processes run the calls, if the dispatcher knows better
    /// than the pool's configuration (nodes come and go).
    fn processes(&self) -> Option<usize> {
        None
    }

    /// Holds accepted calls that have not started while `gate` says no
    /// (see `Queue::set_start_gate`); ignored by dispatchers that hold
    /// nothing (a broker's).
    #[cfg(feature = "redis")]
    fn set_start_gate(&self, _gate: super::queue::StartGate) {}
}
