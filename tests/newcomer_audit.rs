//! What a newcomer from Python's `multiprocessing.Pool` writes on day one,
//! following the README and the rustdoc literally, where it did not do what
//! they say.

// Unit tests usually live in `#[cfg(test)] mod tests { .. }`, so that is
// where a newcomer puts the test support: in a module, not at the crate
// root. Workers must still serve from the entry test it adds there.
mod tests_module {
    procpool::enable_test_support!();
}

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use procpool::{pool_task, Error, ExitInfo, Pool};
use support::wait_for;

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

#[pool_task]
fn set_scale(scale: u64) {
    let _ = scale;
}

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

/// Python's `initargs=(10,)` is a tuple; a bare `&10u64` said only that
/// `fn u64` differs from `fn(u64,)`.
#[test]
fn an_initializer_given_a_bare_value_says_to_use_a_tuple() {
    let built = Pool::builder()
        .processes(1)
        .initializer("newcomer_audit::set_scale", &10u64)
        .build();
    match built {
        Err(Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("`&(x,)` for one argument"), "{message}")
        }
        other => panic!("expected InitializerFailed, got {:?}", other.map(|_| ())),
    }
    let pool = Pool::builder()
        .processes(1)
        .initializer("newcomer_audit::set_scale", &(10u64,))
        .build()
        .unwrap();
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
}

/// Likewise for a call by name: `&3u64` for `&(3u64,)`.
#[test]
fn a_call_by_name_given_a_bare_value_says_to_use_a_tuple() {
    let pool = Pool::new(1).unwrap();
    let wrong = pool.apply_by_name::<u64>("newcomer_audit::square", &3u64);
    let text = wrong.unwrap_err().to_string();
    assert!(text.contains("`&(x,)` for one argument"), "{text}");
    let right = pool.apply_by_name::<u64>("newcomer_audit::square", &(3u64,));
    assert_eq!(right.unwrap(), 9);
}

/// Creates the file `marker` and returns its name's length.
#[pool_task]
fn touch(marker: &Path) -> usize {
    std::fs::write(marker, "").unwrap();
    marker.as_os_str().len()
}

/// Python's `imap` starts at once; ours runs nothing before the first
/// `next`, and the docs say `next_timeout(Duration::ZERO)` queues the first
/// chunks for the caller to do other work meanwhile.
#[test]
fn an_imap_primed_with_a_zero_timeout_runs_while_the_caller_waits() {
    let dir = support::Scratch::temp_dir("newcomer");
    let markers: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("m{i}"))).collect();
    let pool = Pool::new(2).unwrap();
    let mut results = imap_touch(&pool, &markers);
    let mut lengths = Vec::new();
    // A pull queues chunks until one is back: a result back at once is
    // yielded before the next chunk is queued, which the wait below would
    // then wait for in vain; so it pulls again, until a `WaitTimeout`.
    loop {
        match results.next_timeout(Duration::ZERO) {
            Some(Err(Error::WaitTimeout { .. })) | None => break,
            Some(Ok(len)) => lengths.push(len),
            other => panic!("expected a result or WaitTimeout, got {other:?}"),
        }
    }
    // No `next` meanwhile: the items run all the same.
    wait_for(Duration::from_secs(30), "the primed items to run", || {
        markers.iter().all(|m| m.exists())
    });
    lengths.extend(results.map(Result::unwrap));
    let expected: Vec<usize> = markers.iter().map(|m| m.as_os_str().len()).collect();
    assert_eq!(lengths, expected);
}

#[pool_task]
fn greet(name: &str, times: usize) -> String {
    format!("hi {name}! ").repeat(times)
}

/// A call by name takes owned values (`String` for `&str`); `("bob", 2)`
/// said only that `fn(&str, usize)` differs from `fn(alloc::string::String,
/// usize)`.
#[test]
fn a_call_by_name_given_borrowed_arguments_says_they_are_owned() {
    let pool = Pool::new(1).unwrap();
    let wrong = pool.apply_by_name::<String>("newcomer_audit::greet", &("bob", 2usize));
    let text = wrong.unwrap_err().to_string();
    assert!(text.contains("`String` for `&str`"), "{text}");
    let right = pool.apply_by_name::<String>("newcomer_audit::greet", &("bob".to_string(), 2usize));
    assert_eq!(right.unwrap(), "hi bob! hi bob! ");
}

#[pool_task]
fn set_label(label: &str) {
    let _ = label;
}

/// Likewise for an initializer: `&("x",)` for a task taking `&str`.
#[test]
fn an_initializer_given_borrowed_arguments_says_they_are_owned() {
    let built = Pool::builder()
        .processes(1)
        .initializer("newcomer_audit::set_label", &("x",))
        .build();
    match built {
        Err(Error::InitializerFailed { message, .. }) => {
            assert!(message.contains("`String` for `&str`"), "{message}")
        }
        other => panic!("expected InitializerFailed, got {:?}", other.map(|_| ())),
    }
    let owned = ("x".to_string(),);
    let pool = Pool::builder()
        .processes(1)
        .initializer("newcomer_audit::set_label", &owned)
        .build()
        .unwrap();
    assert_eq!(apply_square(&pool, 2).unwrap(), 4);
}
