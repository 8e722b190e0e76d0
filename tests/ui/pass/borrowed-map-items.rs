//! Reference arguments take owned and borrowed items in every map form:
//! `&PathBuf` for `&Path` (which `Borrow` alone would refuse), `&String` and
//! `&str` for `&str`, `&Vec<T>` and arrays for `&[T]`, `&T` for `&T`.

use std::path::{Path, PathBuf};

use procpool::{pool_task, Error, MapOptions, Pool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Config {
    scale: u32,
}

#[pool_task]
fn size(path: &Path) -> u64 {
    path.as_os_str().len() as u64
}

#[pool_task]
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[pool_task]
fn total(values: &[u32]) -> u32 {
    values.iter().sum()
}

#[pool_task]
fn scaled(config: &Config, x: u32) -> u32 {
    config.scale * x
}

#[pool_task]
fn by_ref_int(x: &u64) -> u64 {
    *x
}

#[allow(dead_code)]
fn callers(pool: &Pool) -> Result<(), Error> {
    let options = MapOptions::new();
    let files: Vec<PathBuf> = vec!["/a".into(), "/b/c".into()];
    let _: Vec<u64> = map_size(pool, files.iter())?;
    let _: Vec<u64> = map_size(pool, files.clone())?;
    let _: Vec<u64> = map_size(pool, ["/a", "/b"])?;
    let _ = map_async_size(pool, files.iter()).get()?;
    let _ = map_async_size_with(pool, files.iter(), options).get()?;
    let _ = map_size_with(pool, files.iter(), options)?;
    let _ = imap_size(pool, files.iter()).count();
    let _ = imap_size_with(pool, files.iter(), options).count();
    let _ = imap_unordered_size(pool, files.iter()).count();
    let _ = imap_unordered_size_with(pool, files.iter(), options).count();

    let texts = vec!["a b".to_string(), "c".to_string()];
    let _ = map_words(pool, texts.iter())?;
    let _ = map_words(pool, ["a b", "c"])?;
    let _ = imap_words(pool, texts.iter().map(String::as_str)).count();

    let lists = vec![vec![1u32, 2], vec![3]];
    let _ = map_total(pool, lists.iter())?;
    let _ = map_total(pool, [[1u32, 2], [3, 4]])?;
    let _ = imap_unordered_total(pool, lists.clone()).count();

    let config = Config { scale: 2 };
    let _ = map_scaled(pool, (0..4).map(|x| (&config, x)))?;
    let _ = map_scaled(pool, vec![(Config { scale: 3 }, 1)])?;

    // Integer literals still infer the referent's type.
    let _ = map_by_ref_int(pool, 0..4)?;
    let ints = [1u64, 2];
    let _ = map_by_ref_int(pool, ints.iter())?;
    Ok(())
}

fn main() {}
