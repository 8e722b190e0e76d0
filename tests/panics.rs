//! A panic in a task arrives at the caller with its message and location,
//! and the worker that ran it stays usable.

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task]
fn divide(a: i32, b: i32) -> i32 {
    if b == 0 {
        panic!("cannot divide {a} by zero");
    }
    a / b
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn panic_with_value() -> u8 {
    std::panic::panic_any(42u64)
}

#[test]
fn panic_message_and_location_arrive_intact() {
    let pool = Pool::new(1).unwrap();
    let err = apply_divide(&pool, 10, 0).unwrap_err();
    match &err {
        Error::Panic {
            task,
            message,
            location,
            ..
        } => {
            assert_eq!(task, "panics::divide");
            assert_eq!(message, "cannot divide 10 by zero");
            let expected_line = include_str!("panics.rs")
                .lines()
                .position(|l| l.trim_start().starts_with("panic!(\"cannot divide"))
                .unwrap()
                + 1;
            assert!(
                location.starts_with(&format!("tests/panics.rs:{expected_line}:")),
                "{location}"
            );
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("panics::divide") && text.contains("cannot divide 10 by zero"),
        "{text}"
    );
}

#[test]
fn the_worker_survives_a_panic() {
    let pool = Pool::new(1).unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    assert!(apply_divide(&pool, 1, 0).is_err());
    assert_eq!(apply_divide(&pool, 9, 3).unwrap(), 3);
    assert_eq!(
        apply_worker_pid(&pool).unwrap(),
        before,
        "the same worker served on"
    );
    assert_ne!(before, std::process::id());
}

#[test]
fn async_panics_arrive_at_get() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = (0..6)
        .map(|b| apply_async_divide(&pool, 12, b % 3))
        .collect();
    let outcomes: Vec<_> = results.into_iter().map(|r| r.get()).collect();
    for (b, outcome) in outcomes.iter().enumerate() {
        match b % 3 {
            0 => assert!(matches!(outcome, Err(Error::Panic { .. })), "{outcome:?}"),
            d => assert_eq!(outcome.as_ref().unwrap(), &(12 / d as i32)),
        }
    }
}

#[test]
fn non_string_panic_payloads_are_described() {
    let pool = Pool::new(1).unwrap();
    match apply_panic_with_value(&pool) {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "Box<dyn Any>"),
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// A panic payload whose own `Drop` panics.
struct PanicsWhenDropped;

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("the payload's drop panicked too");
    }
}

#[derive(Debug)]
struct SerializePanics;

impl serde::Serialize for SerializePanics {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        std::panic::panic_any(PanicsWhenDropped)
    }
}

impl<'de> serde::Deserialize<'de> for SerializePanics {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(SerializePanics)
    }
}

#[pool_task]
fn panic_with_bad_payload() -> u8 {
    std::panic::panic_any(PanicsWhenDropped)
}

#[pool_task]
fn takes_bad_value(_v: SerializePanics) -> u8 {
    1
}

/// A panic whose payload panics again when dropped is contained wherever
/// procpool catches one: in a task (`Panic`, the worker serves on), in a
/// callback (the result completes, the callback thread serves on), and in
/// an argument's `Serialize` (`Encode`, in `apply` and in a map).
#[test]
fn a_panic_payload_that_panics_when_dropped_is_contained() {
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    match apply_panic_with_bad_payload(&pool) {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "Box<dyn Any>"),
        other => panic!("expected Panic, got {other:?}"),
    }
    assert!(matches!(
        apply_async_panic_with_bad_payload(&pool).get(),
        Err(Error::Panic { .. })
    ));
    assert_eq!(
        apply_worker_pid(&pool).unwrap(),
        pid,
        "the worker served on"
    );

    let (tx, rx) = std::sync::mpsc::channel();
    let r = apply_async_worker_pid(&pool).callback(|_| std::panic::panic_any(PanicsWhenDropped));
    std::thread::spawn(move || tx.send(r.get()).unwrap());
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("get returns after the callback panicked");
    assert_eq!(got.unwrap(), pid);
    // The callback thread serves on.
    let (tx, rx) = std::sync::mpsc::channel();
    let r = apply_async_worker_pid(&pool).callback(move |p| tx.send(p).unwrap());
    assert_eq!(r.get().unwrap(), pid);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap(),
        pid
    );

    assert!(matches!(
        apply_takes_bad_value(&pool, SerializePanics),
        Err(Error::Encode { .. })
    ));
    let results = map_takes_bad_value(&pool, [SerializePanics, SerializePanics]);
    assert!(matches!(results, Err(Error::Encode { .. })), "{results:?}");
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid);
}

#[pool_task]
fn panic_with_text_of(len: usize) -> u8 {
    panic!("{}", "x".repeat(len))
}

/// A panic message over what the caller decodes of a failure report (64
/// MiB), under a default frame limit (4 GiB), is cut to fit as a smaller
/// one is: the caller gets `Panic`, not a protocol error, and the worker
/// lives on.
#[test]
fn a_panic_message_of_100_mib_arrives_cut_and_the_worker_lives_on() {
    let pool = Pool::new(1).unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    match apply_panic_with_text_of(&pool, 100 << 20) {
        Err(Error::Panic { message, .. }) => {
            let start: String = message.chars().take(64).collect();
            assert!(message.starts_with("xxxx"), "{start}");
            assert!(message.len() < 64 << 20, "{} bytes", message.len());
            assert!(message.len() > 1 << 20, "{} bytes", message.len());
        }
        other => panic!("expected Panic, got {:?}", other.map_err(|e| e.kind())),
    }
    assert_eq!(apply_worker_pid(&pool).unwrap(), before, "the same worker");
}

/// Catches a panic of its own and returns normally (as a library using
/// `catch_unwind` inside does).
#[pool_task]
fn swallow_a_panic() -> u32 {
    let caught = std::panic::catch_unwind(|| panic!("swallowed by an earlier task"));
    assert!(caught.is_err());
    std::process::id()
}

/// Re-raises a panic with `resume_unwind` (as `JoinHandle::join` and
/// `resume_unwind`, rayon or a scoped pool do): no panic hook runs.
#[pool_task]
fn resume_with(message: String) -> u32 {
    std::panic::resume_unwind(Box::new(message))
}

/// A panic resumed with `resume_unwind` reports its own message, not that
/// of a panic an earlier task on the same worker caught itself (the hook's
/// record of it was taken for this one).
#[test]
fn a_resumed_panic_reports_its_own_message_not_an_earlier_caught_one() {
    let pool = Pool::new(1).unwrap();
    let pid = apply_swallow_a_panic(&pool).unwrap();
    match apply_resume_with(&pool, "the second task's own message".into()) {
        Err(Error::Panic { message, .. }) => assert_eq!(message, "the second task's own message"),
        other => panic!("expected the second task's panic, got {other:?}"),
    }
    assert_eq!(
        apply_swallow_a_panic(&pool).unwrap(),
        pid,
        "the same worker serves on"
    );
}

/// A program built with `panic = "abort"` (a common release setting): a
/// task's panic cannot be caught, so it ends its worker (`WorkerDied`,
/// SIGABRT), and its message must reach the worker's stderr (your
/// terminal) rather than vanish in the hook that records reports for
/// `Error::Panic`. Builds a small crate with that profile (offline, with
/// this workspace's lock file, in a target directory kept between runs).
#[test]
fn under_panic_abort_a_tasks_panic_message_is_printed_and_its_worker_dies() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("panic-abort");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"panic-abort\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[workspace]\n\n[dependencies]\n\
         procpool = {{ path = {:?} }}\n\n[profile.dev]\npanic = \"abort\"\n",
        format!("{root}/runtime")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(format!("{root}/Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let main = r#"
#[procpool::pool_task]
fn boom(x: u32) -> u32 {
    if x == 3 {
        panic!("boom at {x}, under panic=abort");
    }
    x
}

fn main() {
    procpool::init();
    let pool = procpool::Pool::new(1).unwrap();
    match apply_boom(&pool, 3) {
        Err(procpool::Error::WorkerDied { status: procpool::ExitInfo::Signal(6), .. }) => {}
        other => panic!("apply_boom(3): {other:?}"),
    }
    assert_eq!(apply_boom(&pool, 1).unwrap(), 1);
    println!("checked");
}
"#;
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .status()
        .unwrap();
    assert!(built.success(), "building the panic=abort crate failed");
    let out = std::process::Command::new(dir.join("target/debug/panic-abort"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("checked"),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("boom at 3, under panic=abort"),
        "the task's panic message was lost; stderr:\n{stderr}"
    );
}
