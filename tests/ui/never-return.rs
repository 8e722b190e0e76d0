use procpool::pool_task;

// A task that never returns, as a plain function may declare.
#[pool_task]
fn give_up(code: i32) -> ! {
    std::process::exit(code)
}

fn main() {}
