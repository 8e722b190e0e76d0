use procpool::pool_task;

#[pool_task]
unsafe extern "C" fn sum(count: i32, ...) -> i32 {
    count
}

fn main() {}
