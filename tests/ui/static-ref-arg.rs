use procpool::pool_task;

#[pool_task]
fn keep(name: &'static str) -> usize {
    name.len()
}

fn main() {}
