//! Compile-fail and must-compile cases for `#[pool_task]`, and values that
//! must not be forgotten (`tests/ui/must-use/`: a builder never built).
//! (`Node`'s cannot be checked here: trybuild does not pass the `redis`
//! feature on to procpool.)
//!
//! Each `tests/ui/*.rs` file holds one misuse; its `.stderr` is exactly what
//! the user sees. Re-record after a deliberate change with
//! `TRYBUILD=overwrite cargo test --test ui`, then read every diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}

/// Forgetting a builder is a warning (an error in these cases, which deny
/// it).
#[test]
fn must_use() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/must-use/*.rs");
}
