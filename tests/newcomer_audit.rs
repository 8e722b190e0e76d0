//! What a newcomer from Python's `multiprocessing.Pool` writes on day one,
//! following the README and the rustdoc literally, where it did not do what
//! they say.

// Unit tests usually live in `#[cfg(test)] mod tests { .. }`, so that is
// where a newcomer puts the test support: in a module, not at the crate
// root. Workers must still serve from the entry test it adds there.
mod tests_module {
    procpool::enable_test_support!();
}

use procpool::{pool_task, Error, ExitInfo, Pool};

#[pool_task]
fn exit_with(code: i32) -> i32 {
    std::process::exit(code)
}

/// With `enable_test_support!` inside a module the entry test is
/// `tests_module::__procpool_worker_entry`: a worker whose harness looked
/// for `__procpool_worker_entry` exactly ran no test and served from its
/// exit hook, where a task's `exit(3)` aborts (SIGABRT) instead.
#[test]
fn a_task_exit_code_arrives_with_the_support_in_a_module() {
    let pool = Pool::new(1).unwrap();
    match apply_exit_with(&pool, 3) {
        Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Code(3)),
        other => panic!("expected WorkerDied with exit code 3, got {other:?}"),
    }
}
