//! The pool's initializer (Python's `initializer` / `initargs`) runs once in
//! each worker before its first task; if it fails, `build()` (or the task
//! whose replacement worker needed it) gets `Error::InitializerFailed`.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use procpool::{pool_task, Error, Pool};
use support::{assert_no_children, serial};

procpool::enable_test_support!();

static SCALE: AtomicU64 = AtomicU64::new(0);
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

#[pool_task]
fn setup(scale: u64, note: String) {
    assert_eq!(note, "initargs");
    SCALE.store(scale, Ordering::SeqCst);
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// What the initializer left behind in this worker.
#[pool_task]
fn state() -> (u64, u32, u32) {
    (
        SCALE.load(Ordering::SeqCst),
        INIT_RUNS.load(Ordering::SeqCst),
        std::process::id(),
    )
}

#[pool_task]
fn refuse(why: String) {
    panic!("initializer refused: {why}");
}

/// Fails once `flag` exists, so a pool can start and its respawns fail.
#[pool_task]
fn fail_if_flagged(flag: PathBuf) {
    if flag.exists() {
        panic!("flagged");
    }
}

#[pool_task]
fn slow_setup(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

#[pool_task]
fn exit_worker() {
    // SAFETY: _exit ends this worker process at once.
    unsafe { libc::_exit(9) }
}

/// An initializer in Rust's own idiom: `Err` when it cannot set up.
#[pool_task]
fn open_store(path: String) -> Result<(), String> {
    if path.is_empty() {
        return Err("no store path given".into());
    }
    SCALE.store(path.len() as u64, Ordering::SeqCst);
    Ok(())
}

/// A `Result` under another name, as `std::io::Result` is.
type Setup<T> = Result<T, String>;

/// The same through an alias.
#[pool_task]
fn open_file(path: PathBuf) -> Setup<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{:?}", e.kind()))
}

/// An error type without `Debug`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Opaque(u8);

#[pool_task]
fn opaque_setup(fail: bool) -> Result<u8, Opaque> {
    if fail {
        Err(Opaque(7))
    } else {
        Ok(1)
    }
}

/// An initializer that returns `Err` failed to set its worker up, as one
/// that panics: `build()` is `InitializerFailed` carrying the error (its
/// `Debug` text), where the `Err` was dropped unseen and the pool's tasks
/// ran in workers that were never set up. An `Ok` is a success.
#[test]
fn an_initializer_returning_err_fails_build() {
    let _serial = serial();
    match Pool::builder()
        .processes(1)
        .initializer("fault_initializer::open_store", &(String::new(),))
        .build()
    {
        Err(Error::InitializerFailed {
            task,
            message,
            location,
        }) => {
            assert_eq!(task, "fault_initializer::open_store");
            assert!(message.contains("\"no store path given\""), "{message}");
            assert!(message.contains("returned Err"), "{message}");
            let location = location.expect("the initializer's location");
            assert!(location.contains("fault_initializer.rs"), "{location}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    match Pool::builder()
        .processes(1)
        .initializer(
            "fault_initializer::open_file",
            &(PathBuf::from("/no/such/procpool/file"),),
        )
        .build()
    {
        Err(Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("NotFound"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    match Pool::builder()
        .processes(1)
        .initializer("fault_initializer::opaque_setup", &(true,))
        .build()
    {
        Err(Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("returned Err"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    let pool = Pool::builder()
        .processes(1)
        .initializer("fault_initializer::open_store", &("abc".to_string(),))
        .build()
        .unwrap();
    assert_eq!(apply_state(&pool).unwrap().0, 3);
    drop(pool);
    let pool = Pool::builder()
        .processes(1)
        .initializer("fault_initializer::opaque_setup", &(false,))
        .build()
        .unwrap();
    drop(pool);
    assert_no_children();
}

#[test]
fn the_initializer_runs_once_in_each_worker_before_its_tasks() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(5)
        .initializer(
            "fault_initializer::setup",
            &(7u64, String::from("initargs")),
        )
        .build()
        .unwrap();
    let results: Vec<_> = (0..20).map(|_| apply_async_state(&pool)).collect();
    let mut pids = std::collections::HashSet::new();
    for r in results {
        let (scale, runs, pid) = r.get().unwrap();
        assert_eq!(scale, 7, "the initializer ran before the task");
        assert_eq!(runs, 1, "exactly once per worker");
        assert_ne!(pid, std::process::id());
        pids.insert(pid);
    }
    assert!(pids.len() >= 4, "replacement workers ran it too: {pids:?}");
    assert_eq!(SCALE.load(Ordering::SeqCst), 0, "never in the parent");
    drop(pool);
    assert_no_children();
}

#[test]
fn a_panicking_initializer_fails_build_with_a_typed_error() {
    let _serial = serial();
    let result = Pool::builder()
        .processes(2)
        .initializer("fault_initializer::refuse", &(String::from("no config"),))
        .build();
    match result {
        Err(Error::InitializerFailed {
            task,
            message,
            location,
        }) => {
            assert_eq!(task, "fault_initializer::refuse");
            assert!(
                message.contains("initializer refused: no config"),
                "{message}"
            );
            let location = location.expect("a panic has a location");
            assert!(
                location.starts_with("tests/fault_initializer.rs:"),
                "{location}"
            );
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert_no_children();
}

#[test]
fn an_unknown_or_mistyped_initializer_fails_build() {
    let _serial = serial();
    match Pool::builder()
        .processes(1)
        .initializer("fault_initializer::stup", &())
        .build()
    {
        Err(Error::InitializerFailed { task, message, .. }) => {
            assert_eq!(task, "fault_initializer::stup");
            assert!(
                message.contains("fault_initializer::setup"),
                "suggests: {message}"
            );
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    match Pool::builder()
        .processes(1)
        .initializer("fault_initializer::setup", &("not a u64",))
        .build()
    {
        Err(Error::InitializerFailed { task, message, .. }) => {
            assert_eq!(task, "fault_initializer::setup");
            // Built with `std::any::type_name`, whose text is not fixed.
            let expected = format!(
                "takes `fn({}, {})`",
                std::any::type_name::<u64>(),
                std::any::type_name::<String>()
            );
            assert!(message.contains(&expected), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    // Bytes that would decode (an i64 read as a u64) are refused all the same.
    match Pool::builder()
        .processes(1)
        .initializer("fault_initializer::setup", &(-1i64,))
        .build()
    {
        Err(Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("given arguments `fn(i64,)`"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert_no_children();
}

/// Initializer arguments larger than `max_frame_bytes` can never be sent:
/// `build()` says so, naming the arguments and the setting (it said "its
/// reply of N bytes exceeds the frame limit", of a reply that never was,
/// after starting and killing a worker for it).
#[test]
fn initializer_arguments_over_the_frame_limit_fail_build_saying_so() {
    let _serial = serial();
    let note = "n".repeat(5000);
    match Pool::builder()
        .processes(2)
        .max_frame_bytes(1024)
        .initializer("fault_initializer::setup", &(3u64, note))
        .build()
    {
        Err(Error::InitializerFailed { task, message, .. }) => {
            assert_eq!(task, "fault_initializer::setup");
            assert!(message.contains("its arguments"), "{message}");
            assert!(message.contains("max_frame_bytes"), "{message}");
            assert!(!message.contains("reply"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    // Arguments that fit under the same limit start the pool.
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(1024)
        .initializer(
            "fault_initializer::setup",
            &(3u64, String::from("initargs")),
        )
        .build()
        .unwrap();
    assert_eq!(apply_state(&pool).unwrap().0, 3);
    drop(pool);
    assert_no_children();
}

#[test]
fn an_initializer_slower_than_start_timeout_fails_build() {
    let _serial = serial();
    let begun = std::time::Instant::now();
    let result = Pool::builder()
        .processes(2)
        // Long enough for a worker to start on a loaded machine (the same
        // limit bounds the start), far shorter than the initializer's nap.
        .start_timeout(std::time::Duration::from_secs(5))
        .initializer("fault_initializer::slow_setup", &(60_000u64,))
        .build();
    match result {
        Err(Error::InitializerFailed { task, message, .. }) => {
            assert_eq!(task, "fault_initializer::slow_setup");
            assert!(message.contains("did not return within 5s"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert!(begun.elapsed() < std::time::Duration::from_secs(40));
    assert_no_children();
}

#[test]
fn a_respawn_whose_initializer_fails_fails_the_task_that_needed_it() {
    let _serial = serial();
    let flag = support::Scratch::temp("init-flag");
    let pool = Pool::builder()
        .processes(1)
        .initializer("fault_initializer::fail_if_flagged", &(flag.to_path_buf(),))
        .build()
        .unwrap();
    assert!(apply_state(&pool).is_ok());
    std::fs::write(&flag, "").unwrap();
    assert!(matches!(
        apply_exit_worker(&pool),
        Err(Error::WorkerDied { .. })
    ));
    match apply_state(&pool) {
        Err(Error::InitializerFailed { task, message, .. }) => {
            assert_eq!(task, "fault_initializer::fail_if_flagged");
            assert!(message.contains("flagged"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    // The failed worker was reaped (so is the one the idle slot tries next).
    assert_no_children();
    std::fs::remove_file(&flag).unwrap();
    assert!(
        apply_state(&pool).is_ok(),
        "the pool recovers once it can start workers"
    );
    drop(pool);
    assert_no_children();
}
