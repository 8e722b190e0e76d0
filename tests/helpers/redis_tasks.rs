//! The tasks of the distributed tests, shared by the node helper
//! (`redis_helper.rs`) and the test binaries: a caller and a node meet only
//! if they register the same tasks (names and signatures), so each test
//! binary includes exactly this module and registers nothing else.

use std::io::Write;
use std::time::Duration;

use procpool::pool_task;

#[pool_task(name = "t/square")]
pub fn square(x: u64) -> u64 {
    x * x
}

#[pool_task(name = "t/echo")]
pub fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[pool_task(name = "t/boom")]
pub fn boom(message: String) -> u64 {
    panic!("{message}")
}

/// Appends `start <tag> <pid>` to `path`, sleeps `ms`, appends `end <tag>
/// <pid>`, returns the worker's pid: tests count starts and ends per call.
#[pool_task(name = "t/mark")]
pub fn mark(path: String, tag: String, ms: u64) -> u32 {
    let pid = std::process::id();
    append(&path, &format!("start {tag} {pid}\n"));
    std::thread::sleep(Duration::from_millis(ms));
    append(&path, &format!("end {tag} {pid}\n"));
    pid
}

/// As `t/mark`, but holds its worker until the file `gate` exists (a
/// minute at most) instead of sleeping: as long as a test needs, however
/// slow the machine.
#[pool_task(name = "t/hold")]
pub fn hold(path: String, tag: String, gate: String) -> u32 {
    let pid = std::process::id();
    append(&path, &format!("start {tag} {pid}\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&gate).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    append(&path, &format!("end {tag} {pid}\n"));
    pid
}

/// `units` × 10,000 dependent multiply-adds: a fixed amount of CPU work.
#[pool_task(name = "t/spin")]
pub fn spin(units: u64) -> u64 {
    let mut x = 0u64;
    for _ in 0..units {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    x
}

/// `len` bytes of 7: a result far larger than its arguments.
#[pool_task(name = "t/fill")]
pub fn fill(len: u64) -> Vec<u8> {
    vec![7; len as usize]
}

/// The worker's pid and the node's (its parent's) pid.
#[pool_task(name = "t/pids")]
pub fn pids() -> (u32, u32) {
    (std::process::id(), std::os::unix::process::parent_id())
}

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the mark file");
    f.write_all(line.as_bytes()).expect("write the mark file");
}
