use procpool::{pool_task, Error, Pool};

#[pool_task]
fn r#match(pattern: String, text: String) -> bool {
    text.contains(&pattern)
}

#[allow(dead_code)]
fn caller(pool: &Pool) -> Result<(), Error> {
    let _: bool = apply_match(pool, "a".into(), "abc".into())?;
    let _ = apply_async_match(pool, "a".into(), "abc".into());
    Ok(())
}

fn main() {}
