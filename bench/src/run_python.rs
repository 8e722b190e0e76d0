//! The workloads on Python's multiprocessing.Pool, through python_pool.py.

use std::path::PathBuf;
use std::process::Command;

use crate::plan::{Figures, Plan};

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

/// Runs python_pool.py with `plan`; `Err` says why there are no figures.
pub fn run(plan: &Plan) -> Result<Figures, String> {
    let plan = serde_json::to_string(plan).map_err(|e| e.to_string())?;
    let output = Command::new("python3")
        .arg(script())
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
    Ok(values
        .into_iter()
        .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
        .collect())
}
