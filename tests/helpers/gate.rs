//! A call that stays unfinished for as long as a test needs, however slow
//! the machine: it waits for a gate file, which the test makes when it is
//! done looking at the unfinished call.

use std::time::{Duration, Instant};

use procpool::pool_task;

/// Waits (a minute at most) until the file `gate` exists; returns the
/// worker's pid.
#[pool_task]
pub fn gated(gate: String) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&gate).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::process::id()
}

/// A gate file's path (reads as a `String`), removed when dropped: when
/// the test passes and when it fails.
pub struct Gate(String);

impl std::ops::Deref for Gate {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh gate file's path (not made yet) for the test `name`.
pub fn gate_path(name: &str) -> Gate {
    let path = std::env::temp_dir().join(format!("procpool-gate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Gate(path.display().to_string())
}

/// Opens `gate`: its call returns.
pub fn open(gate: &str) {
    std::fs::write(gate, b"").unwrap();
}

/// Removes `gate` once its call returned.
pub fn remove(gate: &str) {
    let _ = std::fs::remove_file(gate);
}
