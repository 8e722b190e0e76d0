// Task names with a leading or trailing underscore (`_helper`, Python's
// habit for a private function; `type_`, for a name that is a keyword)
// make generated names with two underscores in a row (`apply__helper`,
// `map_type__with`): no `non_snake_case` warning at the user's task for
// them, which `#[allow]` on the task could not silence.
#![deny(warnings)]

use procpool::{pool_task, Error, Pool};

#[pool_task]
fn _helper(x: u32) -> u32 {
    x + 1
}

#[pool_task]
fn type_(x: u32) -> u32 {
    x + 2
}

#[pool_task]
fn __dunder__(x: u32) -> u32 {
    x + 3
}

#[allow(dead_code)]
fn callers(pool: &Pool) -> Result<(), Error> {
    let _: u32 = apply__helper(pool, 1)?;
    let _: Vec<u32> = map_type__with(pool, 0..3, procpool::MapOptions::new())?;
    let _ = imap_unordered___dunder__(pool, 0..3).count();
    Ok(())
}

fn main() {}
