use procpool::pool_task;

#[pool_task]
fn digits(n: u32) -> impl Iterator<Item = u32> {
    n.to_string().chars().filter_map(|c| c.to_digit(10)).collect::<Vec<_>>().into_iter()
}

fn main() {}
