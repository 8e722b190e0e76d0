use procpool::pool_task;

#[pool_task]
fn add((a, b): (i32, i32)) -> i32 {
    a + b
}

fn main() {}
