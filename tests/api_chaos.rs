//! API race chaos: threads share one pool and call it every way at random
//! (`apply`, `apply_async` then `get`, `get_timeout`, `cancel` or a drop,
//! `map`, `map_async` waited for or cancelled, `imap` dropped or cancelled
//! early, `imap_unordered`, calls by name, callbacks that submit more
//! work) while another thread, at a random moment, closes and joins the
//! pool, terminates it, drops the last handle, closes and cancels it, or
//! terminates it while another thread joins it. Each round is one seed and
//! one way of stopping (45 rounds; `PROCPOOL_CHAOS_SEEDS` and
//! `PROCPOOL_CHAOS_FIRST` run others).
//!
//! Every outcome is the right value or an error consistent with what
//! happened: `PoolClosed` only for a call that returned after the stop
//! began, `Terminated` only after `terminate` began, `Cancelled` only for
//! a call whose `cancel` said it took or after `close_and_cancel`; no
//! other error. Every callback runs exactly once; nothing hangs (a
//! watchdog aborts a round running two minutes); no child process is left
//! once the pool is gone.

mod support;

use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use procpool::{pool_task, AsyncResult, CancelOutcome, Error, MapOptions, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

#[pool_task]
fn twice(x: u64, us: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(us));
    x.wrapping_mul(2)
}

#[pool_task(name = "chaos/triple")]
fn triple(x: u64) -> u64 {
    x.wrapping_mul(3)
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    CloseJoin,
    Terminate,
    DropLast,
    /// `close_and_cancel`, then `join`.
    CloseCancel,
    /// `close` and `join` on one thread, `terminate` a moment later on
    /// another while the join waits.
    JoinThenTerminate,
}

impl Stop {
    fn terminates(self) -> bool {
        matches!(self, Stop::Terminate | Stop::JoinThenTerminate)
    }
}

/// Phases of a round: the stop is set before it begins.
const RUNNING: u8 = 0;
const STOPPING: u8 = 1;

/// What the threads of one round share.
struct Round {
    stop: Stop,
    phase: AtomicU8,
    /// Inconsistencies seen (callbacks cannot fail the test by panicking).
    problems: Mutex<Vec<String>>,
    /// How many times each callback ran, by its number.
    callbacks: Mutex<Vec<u32>>,
    /// Results submitted from callbacks, checked at the end: the result,
    /// its value, and whether the stop had begun when it was submitted.
    late: Mutex<Vec<(AsyncResult<u64>, u64, bool)>>,
}

impl Round {
    fn stopping(&self) -> bool {
        self.phase.load(SeqCst) >= STOPPING
    }

    fn problem(&self, what: String) {
        self.problems.lock().unwrap().push(what);
    }

    /// Checks one outcome: `want` if it is a value; `stopped` whether the
    /// stop had begun when the call returned (or, for a result, when it
    /// was submitted); `cancelled` whether a cancel of it took.
    fn judge<T: PartialEq + std::fmt::Debug>(
        &self,
        what: &str,
        got: &Result<T, Error>,
        want: &T,
        stopped: bool,
        cancelled: bool,
    ) {
        let fine = match got {
            _ if cancelled => matches!(got, Err(Error::Cancelled { .. })),
            Ok(v) => v == want,
            Err(Error::PoolClosed { .. }) => stopped && self.stop != Stop::DropLast,
            Err(Error::Terminated { .. }) => self.stop.terminates() && self.stopping(),
            // Still queued at `close_and_cancel`.
            Err(Error::Cancelled { .. }) => self.stop == Stop::CloseCancel && self.stopping(),
            Err(_) => false,
        };
        if !fine {
            self.problem(format!(
                "{what}: {got:?} (want {want:?}; stop {:?}, began {stopped}, cancelled {cancelled})",
                self.stop
            ));
        }
    }

    /// A new callback's number.
    fn callback(&self) -> usize {
        let mut calls = self.callbacks.lock().unwrap();
        calls.push(0);
        calls.len() - 1
    }

    fn ran(&self, n: usize) {
        self.callbacks.lock().unwrap()[n] += 1;
    }
}

/// One random operation on the pool (if it is still there).
fn operate(pool: &Weak<Pool>, round: &Arc<Round>, rng: &mut Rng) -> bool {
    let Some(pool) = pool.upgrade() else {
        return false;
    };
    let x = rng.below(1 << 40);
    let us = [0, 0, 50, 500, 3000][rng.below(5) as usize];
    let opts = MapOptions::new().chunksize(1 + rng.below(4) as usize);
    let items: Vec<u64> = (0..rng.below(12)).map(|i| x + i).collect();
    let doubled: Vec<u64> = items.iter().map(|i| i * 2).collect();
    let pairs = items.iter().map(|&i| (i, us / 10));
    match rng.below(13) {
        0 => {
            let got = apply_twice(&pool, x, us);
            round.judge("apply", &got, &(x * 2), round.stopping(), false);
        }
        1 => {
            let r = apply_async_twice(&pool, x, us);
            let stopped = round.stopping();
            round.judge("apply_async", &r.get(), &(x * 2), stopped, false);
        }
        2 => {
            let r = apply_async_twice(&pool, x, us);
            let stopped = round.stopping();
            match r.get_timeout(Duration::from_micros(rng.below(2000))) {
                Err(Error::WaitTimeout { .. }) => {
                    round.judge("get after get_timeout", &r.get(), &(x * 2), stopped, false)
                }
                got => round.judge("get_timeout", &got, &(x * 2), stopped, false),
            }
        }
        3 => {
            let r = apply_async_twice(&pool, x, us);
            let stopped = round.stopping();
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
            let outcome = r.cancel();
            let got = r.get();
            match outcome {
                // It never ran.
                CancelOutcome::NotStarted => round.judge("not started", &got, &0, stopped, true),
                // Stopped, or kept if it finished at that very instant.
                CancelOutcome::Stopped if got.is_ok() => {
                    round.judge("stopped", &got, &(x * 2), stopped, false)
                }
                // Or ended by a terminate in that instant (as a time
                // limit may end it), which fails every unfinished task.
                CancelOutcome::Stopped
                    if matches!(got, Err(Error::Terminated { .. }))
                        && round.stop.terminates()
                        && round.stopping() => {}
                CancelOutcome::Stopped => round.judge("stopped", &got, &0, stopped, true),
                _ => round.judge("cancel too late", &got, &(x * 2), stopped, false),
            }
        }
        4 => {
            // Dropped at once; its callback sees the outcome.
            let n = round.callback();
            let r = apply_async_twice(&pool, x, us);
            let (stopped, r2) = (round.stopping(), round.clone());
            drop(r.on_complete(move |got| {
                r2.ran(n);
                r2.judge("dropped", &got, &(x * 2), stopped, false);
            }));
        }
        5 => {
            let got = map_twice_with(&pool, pairs, opts);
            round.judge("map", &got, &doubled, round.stopping(), false);
        }
        6 => {
            // Read a few, then dropped.
            let take = rng.below(items.len() as u64 + 1) as usize;
            let chunk = format!("{opts:?}");
            let got: Vec<_> = imap_twice_with(&pool, pairs, opts).take(take).collect();
            let stopped = round.stopping();
            let shown = format!("{got:?} of {doubled:?} {chunk}");
            // Each result in its item's place; an error ends it.
            if got
                .iter()
                .position(Result::is_err)
                .is_some_and(|at| at + 1 < got.len())
            {
                round.problem(format!("imap went on after an error: {shown}"));
            }
            for (got, want) in got.into_iter().zip(&doubled) {
                round.judge(&format!("imap {shown}"), &got, want, stopped, false);
            }
        }
        7 => {
            let n = round.callback();
            let r = map_async_twice_with(&pool, pairs, opts);
            let (stopped, r2, want) = (round.stopping(), round.clone(), doubled.clone());
            let r = r.on_complete(move |got| {
                r2.ran(n);
                r2.judge("map_async callback", &got, &want, stopped, false);
            });
            if rng.below(2) == 0 {
                round.judge("map_async", &r.get(), &doubled, stopped, false);
            }
        }
        8 => {
            // A callback that submits more work to the same pool.
            let n = round.callback();
            let (weak, r2) = (Arc::downgrade(&pool), round.clone());
            let r = apply_async_twice(&pool, x, us).callback(move |v| {
                r2.ran(n);
                if let Some(pool) = weak.upgrade() {
                    let late = apply_async_twice(&pool, v, 0);
                    let stopped = r2.stopping();
                    r2.late.lock().unwrap().push((late, v * 2, stopped));
                }
            });
            let stopped = round.stopping();
            let got = r.get();
            // The callback runs for values only; count it as run otherwise.
            if got.is_err() {
                round.ran(n);
            }
            round.judge("callback's own", &got, &(x * 2), stopped, false);
        }
        9 => {
            let got = if rng.below(2) == 0 {
                pool.apply_by_name::<u64>("chaos/triple", &(x,))
            } else {
                pool.apply_async_by_name::<u64>("chaos/triple", &(x,)).get()
            };
            round.judge("by name", &got, &(x * 3), round.stopping(), false);
        }
        11 => {
            // Cancelled after a few: values in place, then `Cancelled` once
            // (if anything was left), then the end.
            let mut lazy = imap_twice_with(&pool, pairs, opts);
            let take = rng.below(items.len() as u64 + 1) as usize;
            let mut got: Vec<_> = lazy.by_ref().take(take).collect();
            let _ = lazy.cancel();
            got.extend(lazy);
            let stopped = round.stopping();
            let shown = format!("{got:?} of {doubled:?}, cancelled after {take}");
            match got.iter().position(Result::is_err) {
                Some(at) if at + 1 < got.len() => {
                    round.problem(format!("cancelled imap went on after an error: {shown}"))
                }
                // (Cancelled before it queued anything, it just ends.)
                None if got.len() < doubled.len() && take > 0 => round.problem(format!(
                    "cancelled imap ended short without an error: {shown}"
                )),
                _ => {}
            }
            for (got, want) in got.into_iter().zip(&doubled) {
                let cancelled = matches!(got, Err(Error::Cancelled { .. }));
                round.judge(
                    &format!("cancelled imap {shown}"),
                    &got,
                    want,
                    stopped,
                    cancelled,
                );
            }
        }
        12 => {
            let r = map_async_twice_with(&pool, pairs, opts);
            let stopped = round.stopping();
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
            let outcome = r.cancel();
            let got = r.get();
            let kept = matches!(outcome, CancelOutcome::Finished)
                || (outcome == CancelOutcome::Stopped && got.is_ok())
                || (outcome == CancelOutcome::Stopped
                    && matches!(got, Err(Error::Terminated { .. }))
                    && round.stop.terminates()
                    && round.stopping());
            round.judge("cancelled map_async", &got, &doubled, stopped, !kept);
        }
        _ => {
            let got: Vec<_> = imap_unordered_twice_with(&pool, pairs, opts).collect();
            let stopped = round.stopping();
            // Values in any order, each once; all of them if nothing failed.
            let mut left = doubled.clone();
            let mut failed = false;
            for got in got {
                match got {
                    Ok(v) => match left.iter().position(|&w| w == v) {
                        Some(at) => drop(left.swap_remove(at)),
                        None => round.problem(format!("imap_unordered: {v} unasked or twice")),
                    },
                    err => {
                        failed = true;
                        round.judge("imap_unordered", &err, &0, stopped, false);
                    }
                }
            }
            if !failed && !left.is_empty() {
                round.problem(format!("imap_unordered: {left:?} never came"));
            }
        }
    }
    true
}

fn one_round(seed: u64, stop: Stop) {
    let pool = Arc::new(Pool::new(1 + seed as usize % 3).unwrap());
    let round = Arc::new(Round {
        stop,
        phase: AtomicU8::new(RUNNING),
        problems: Mutex::new(Vec::new()),
        callbacks: Mutex::new(Vec::new()),
        late: Mutex::new(Vec::new()),
    });
    let weak = Arc::downgrade(&pool);
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (weak, round) = (weak.clone(), round.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng((seed << 8 | t).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            // On for a few operations after the stop began (their calls
            // are refused), or until the pool is gone.
            let mut after = 0;
            while after < 5 && operate(&weak, &round, &mut rng) {
                if round.stopping() {
                    after += 1;
                }
            }
        }));
    }
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    std::thread::sleep(Duration::from_millis(rng.below(400)));
    round.phase.store(STOPPING, SeqCst);
    match stop {
        Stop::CloseJoin => {
            pool.close();
            pool.join();
        }
        Stop::Terminate => pool.terminate(),
        Stop::DropLast => {}
        Stop::CloseCancel => {
            pool.close_and_cancel();
            pool.join();
        }
        Stop::JoinThenTerminate => {
            let joining = {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    pool.close();
                    pool.join();
                })
            };
            std::thread::sleep(Duration::from_millis(rng.below(20)));
            pool.terminate();
            joining.join().unwrap();
        }
    }
    drop(pool);
    for t in threads {
        t.join().unwrap();
    }
    // Work the callbacks submitted.
    let late = std::mem::take(&mut *round.late.lock().unwrap());
    for (r, want, stopped) in late {
        round.judge("submitted by a callback", &r.get(), &want, stopped, false);
    }
    // The pool is gone once its last user (a thread, a callback) let go.
    let deadline = Instant::now() + Duration::from_secs(30);
    while weak.strong_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        weak.strong_count(),
        0,
        "seed {seed}: the pool is still held"
    );
    assert_no_children();
    let runs = round.callbacks.lock().unwrap().clone();
    let wrong: Vec<_> = runs.iter().enumerate().filter(|(_, &n)| n != 1).collect();
    assert!(
        wrong.is_empty(),
        "seed {seed} {stop:?}: callbacks not run exactly once (number, runs): {wrong:?}"
    );
    let problems = round.problems.lock().unwrap();
    assert!(problems.is_empty(), "seed {seed} {stop:?}: {problems:#?}");
}

#[test]
fn threads_calling_every_way_while_the_pool_stops_get_consistent_outcomes() {
    let _serial = serial();
    // Each round's seed as it begins: a round that runs two minutes hangs.
    let (begun, rounds) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let mut seed = None;
        loop {
            match rounds.recv_timeout(Duration::from_secs(120)) {
                Ok(next) => seed = Some(next),
                // The test ended (or failed, and says why).
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "api_chaos: round of seed {seed:?} still running after 120 s; aborting"
                    );
                    std::process::abort();
                }
            }
        }
    });
    let seeds: u64 = std::env::var("PROCPOOL_CHAOS_SEEDS").map_or(45, |s| s.parse().unwrap());
    let first: u64 = std::env::var("PROCPOOL_CHAOS_FIRST").map_or(0, |s| s.parse().unwrap());
    for seed in first..first + seeds {
        let stop = [
            Stop::CloseJoin,
            Stop::Terminate,
            Stop::DropLast,
            Stop::CloseCancel,
            Stop::JoinThenTerminate,
        ][seed as usize % 5];
        begun.send(seed + 1).unwrap();
        one_round(seed + 1, stop);
    }
}
