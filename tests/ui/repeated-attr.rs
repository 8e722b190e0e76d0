use procpool::pool_task;

// The attribute twice (a copy-paste), once by its full path.
#[pool_task]
#[procpool::pool_task]
fn twice(x: u8) -> u8 {
    x
}

fn main() {
    procpool::init();
    let pool = procpool::Pool::new(1).unwrap();
    let _ = apply_twice(&pool, 1);
}
