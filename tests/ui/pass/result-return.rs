use procpool::{pool_task, Error, Pool};

#[pool_task]
fn parse_port(text: String) -> Result<u16, String> {
    text.parse().map_err(|e| format!("{text:?}: {e}"))
}

#[allow(dead_code)]
fn caller(pool: &Pool) -> Result<(), Error> {
    let port: Result<u16, String> = apply_parse_port(pool, "80".to_string())?;
    let _ = port;
    Ok(())
}

fn main() {}
