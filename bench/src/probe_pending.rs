//! Probe `pending TASKS WORKERS`: the parent's memory per pending
//! `apply_async` task. Every worker is kept busy by a long nap, then TASKS
//! trivial tasks are submitted and their handles kept; the RSS the process
//! grew by, divided by TASKS, is the cost of one pending task (the caller's
//! `AsyncResult` handle included: a caller must hold it to get the result).

use std::time::Duration;

use procpool::{AsyncResult, Pool};

use crate::figures::{failure_name, key, Figures};
use crate::procfs;
use crate::tasks::{apply_async_inc, apply_async_nap};

pub fn measure(tasks: usize, workers: usize) -> Figures {
    let mut f = Figures::new();
    match pending_bytes(tasks, workers) {
        Ok(bytes) => f.insert(key::PENDING_BYTES, bytes),
        Err(why) => f.fail(key::PENDING_BYTES, why),
    }
    f.insert(
        key::PENDING_HANDLE_BYTES,
        std::mem::size_of::<AsyncResult<u64>>() as f64,
    );
    f
}

fn pending_bytes(tasks: usize, workers: usize) -> Result<f64, String> {
    let pool = Pool::new(workers).map_err(|e| failure_name(&e))?;
    // An hour each: the probe terminates the pool long before.
    let _busy: Vec<_> = (0..workers)
        .map(|_| apply_async_nap(&pool, 3_600_000))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut pending = Vec::with_capacity(tasks);
    let before = procfs::status_mib("self", "VmRSS").ok_or("no VmRSS")?;
    for i in 0..tasks as u64 {
        pending.push(apply_async_inc(&pool, i));
    }
    // Whatever the pool does with a queue in the background, let it happen.
    std::thread::sleep(Duration::from_millis(200));
    let after = procfs::status_mib("self", "VmRSS").ok_or("no VmRSS")?;
    if pending.iter().any(AsyncResult::ready) {
        return Err("a task finished while every worker napped".into());
    }
    pool.terminate();
    Ok((after - before) * (1 << 20) as f64 / tasks as f64)
}
