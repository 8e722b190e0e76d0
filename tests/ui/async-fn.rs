use procpool::pool_task;

#[pool_task]
async fn fetch(id: u32) -> String {
    id.to_string()
}

fn main() {}
