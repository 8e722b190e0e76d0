procpool::enable_test_support!();

#[procpool::pool_task]
fn pid_of_worker() -> u32 {
    std::process::id()
}

#[test]
fn runs_in_another_process() {
    let pool = procpool::Pool::new(2).unwrap();
    let pid = apply_pid_of_worker(&pool).unwrap();
    assert_ne!(pid, std::process::id());
}
