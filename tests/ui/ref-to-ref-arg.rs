use procpool::pool_task;

#[pool_task]
fn len(x: &&str) -> usize {
    x.len()
}

fn main() {}
