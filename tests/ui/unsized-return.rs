use procpool::pool_task;

#[pool_task]
fn greeting(name: String) -> str {
    todo!("{name}")
}

#[pool_task]
fn bytes(n: usize) -> [u8] {
    todo!("{n}")
}

fn main() {}
