//! The tables under the main one: every floor side by side, and `apply`
//! latency with its tails, pinned and over fresh unpinned pools.

use crate::callers;
use crate::figures::key;
use crate::latency::{pinned_key, unpinned_key, PERCENTILES};
use crate::report::{cell, ratio, value, Run};
use crate::systems::System;

/// A Markdown table from a header and rows of cells.
pub fn markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", header.join(" | "));
    for i in 0..header.len() {
        out.push_str(if i == 0 { "---|" } else { "---:|" });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A system's figure for `key`, or why it failed, as a cell.
pub fn cell_of(run: &Run, system: System, key: &str) -> String {
    cell(run.get(system, key), run.failure(system, key))
}

/// The floors side by side, with the lowest of each row named.
pub fn floors(run: &Run) -> String {
    let p = &run.plan;
    let mut lines: Vec<(String, String, bool)> = vec![
        (
            format!("startup: {} + 1 round trip each (ms)", p.processes),
            key::startup(p.processes),
            false,
        ),
        (
            "round trip p50, pinned (µs)".into(),
            pinned_key("p50"),
            false,
        ),
        (
            "round trip p99, pinned (µs)".into(),
            pinned_key("p99"),
            false,
        ),
        (
            "round trip p999, pinned (µs)".into(),
            pinned_key("p999"),
            false,
        ),
        (
            "round trip p50 unpinned, best fresh pair (µs)".into(),
            unpinned_key("p50", "min"),
            false,
        ),
        (
            "round trip p50 unpinned, worst fresh pair (µs)".into(),
            unpinned_key("p50", "max"),
            false,
        ),
        (
            format!("pipelined, {} requests (per s)", p.async_tasks),
            key::ASYNC_TPS.into(),
            true,
        ),
        (
            format!("map chunks, {} items (items/s)", p.map_items),
            key::MAP_IPS.into(),
            true,
        ),
    ];
    for &(mib, _) in &p.payloads {
        lines.push((
            format!("echo {mib} MiB (MB/s)"),
            key::payload(mib, false),
            true,
        ));
    }
    lines.push((
        "idle child peak RSS (MiB)".into(),
        key::RSS_MIB.into(),
        false,
    ));
    let rows: Vec<Vec<String>> = lines
        .into_iter()
        .map(|(label, k, higher)| {
            let mut row = vec![label];
            row.extend(System::FLOORS.iter().map(|&s| value(run.get(s, &k))));
            row.push(
                run.best_floor(&k, higher)
                    .map_or("n/a".into(), |(s, _)| s.short().to_string()),
            );
            row
        })
        .collect();
    markdown(&["figure", "socket", "pipe", "futex", "lowest"], &rows)
}

/// `apply` latency (µs) per system: pinned p50 / p99 / p999, and over the
/// fresh unpinned pools min / median / max of their p50s and the median and
/// worst of their p99s and p999s.
pub fn latency(run: &Run) -> String {
    let systems = [
        System::Procpool,
        System::Socket,
        System::Pipe,
        System::Futex,
        System::Python,
        System::Procspawn,
    ];
    let trio = |s: System, pct: &str, stats: &[&str]| -> String {
        let cells: Vec<String> = stats
            .iter()
            .map(|st| cell_of(run, s, &unpinned_key(pct, st)))
            .collect();
        cells.join(" / ")
    };
    let rows: Vec<Vec<String>> = systems
        .iter()
        .filter(|&&s| run.figures[s.index()].is_ok())
        .map(|&s| {
            vec![
                s.name().to_string(),
                cell_of(run, s, &pinned_key("p50")),
                cell_of(run, s, &pinned_key("p99")),
                cell_of(run, s, &pinned_key("p999")),
                trio(s, "p50", &["min", "median", "max"]),
                trio(s, "p99", &["median", "max"]),
                trio(s, "p999", &["median", "max"]),
            ]
        })
        .collect();
    markdown(
        &[
            "system",
            "pinned p50",
            "pinned p99",
            "pinned p999",
            "unpinned p50: min / median / max over fresh pools",
            "unpinned p99: median / max",
            "unpinned p999: median / max",
        ],
        &rows,
    )
}

/// What the latency table's columns mean.
pub fn latency_note(run: &Run) -> String {
    let p = &run.plan;
    format!(
        "Round trip of a trivial task (x + 1), µs. Pinned: caller, pool threads and workers on \
         one CPU, {} calls per pool after {} untimed, procpool's and the floors' calls rotating \
         in blocks of {}; for procpool and the floors each percentile the median over {} fresh \
         sets per round, for Python and procspawn one fresh pool per round; then the median \
         over rounds. Unpinned: {} freshly started pools (or floor pairs, or Python or procspawn \
         pools) per system, each {} calls after {} untimed, instance i of every system before instance \
         i + 1 of any; the scheduler's placement of caller and worker (same CPU or not) sticks \
         for a pool's life, so the spread of the p50s is the placement lottery.\n",
        p.apply_calls,
        p.apply_warmup,
        (p.apply_calls / 20).max(1),
        crate::paired::INSTANCES,
        p.unpinned_pools,
        p.apply_calls,
        p.apply_warmup,
    )
}

/// A figure's key for a pool size.
type KeyOf = fn(usize) -> String;

/// Start-up (ms) per system and pool size.
pub fn startup(run: &Run) -> String {
    let sizes = &run.plan.startup_workers;
    let lines: [(&str, System, KeyOf); 8] = [
        (
            "procpool, the pool's build returned",
            System::Procpool,
            key::startup_build,
        ),
        (
            "procpool, each worker ran one task",
            System::Procpool,
            key::startup,
        ),
        (
            "socket floor, each child answered once",
            System::Socket,
            key::startup,
        ),
        (
            "pipe floor, each child answered once",
            System::Pipe,
            key::startup,
        ),
        (
            "futex floor, each child answered once",
            System::Futex,
            key::startup,
        ),
        (
            "Python Pool ('spawn'), each worker ran one task",
            System::Python,
            key::startup,
        ),
        (
            "Python Pool ('fork'), each worker ran one task",
            System::Python,
            key::startup_fork,
        ),
        (
            "procspawn Pool, each worker ran one task",
            System::Procspawn,
            key::startup,
        ),
    ];
    let rows: Vec<Vec<String>> = lines
        .iter()
        .filter(|(_, s, _)| run.figures[s.index()].is_ok())
        .map(|(label, s, k)| {
            let mut row = vec![label.to_string()];
            row.extend(sizes.iter().map(|&n| cell_of(run, *s, &k(n))));
            row
        })
        .collect();
    let header: Vec<String> = sizes.iter().map(|n| format!("{n} workers")).collect();
    let mut all = vec!["ready when"];
    all.extend(header.iter().map(String::as_str));
    format!(
        "{}\nms, median of {} start-ups per round, then over rounds. \"Ready\" for the goals is \
         \"each worker ran one task\" (the stricter). The floors start children one by one and \
         do one round trip with each. Shutdown is never timed.\n",
        markdown(&all, &rows),
        run.plan.startup_reps
    )
}

/// Many threads calling `apply` on one pool (see [`crate::callers`]).
pub fn callers(run: &Run) -> String {
    let one = run.get(System::Procpool, &callers::key(1, "cps"));
    let rows: Vec<Vec<String>> = callers::THREADS
        .iter()
        .map(|&t| {
            let cps = run.get(System::Procpool, &callers::key(t, "cps"));
            let mut row = vec![format!("{t}"), value(cps)];
            for pct in PERCENTILES {
                row.push(cell_of(run, System::Procpool, &callers::key(t, pct)));
            }
            row.push(ratio(cps.zip(one).map(|(c, o)| c / o)));
            row
        })
        .collect();
    format!(
        "{}\nprocpool, one pool of {} workers per round, unpinned: {} `apply` calls shared \
         among the threads, after {} untimed; calls/s of all threads together, round trips in \
         µs. Median over rounds.\n",
        markdown(
            &[
                "calling threads",
                "calls/s",
                "p50",
                "p99",
                "p999",
                "calls/s vs 1 thread"
            ],
            &rows
        ),
        run.plan.processes,
        run.plan.callers_calls,
        run.plan.apply_warmup,
    )
}
