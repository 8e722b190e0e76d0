use procpool::pool_task;

#[pool_task]
struct Job {
    id: u32,
}

fn main() {
    let _ = Job { id: 1 }.id;
}
