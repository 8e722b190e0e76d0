use procpool::{pool_task, Pool};

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), procpool::Error> {
    procpool::init();
    let pool = Pool::new(4)?;
    assert_eq!(apply_square(&pool, 4)?, 16);
    let r = apply_async_square(&pool, 5);
    println!("Doing other work while process runs...");
    assert_eq!(r.get()?, 25);
    pool.close();
    pool.join();
    Ok(())
}
