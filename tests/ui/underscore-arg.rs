use procpool::pool_task;

#[pool_task]
fn ignore(_: u32) -> u32 {
    0
}

fn main() {}
