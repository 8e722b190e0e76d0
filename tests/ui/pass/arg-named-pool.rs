use procpool::{pool_task, Error, Pool};

#[pool_task]
fn pick(pool: Vec<String>, index: usize) -> Option<String> {
    pool.get(index).cloned()
}

// Arguments named `pool` and `procpool_pool` both: the generated functions'
// pool parameter takes a third name.
#[pool_task]
fn sum(pool: u32, procpool_pool: u32) -> u32 {
    pool + procpool_pool
}

#[allow(dead_code)]
fn caller(workers: &Pool) -> Result<(), Error> {
    let _: Option<String> = apply_pick(workers, vec!["a".into()], 0)?;
    let _: u32 = apply_sum(workers, 1, 2)?;
    let _ = apply_async_sum(workers, 1, 2);
    let _: Vec<u32> = map_sum(workers, [(1, 2)])?;
    Ok(())
}

fn main() {}
