//! The anchors of the distributed rows: Celery (Redis as broker and result
//! backend, a prefork worker) and Ray's `ray.util.multiprocessing.Pool`,
//! through `distributed_anchors.py`. Each is skipped, with why, when its
//! import fails. The Python is `$PROCPOOL_BENCH_PYTHON`, else `python3`.

use std::path::PathBuf;
use std::process::Command;

use crate::figures::Figures;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("distributed_anchors.py")
}

fn python() -> String {
    std::env::var("PROCPOOL_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs one anchor (`celery URL` or `ray`) with the counts procpool's rows
/// use (`warmup` untimed and `calls` timed `apply`, `tasks` `apply_async`)
/// and reads its figures, prefixed with `prefix`: numbers are figures,
/// strings say why a row is missing.
pub fn measure(args: &[&str], warmup: usize, calls: usize, tasks: usize, prefix: &str) -> Figures {
    let mut figures = Figures::new();
    let keys =
        ["apply_p50_us", "apply_p99_us", "async_tasks_per_s"].map(|k| format!("{prefix}{k}"));
    let output = Command::new(python())
        .arg(script())
        .args(args)
        .arg(warmup.to_string())
        .arg(calls.to_string())
        .arg(tasks.to_string())
        .output();
    let values = match output {
        Ok(o) if o.status.success() => {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&o.stdout)
                .map_err(|e| format!("unreadable output: {e}"))
        }
        Ok(o) => Err(format!(
            "failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {}: {e}", python())),
    };
    match values {
        Ok(values) => {
            for (k, v) in values {
                match v {
                    serde_json::Value::Number(n) => {
                        figures.insert(format!("{prefix}{k}"), n.as_f64().unwrap_or(f64::NAN))
                    }
                    other => figures.fail(
                        format!("{prefix}{k}"),
                        other.as_str().unwrap_or("?").to_string(),
                    ),
                }
            }
        }
        Err(why) => {
            for k in keys {
                figures.fail(k, why.clone());
            }
        }
    }
    figures
}
