// `#[procpool::main]` below an async runtime's attribute: the runtime's
// attribute makes a plain `fn main`, which then starts with `init()`,
// before the runtime starts its threads.
#[procpool::pool_task]
fn double(x: u32) -> u32 {
    x * 2
}

/// Whether a tokio runtime's thread runs in this process: `init()` ran
/// after the runtime started, if one does in a worker.
#[procpool::pool_task]
fn runtime_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("tokio"))
        })
        .count()
}

#[tokio::main]
#[procpool::main]
async fn main() -> Result<(), procpool::Error> {
    let pool = procpool::Pool::new(1)?;
    assert_eq!(apply_async_double(&pool, 21).await?, 42);
    assert_eq!(apply_async_runtime_threads(&pool).await?, 0);
    Ok(())
}
