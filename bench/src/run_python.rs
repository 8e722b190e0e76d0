//! The workloads on Python's multiprocessing.Pool, through python_pool.py.

use std::path::PathBuf;
use std::process::Command;

use crate::figures::Figures;
use crate::latency::Tails;
use crate::plan::Plan;

/// Where python_pool.py lives (next to this crate's Cargo.toml).
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python_pool.py")
}

/// The shared library holding the CPU rows' loop (this crate's cdylib,
/// built next to the benchmark's binary), which python_pool.py loads.
pub fn spin_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("libprocpool_bench.so")
}

/// Runs `python3 python_pool.py [mode] '<plan>'` and reads the JSON object
/// it prints: numbers are figures, strings say why a row failed.
fn run_script(mode: Option<&str>, plan: &Plan) -> Result<Figures, String> {
    let plan = serde_json::to_string(plan).map_err(|e| e.to_string())?;
    let output = Command::new("python3")
        .arg(script())
        .args(mode)
        .arg(plan)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "python_pool.py failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let values: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("unreadable output of python_pool.py: {e}"))?;
    let mut f = Figures::new();
    for (k, v) in values {
        match (v.as_f64(), v.as_str()) {
            (Some(x), _) => f.insert(k, x),
            (None, Some(why)) => f.fail(k, why),
            _ => {}
        }
    }
    Ok(f)
}

/// Every per-round workload; `Err` says why there are no figures.
pub fn run(plan: &Plan) -> Result<Figures, String> {
    run_script(None, plan)
}

/// The tails of `Pool.apply` on one freshly started pool, unpinned.
pub fn apply_latency(plan: &Plan) -> Result<Tails, String> {
    let f = run_script(Some("--apply-latency"), plan)?;
    let get = |k: &str| {
        f.get(k)
            .ok_or_else(|| format!("python_pool.py gave no {k}"))
    };
    Ok(Tails {
        p50: get("p50_us")?,
        p99: get("p99_us")?,
        p999: get("p999_us")?,
    })
}
