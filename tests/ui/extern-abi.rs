use procpool::pool_task;

#[pool_task]
extern "C" fn double(x: u32) -> u32 {
    x * 2
}

fn main() {}
