use procpool::pool_task;

#[pool_task]
fn first(words: &[String]) -> Option<&str> {
    words.first().map(|s| s.as_str())
}

fn main() {}
