use procpool::pool_task;

#[pool_task]
fn sorted(mut values: Vec<i64>) -> Vec<i64> {
    values.sort_unstable();
    values
}

fn main() {
    let _ = apply_sorted;
}
