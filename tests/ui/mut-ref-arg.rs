use procpool::pool_task;

#[pool_task]
fn push_one(values: &mut Vec<u32>) {
    values.push(1);
}

fn main() {}
