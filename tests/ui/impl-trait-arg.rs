use procpool::pool_task;

#[pool_task]
fn show(value: impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

fn main() {}
