use procpool::pool_task;

// Python's `pool.map(lambda x: x * 2, xs)`, written with a closure.
fn doubled() {
    #[pool_task]
    let double = |x: u64| x * 2;
    let _ = double;
}

fn main() {
    doubled();
}
