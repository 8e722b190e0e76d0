// `crate = path` for a renamed procpool: an alias of the crate, and the
// absolute path.
use procpool as pp;

#[pp::pool_task(crate = pp)]
fn through_alias(x: u32) -> u32 {
    x + 1
}

#[procpool::pool_task(crate = ::procpool)]
fn through_absolute_path(x: u32) -> u32 {
    x + 2
}

mod nested {
    #[super::pp::pool_task(crate = super::pp)]
    pub fn through_relative_path(x: u32) -> u32 {
        x + 3
    }
}

#[allow(dead_code)]
fn callers(pool: &pp::Pool) -> Result<(), pp::Error> {
    let _: u32 = apply_through_alias(pool, 1)?;
    let _: u32 = apply_through_absolute_path(pool, 1)?;
    let _: u32 = nested::apply_through_relative_path(pool, 1)?;
    Ok(())
}

fn main() {}
