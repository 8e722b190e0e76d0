//! What the benchmark reads from /proc: memory (VmRSS, VmHWM) and CPU time
//! of a process, and resetting this process's peak.

/// A memory field of /proc/`pid`/status (`VmRSS`, `VmHWM`, ...) in MiB;
/// `pid` may be `self`.
pub fn status_mib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peak resident set size (`VmHWM`) of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(&pid.to_string(), "VmHWM")
}

/// Resident set size (`VmRSS`) of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(&pid.to_string(), "VmRSS")
}

/// Resets this process's `VmHWM` to its current RSS (Linux 4.0+), so a
/// later `VmHWM` is the peak since now. Returns the RSS it started from, MiB.
pub fn reset_own_peak() -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_mib("self", "VmRSS")
}

/// This process's peak RSS since [`reset_own_peak`], in MiB.
pub fn own_peak_mib() -> Option<f64> {
    status_mib("self", "VmHWM")
}

/// CPU time every thread of process `pid` (or `self`) has used, in
/// seconds, from /proc/`pid`/task/*/schedstat (nanoseconds, unlike the
/// clock ticks of /proc/`pid`/stat).
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: f64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    ns / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_cpu() {
        assert!(peak_rss_mib(std::process::id()).expect("/proc is readable") > 0.0);
        assert!(status_mib("self", "VmRSS").expect("VmRSS") > 0.0);
        assert!(cpu_seconds("self") > 0.0);
    }
}
