use procpool::{pool_task, Error, Pool};

#[pool_task]
fn pick(pool: Vec<String>, index: usize) -> Option<String> {
    pool.get(index).cloned()
}

#[allow(dead_code)]
fn caller(workers: &Pool) -> Result<(), Error> {
    let _: Option<String> = apply_pick(workers, vec!["a".into()], 0)?;
    Ok(())
}

fn main() {}
