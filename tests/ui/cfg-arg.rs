use procpool::pool_task;

#[pool_task]
fn double(x: u32, #[cfg(any())] y: u32) -> u32 {
    x * 2
}

fn main() {}
