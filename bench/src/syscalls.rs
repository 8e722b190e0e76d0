//! System calls per `apply_async` task, counted by `perf stat` (the
//! `raw_syscalls:sys_enter` tracepoint, over the process and every child it
//! starts): `--profile async SYSTEM N` run with N tasks and with none, the
//! difference divided by N. Optional: without `perf` (or its tracepoints)
//! the row says why it is empty.

use std::process::Command;

/// The key of the figure.
pub const KEY: &str = "apply_async_syscalls_per_task";

/// System calls per task of `tasks` apply_async tasks on `system`
/// (`procpool` or `floor`), 2 workers.
pub fn per_task(system: &str, tasks: usize) -> Result<f64, String> {
    let with = count(system, tasks)?;
    let without = count(system, 0)?;
    Ok((with - without) / tasks.max(1) as f64)
}

/// System calls of one `--profile async SYSTEM TASKS` run.
fn count(system: &str, tasks: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--"])
        .arg(exe)
        .args(["--profile", "async", system, &tasks.to_string()])
        .output()
        .map_err(|e| format!("no perf: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .ok_or_else(|| format!("perf gave no count ({})", output.status))?;
    line.split(',')
        .next()
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("perf cannot count system calls here: {line}"))
}
