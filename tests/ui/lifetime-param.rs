use procpool::pool_task;

// A named lifetime, as for a plain function taking two borrowed strings.
#[pool_task]
fn longer<'a>(a: &'a str, b: &'a str) -> usize {
    a.len().max(b.len())
}

fn main() {}
