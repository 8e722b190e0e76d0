use procpool::pool_task;

#[pool_task(name = b"double")]
fn double(x: u32) -> u32 {
    x * 2
}

#[pool_task(name = concat!("tasks/", "triple"))]
fn triple(x: u32) -> u32 {
    x * 3
}

#[pool_task(name = )]
fn quadruple(x: u32) -> u32 {
    x * 4
}

#[pool_task(name)]
fn quintuple(x: u32) -> u32 {
    x * 5
}

fn main() {}
