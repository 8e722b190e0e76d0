// Tasks `f` and `async_f` in one module: both make `apply_async_f`,
// `map_async_f` and `map_async_f_with` (documented on `pool_task`).
use procpool::pool_task;

#[pool_task]
fn f(x: u32) -> u32 {
    x
}

#[pool_task]
fn async_f(x: u32) -> u32 {
    x
}

fn main() {}
