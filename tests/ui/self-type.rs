use procpool::pool_task;

#[pool_task]
fn doubled(x: u32) -> Self {
    x * 2
}

fn main() {}
