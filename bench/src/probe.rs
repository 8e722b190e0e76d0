//! Measurements in a fresh process: this binary re-executed with
//! `--probe NAME ARGS...`, so memory peaks (VmHWM) and CPU counters are the
//! probe's own, not left over from earlier workloads. The probe prints its
//! figures as lines of `key value` (a number, or why the row failed).

use std::process::Command;

use crate::figures::Figures;
use crate::{probe_idle, probe_map, probe_payload, probe_pending};

/// argv\[1\] of a probe.
pub const ARG: &str = "--probe";

/// Runs probe `args` in a fresh copy of this binary; its figures, or why
/// it failed.
pub fn run(args: &[String]) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg(ARG)
        .args(args)
        .output()
        .map_err(|e| format!("cannot start probe {args:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "probe {} {}: {last}",
            args.join(" "),
            output.status
        ));
    }
    Ok(Figures::parse_lines(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

/// In the probe's process: measures what `args` asks for and prints it.
pub fn serve(args: &[String]) {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let number = |i: usize| {
        arg(i)
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("probe {args:?}: argument {i}"))
    };
    let figures = match arg(0) {
        "pending" => probe_pending::measure(number(1), number(2)),
        "payload" => probe_payload::measure(arg(1), number(2), number(3), number(4)),
        "map" => probe_map::measure(number(1), number(2), number(3)),
        "idle" => probe_idle::measure(number(1), number(2)),
        other => panic!("unknown probe {other:?}"),
    };
    print!("{}", figures.to_lines());
}
