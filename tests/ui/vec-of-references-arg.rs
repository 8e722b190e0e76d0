use procpool::pool_task;

#[pool_task]
fn total(words: Vec<&str>) -> usize {
    words.len()
}

fn main() {}
