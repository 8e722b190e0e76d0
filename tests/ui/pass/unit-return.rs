use procpool::{pool_task, Error, Pool};

#[pool_task]
fn log_line(line: String) {
    println!("{line}");
}

#[pool_task]
fn explicit_unit(_x: u8) -> () {}

#[allow(dead_code)]
fn caller(pool: &Pool) -> Result<(), Error> {
    let () = apply_log_line(pool, "hi".to_string())?;
    let () = apply_explicit_unit(pool, 1)?;
    Ok(())
}

fn main() {}
