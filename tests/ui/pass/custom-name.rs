use procpool::pool_task;

#[pool_task(name = "tasks/double-v2")]
fn double(x: u32) -> u32 {
    x * 2
}

fn main() {
    let _: Vec<procpool::TaskEntry> = procpool::registry();
    let _ = double;
    let _ = apply_double;
}
