use procpool::pool_task;

#[pool_task]
fn length(ref text: String) -> usize {
    text.len()
}

fn main() {}
