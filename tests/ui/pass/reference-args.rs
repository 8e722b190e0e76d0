use std::path::Path;

use procpool::{pool_task, AsyncResult, Error, Pool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Config {
    scale: u32,
}

#[pool_task]
fn by_str(text: &str) -> usize {
    text.len()
}

#[pool_task]
fn by_slice(values: &[u32]) -> u32 {
    values.iter().sum()
}

#[pool_task]
fn by_path(path: &Path) -> bool {
    path.is_absolute()
}

#[pool_task]
fn by_struct(config: &Config, x: u32) -> u32 {
    config.scale * x
}

#[allow(dead_code)]
fn callers(pool: &Pool) -> Result<(), Error> {
    let _: usize = apply_by_str(pool, "abc")?;
    let _: u32 = apply_by_slice(pool, &[1, 2, 3])?;
    let _: bool = apply_by_path(pool, Path::new("/tmp"))?;
    let _: AsyncResult<u32> = apply_async_by_struct(pool, &Config { scale: 2 }, 3);
    Ok(())
}

fn main() {}
