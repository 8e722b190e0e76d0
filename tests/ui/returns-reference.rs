use procpool::pool_task;

#[pool_task]
fn greeting() -> &'static str {
    "hello"
}

fn main() {}
