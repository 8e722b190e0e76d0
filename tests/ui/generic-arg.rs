use procpool::pool_task;

#[pool_task]
fn show<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

fn main() {}
