// `#[procpool::main]` above an async runtime's attribute sees the `async fn`
// itself: `main` becomes a plain `fn` that calls `init()` first, before the
// runtime starts its threads, then the `async fn` under the runtime's
// attribute.
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

#[procpool::main]
#[tokio::main]
async fn main() {
    let pool = procpool::Pool::new(1).unwrap();
    assert_eq!(apply_async_double(&pool, 21).await.unwrap(), 42);
    assert_eq!(apply_async_runtime_threads(&pool).await.unwrap(), 0);
}
