//! The smoke run's checks: gross regressions relative to the lowest floor
//! measured in the same run, never absolute times (which depend on the
//! machine). CI fails only on these.

use crate::callers;
use crate::figures::key;
use crate::latency::pinned_key;
use crate::report::Run;
use crate::systems::System;

/// Collects failed checks, one line each.
struct Checks<'a> {
    run: &'a Run,
    failures: Vec<String>,
}

impl Checks<'_> {
    /// procpool's `key` must be at most `limit` times worse than the lowest floor's.
    fn against_floor(&mut self, what: &str, key: &str, higher_is_better: bool, limit: f64) {
        let procpool = self.run.get(System::Procpool, key);
        let floor = self.run.best_floor(key, higher_is_better).map(|f| f.1);
        self.ratio(what, procpool, floor, higher_is_better, limit);
    }

    /// `ours` must be at most `limit` times worse than `floor`.
    fn ratio(
        &mut self,
        what: &str,
        ours: Option<f64>,
        floor: Option<f64>,
        higher_is_better: bool,
        limit: f64,
    ) {
        let (Some(p), Some(f)) = (ours, floor) else {
            self.failures.push(format!(
                "{what}: no figure (procpool {ours:?}, floor {floor:?})"
            ));
            return;
        };
        let worse = if higher_is_better { f / p } else { p / f };
        if worse > limit {
            self.failures.push(format!(
                "{what}: {worse:.1}× worse than the lowest floor (limit {limit}×)"
            ));
        }
    }
}

/// Returns a line per failed check.
pub fn failures(run: &Run) -> Vec<String> {
    let mut c = Checks {
        run,
        failures: Vec::new(),
    };
    let floor_rtt = run.best_floor(&pinned_key("p50"), false).map(|f| f.1);
    c.against_floor("apply p50, pinned", &pinned_key("p50"), false, 5.0);
    for &n in &run.plan.startup_workers {
        c.against_floor(
            &format!("startup of {n} workers"),
            &key::startup(n),
            false,
            10.0,
        );
    }
    // Per-task cost of apply_async against one bare round trip: pipelining
    // over two workers should beat it, so 5× is a gross regression.
    let per_task_us = run.get(System::Procpool, key::ASYNC_TPS).map(|t| 1e6 / t);
    c.ratio(
        "apply_async per-task time vs one floor round trip",
        per_task_us,
        floor_rtt,
        false,
        5.0,
    );
    // Many callers: the wall time per call of 16 threads on 2 workers, against
    // one bare round trip (today about 2×; serialising every caller behind
    // one lock with hand-offs would be far worse).
    let per_call_us = run
        .get(System::Procpool, &callers::key(16, "cps"))
        .map(|c| 1e6 / c);
    c.ratio(
        "16 callers: time per call vs one floor round trip",
        per_call_us,
        floor_rtt,
        false,
        20.0,
    );
    if let Some(&(mib, _)) = run.plan.payloads.first() {
        // Small payloads are dominated by a few copies whose cost swings
        // with the machine's load; only an order of magnitude more counts.
        c.against_floor(
            &format!("{mib} MiB payload (ByteBuf)"),
            &key::payload(mib, true),
            true,
            20.0,
        );
    }
    let rss_excess = run
        .get(System::Procpool, key::RSS_MIB)
        .zip(run.best_floor(key::RSS_MIB, false))
        .map(|(p, f)| p - f.1);
    if let Some(extra) = rss_excess.filter(|e| *e > 50.0) {
        c.failures.push(format!(
            "idle worker RSS {extra:.1} MiB above the floor (limit 50 MiB)"
        ));
    }
    c.failures
}
