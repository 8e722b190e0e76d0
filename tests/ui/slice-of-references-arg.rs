use procpool::pool_task;

#[pool_task]
fn total(words: &[&str]) -> usize {
    words.len()
}

fn main() {}
