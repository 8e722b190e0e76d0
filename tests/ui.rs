//! Compile-fail and must-compile cases for `#[pool_task]`.
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
