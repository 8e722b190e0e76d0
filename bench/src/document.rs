//! The whole report, section by section: printed by every run and written
//! to BENCHMARKS.md by a full one.

use crate::report::{self, Run};
use crate::{goals, tables, tables_memory};

/// The report's sections after the chart, as Markdown.
pub fn body(run: &Run) -> String {
    let mut out = format!("{}\n{}\n", report::table(run), report::notes(run));
    let mut section = |title: &str, text: String| {
        out.push_str(&format!("## {title}\n\n{text}\n"));
    };
    section(
        "apply latency",
        format!("{}\n{}", tables::latency(run), tables::latency_note(run)),
    );
    section("Many callers", tables::callers(run));
    section("Start-up", tables::startup(run));
    section("Memory per pending task", tables_memory::pending(run));
    section("Large payloads and memory peaks", tables_memory::bulk(run));
    section("map of many items", tables_memory::map_big(run));
    section("Idle pool", tables_memory::idle(run));
    section("System calls", tables_memory::syscalls(run));
    section("Floors", tables::floors(run));
    section(
        "More than one machine (Redis)",
        crate::distributed_report::section(&run.distributed),
    );
    section("Goals", goals::text(&goals::goals(run)));
    out
}

/// BENCHMARKS.md.
pub fn markdown(run: &Run, rounds: usize) -> String {
    format!(
        "# Benchmarks\n\n\
         Produced by `cargo run --release -p procpool-bench` (see bench/src/main.rs) on a \
         machine with {} CPUs. Each figure is the median over {rounds} rounds of every system \
         (the rounds interleave the systems in time), each round's figure a median over \
         repetitions; the rows measured once per run (fresh pools, fresh processes) say so.\n\n\
         ![procpool against the others](bench/chart.svg)\n\n{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        body(run)
    )
}
