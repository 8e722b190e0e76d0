//! The goals, checked against one run: each a ratio (or a bound) computed
//! from the run's own figures, PASS or FAIL. Issue 11's goals first, then
//! those of issue 5 that issue 11 did not replace.

use crate::callers;
use crate::figures::key;
use crate::latency::{pinned_key, unpinned_key};
use crate::report::Run;
use crate::systems::System::{self, *};

/// procpool's map of 10⁷ items ÷ the socket floor's, on the code issue 11
/// started from (main at 0e112d8, "today" in the issue's goal): the median
/// over 9 runs of `--probe map 10000000 5 2` (each the median ratio of 5
/// adjacent pairs; the 9 ranged 0.37–0.65 on the loaded 2-core machine).
/// The goal asks for 3× today's items/s; measured as a ratio to the floor
/// in the same run, so it depends less on the machine's load.
pub const MAP_BIG_TODAY_VS_FLOOR: f64 = 0.44;

/// One goal, checked against this run.
pub struct Goal {
    pub text: String,
    pub measured: String,
    /// `None`: a figure it needs was not measured (e.g. Python skipped).
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
        self.push(text, r.map(|r| (format!("{r:.2}×"), pass(r))));
    }

    /// A goal on a figure `v`, shown with `unit`.
    fn bound(&mut self, text: &str, v: Option<f64>, unit: &str, pass: impl Fn(f64) -> bool) {
        self.push(text, v.map(|v| (format!("{v:.2} {unit}"), pass(v))));
    }

    fn push(&mut self, text: &str, checked: Option<(String, bool)>) {
        let (measured, pass) = match checked {
            Some((m, p)) => (m, Some(p)),
            None => ("n/a".into(), None),
        };
        self.list.push(Goal {
            text: text.to_string(),
            measured,
            pass,
        });
    }

    /// A goal that cannot be checked because procpool's row `k` failed:
    /// FAIL, with why.
    fn failed_row(&mut self, text: &str, k: &str) -> bool {
        let Some(why) = self.run.failure(Procpool, k) else {
            return false;
        };
        self.list.push(Goal {
            text: text.to_string(),
            measured: why.to_string(),
            pass: Some(false),
        });
        true
    }
}

fn over(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// Issue 11's goals, then issue 5's still in force.
pub fn goals(run: &Run) -> Vec<Goal> {
    let mut g = Goals {
        run,
        list: Vec::new(),
    };
    latency_goals(&mut g);
    throughput_goals(&mut g);
    memory_goals(&mut g);
    startup_and_map_goals(&mut g);
    issue5_goals(&mut g);
    g.list
        .extend(crate::distributed_report::goals(&run.distributed));
    g.list
}

fn latency_goals(g: &mut Goals) {
    let p50 = pinned_key("p50");
    let apply = g.get(Procpool, &p50);
    let floor = g.run.best_floor(&p50, false);
    let floor_name = floor.map_or("n/a", |f| f.0.short());
    let floor = floor.map(|f| f.1);
    g.ratio(
        &format!("11: apply p50 pinned ≤ 1.3× the lowest floor ({floor_name}, pinned)"),
        over(apply, floor),
        |r| r <= 1.3,
    );
    let worst = g.get(Procpool, &unpinned_key("p50", "max"));
    g.ratio(
        "11: apply p50 unpinned in each fresh pool (the worst) ≤ 2× that floor",
        over(worst, floor),
        |r| r <= 2.0,
    );
    g.ratio(
        "11: apply p99 pinned ≤ 3× its p50",
        over(g.get(Procpool, &pinned_key("p99")), apply),
        |r| r <= 3.0,
    );
    g.ratio(
        "11: Python Pool.apply p50 unpinned (median of its fresh pools) \
         ÷ procpool's worst fresh pool ≥ 30×",
        over(g.get(Python, &unpinned_key("p50", "median")), worst),
        |r| r >= 30.0,
    );
}

fn throughput_goals(g: &mut Goals) {
    let tps = g.get(Procpool, key::ASYNC_TPS);
    g.bound(
        "11: apply_async throughput, 2 workers ≥ 3 M tasks/s",
        tps.map(|t| t / 1e6),
        "M tasks/s",
        |t| t >= 3.0,
    );
    g.ratio(
        "11: apply_async throughput ≥ 100× Python",
        over(tps, g.get(Python, key::ASYNC_TPS)),
        |r| r >= 100.0,
    );
    let one = g.get(Procpool, &callers::key(1, "cps"));
    g.ratio(
        "11: 16 threads calling apply on 2 workers: calls/s ≥ the 1-thread figure",
        over(g.get(Procpool, &callers::key(16, "cps")), one),
        |r| r >= 1.0,
    );
    g.ratio(
        "11: 16 threads: p99 ≤ 20× the 1-thread p50",
        over(
            g.get(Procpool, &callers::key(16, "p99")),
            g.get(Procpool, &callers::key(1, "p50")),
        ),
        |r| r <= 20.0,
    );
    let largest = g.run.plan.payloads.last().map(|l| l.0);
    if let Some(mib) = largest {
        let k = key::payload(mib, false);
        // Against the lowest floor (the highest rate), as the main table's row.
        let floor = g.run.best_floor(&k, true);
        let floor_name = floor.map_or("n/a", |f| f.0.short());
        g.ratio(
            &format!("11: {mib} MiB Vec<u8> round trip ≥ 1.0× the lowest floor ({floor_name})"),
            over(g.get(Procpool, &k), floor.map(|f| f.1)),
            |r| r >= 1.0,
        );
    }
}

fn memory_goals(g: &mut Goals) {
    for &(mib, _) in &g.run.plan.bulk.clone() {
        let mbs = key::bulk(mib, "mbs");
        if mib >= 256 {
            let text = format!("11: {mib} MiB Vec<u8> round trip on a default pool works");
            if !g.failed_row(&text, &mbs) {
                let v = g.get(Procpool, &mbs);
                g.push(&text, v.map(|v| (format!("works, {v:.0} MB/s"), true)));
            }
        }
        let text = format!(
            "11: parent peak for a {mib} MiB round trip ≤ 2N + 16 MiB ({} MiB)",
            2 * mib + 16
        );
        let peak = key::bulk(mib, "parent_peak_mib");
        if !g.failed_row(&text, &peak) {
            let v = g.get(Procpool, &peak);
            g.bound(&text, v, "MiB", |p| p <= (2 * mib + 16) as f64);
        }
        if mib == 256 {
            let text = "11: idle worker RSS 1 s after a 256 MiB call ≤ 32 MiB";
            let rss = key::bulk(mib, "worker_rss_1s_mib");
            if !g.failed_row(text, &rss) {
                let v = g.get(Procpool, &rss);
                g.bound(text, v, "MiB", |r| r <= 32.0);
            }
        }
    }
    let pending = g.get(Procpool, key::PENDING_BYTES);
    g.bound(
        "11: parent memory per pending apply_async ≤ 128 bytes",
        pending,
        "bytes",
        |b| b <= 128.0,
    );
    let idle = g.get(Procpool, key::IDLE_POOL_CPU_PCT);
    let text = format!(
        "11: an idle pool of {} workers for {} s < 1% of one CPU",
        g.run.plan.idle_workers, g.run.plan.idle_secs
    );
    g.bound(&text, idle, "%", |p| p < 1.0);
}

fn startup_and_map_goals(g: &mut Goals) {
    for (workers, limit) in [(32, 15.0), (2, 1.5)] {
        if g.run.plan.startup_workers.contains(&workers) {
            let v = g.get(Procpool, &key::startup(workers));
            let text =
                format!("11: start-up, {workers} workers ready (each ran a task) ≤ {limit} ms");
            g.bound(&text, v, "ms", |ms| ms <= limit);
        }
    }
    let items = g.run.plan.map_big_items;
    let vs_floor = g.get(Procpool, key::MAP_BIG_VS_FLOOR);
    // Today's ratio was measured at 10⁷ items only.
    let vs_today = vs_floor.filter(|_| items == 10_000_000);
    g.ratio(
        &format!(
            "11: map of {items} u64 items ≥ 3× today's items/s \
             (its ratio to the socket floor ÷ today's, {MAP_BIG_TODAY_VS_FLOOR})"
        ),
        vs_today.map(|r| r / MAP_BIG_TODAY_VS_FLOOR),
        |r| r >= 3.0,
    );
    g.ratio(
        &format!("11: map of {items} items: parent peak ≤ 1.2× the output"),
        over(
            g.get(Procpool, key::MAP_BIG_PEAK_MIB),
            g.get(Procpool, key::MAP_BIG_OUTPUT_MIB),
        ),
        |r| r <= 1.2,
    );
}

/// Issue 5's goals that issue 11 did not replace (it replaced: apply ≤ 1.5×
/// the floor, ≥ 10× Python, apply_async ≥ 8× Python, start-up ≤ 5 ms).
fn issue5_goals(g: &mut Goals) {
    let p50 = pinned_key("p50");
    g.ratio(
        "5: apply ≥ 2.5× faster than procspawn (pinned p50)",
        over(g.get(Procspawn, &p50), g.get(Procpool, &p50)),
        |r| r >= 2.5,
    );
    g.ratio(
        "5: map ≥ 5× Python",
        over(g.get(Procpool, key::MAP_IPS), g.get(Python, key::MAP_IPS)),
        |r| r >= 5.0,
    );
    g.ratio(
        "5: CPU scaling ≥ 1.9×",
        g.get(Procpool, key::CPU_SPEEDUP),
        |r| r >= 1.9,
    );
    if let Some(&(mib, _)) = g.run.plan.payloads.last() {
        let py = g.get(Python, &key::payload(mib, false));
        for (buf, name) in [(false, "Vec<u8>"), (true, "ByteBuf")] {
            g.ratio(
                &format!("5: {mib} MiB payload ≥ 3× Python MB/s ({name})"),
                over(g.get(Procpool, &key::payload(mib, buf)), py),
                |r| r >= 3.0,
            );
        }
    }
    let extra = g
        .get(Procpool, key::RSS_MIB)
        .zip(g.run.best_floor(key::RSS_MIB, false))
        .map(|(p, f)| p - f.1);
    g.bound(
        "5: idle worker RSS ≤ 5 MiB above the lowest floor",
        extra,
        "MiB",
        |e| e <= 5.0,
    );
}

pub fn text(goals: &[Goal]) -> String {
    let mut out = String::from("| goal (issue: goal) | measured | result |\n|---|---:|---|\n");
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
