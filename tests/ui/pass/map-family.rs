//! The whole generated family, with the item types each task's map takes:
//! the argument itself, a tuple for several (starmap), owned or borrowed
//! values for reference arguments, `()` for none; public tasks get public
//! functions.

use std::path::{Path, PathBuf};

use procpool::{pool_task, AsyncResult, Error, Imap, ImapUnordered, MapOptions, Pool};

#[pool_task]
pub fn one(x: u64) -> u64 {
    x
}

#[pool_task]
fn two(a: i32, b: String) -> String {
    format!("{a}{b}")
}

#[pool_task]
fn refs(text: &str, values: &[u32], path: &Path, n: &u8) -> usize {
    text.len() + values.len() + path.as_os_str().len() + usize::from(*n)
}

#[pool_task]
fn none() {}

pub mod public {
    #[procpool::pool_task]
    pub fn exported(x: u8) -> u8 {
        x
    }
}

#[allow(dead_code)]
fn callers(pool: &Pool) -> Result<(), Error> {
    let options = MapOptions::new().chunksize(4);
    let _: Vec<u64> = map_one(pool, 0..10)?;
    let _: Vec<u64> = map_one_with(pool, vec![1, 2], options)?;
    let _: AsyncResult<Vec<u64>> = map_async_one(pool, [1, 2]);
    let _: AsyncResult<Vec<u64>> = map_async_one_with(pool, [1, 2], options);
    let _: Imap<'_, u64, _> = imap_one(pool, 0..);
    let _: Imap<'_, u64, _> = imap_one_with(pool, 0.., options);
    let _: ImapUnordered<'_, u64, _> = imap_unordered_one(pool, 0..);
    let _: ImapUnordered<'_, u64, _> = imap_unordered_one_with(pool, 0.., options);

    let _: Vec<String> = map_two(pool, vec![(1, "a".to_string())])?;
    let words = ["x".to_string()];
    let _ = imap_two(pool, words.iter().map(|w| (1, w.clone()))).count();

    let item = ("t".to_string(), vec![1u32], PathBuf::from("/"), 3u8);
    let _: Vec<usize> = map_refs(pool, vec![item])?;
    let _: Vec<()> = map_none(pool, vec![(), ()])?;
    let _: Vec<u64> = starmap_one(pool, [(1,), (2,)])?;
    let _: Vec<u64> = starmap_one_with(pool, vec![(1,)], options)?;
    let _: AsyncResult<Vec<u64>> = starmap_async_one(pool, [(1,)]);
    let _: AsyncResult<Vec<u64>> = starmap_async_one_with(pool, [(1,)], options);
    let _: Vec<String> = starmap_two(pool, vec![(1, "a".to_string())])?;
    let _: Vec<usize> = starmap_refs(pool, [("t", vec![1u32], Path::new("/"), &3u8)])?;
    let _: Vec<()> = starmap_none(pool, [()])?;
    let _: Vec<u8> = public::starmap_exported(pool, [(1u8,)])?;
    let _: Vec<u8> = public::map_exported(pool, 0..3u8)?;
    Ok(())
}

fn main() {}
