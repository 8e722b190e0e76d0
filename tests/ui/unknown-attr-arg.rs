use procpool::pool_task;

#[pool_task(timeout = 5)]
fn double(x: u32) -> u32 {
    x * 2
}

fn main() {}
