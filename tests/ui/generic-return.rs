use procpool::pool_task;

#[pool_task]
fn make<T: Default>() -> T {
    T::default()
}

fn main() {}
