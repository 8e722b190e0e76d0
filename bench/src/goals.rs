//! The goals, checked against one run: each a ratio (or a bound) computed
//! from the run's own figures, PASS or FAIL.

use crate::figures::key;
use crate::latency::pinned_key;
use crate::report::Run;
use crate::systems::System::{self, *};

/// One goal, checked against this run.
pub struct Goal {
    pub text: String,
    pub measured: String,
    /// `None`: a figure it needs is missing.
    pub pass: Option<bool>,
}

/// Builds the goal list.
struct Goals<'a> {
    run: &'a Run,
    list: Vec<Goal>,
}

impl Goals<'_> {
    fn get(&self, s: System, k: &str) -> Option<f64> {
        self.run.get(s, k)
    }

    /// A goal on a ratio `r` (shown as `r×`).
    fn ratio(&mut self, text: &str, r: Option<f64>, pass: impl Fn(f64) -> bool) {
        self.list.push(Goal {
            text: text.to_string(),
            measured: r.map_or("n/a".into(), |r| format!("{r:.2}×")),
            pass: r.map(pass),
        });
    }

    /// A goal on a figure `v`, shown with `unit`.
    fn bound(&mut self, text: &str, v: Option<f64>, unit: &str, pass: impl Fn(f64) -> bool) {
        self.list.push(Goal {
            text: text.to_string(),
            measured: v.map_or("n/a".into(), |v| format!("{v:.2} {unit}")),
            pass: v.map(pass),
        });
    }
}

fn over(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

pub fn goals(run: &Run) -> Vec<Goal> {
    let mut g = Goals {
        run,
        list: Vec::new(),
    };
    let p50 = pinned_key("p50");
    let apply = g.get(Procpool, &p50);
    let floor = run.best_floor(&p50, false).map(|f| f.1);
    g.ratio(
        "apply p50 pinned ≤ 1.5× the lowest floor",
        over(apply, floor),
        |r| r <= 1.5,
    );
    g.ratio(
        "apply ≥ 2.5× faster than procspawn (pinned p50)",
        over(g.get(Procspawn, &p50), apply),
        |r| r >= 2.5,
    );
    g.ratio(
        "apply_async throughput ≥ 8× Python",
        over(
            g.get(Procpool, key::ASYNC_TPS),
            g.get(Python, key::ASYNC_TPS),
        ),
        |r| r >= 8.0,
    );
    g.ratio(
        "map ≥ 5× Python",
        over(g.get(Procpool, key::MAP_IPS), g.get(Python, key::MAP_IPS)),
        |r| r >= 5.0,
    );
    g.ratio(
        "CPU scaling ≥ 1.9×",
        g.get(Procpool, key::CPU_SPEEDUP),
        |r| r >= 1.9,
    );
    if let Some(&(mib, _)) = run.plan.payloads.last() {
        let py = g.get(Python, &key::payload(mib, false));
        for (buf, name) in [(false, "Vec<u8>"), (true, "ByteBuf")] {
            g.ratio(
                &format!("{mib} MiB payload ≥ 3× Python MB/s ({name})"),
                over(g.get(Procpool, &key::payload(mib, buf)), py),
                |r| r >= 3.0,
            );
        }
    }
    let n = run.plan.processes;
    g.bound(
        "startup ≤ 5 ms",
        g.get(Procpool, &key::startup(n)),
        "ms",
        |s| s <= 5.0,
    );
    let extra = g
        .get(Procpool, key::RSS_MIB)
        .zip(run.best_floor(key::RSS_MIB, false))
        .map(|(p, f)| p - f.1);
    g.bound(
        "idle worker RSS ≤ 5 MiB above the floor",
        extra,
        "MiB",
        |e| e <= 5.0,
    );
    g.list
}

pub fn text(goals: &[Goal]) -> String {
    let mut out = String::from("| goal | measured | result |\n|---|---:|---|\n");
    for goal in goals {
        let verdict = match goal.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        out.push_str(&format!(
            "| {} | {} | {verdict} |\n",
            goal.text, goal.measured
        ));
    }
    out
}
