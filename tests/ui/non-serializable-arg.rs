use procpool::pool_task;

struct Secret(u32);

#[pool_task]
fn reveal(id: u32, secret: Secret) -> u32 {
    id + secret.0
}

fn main() {}
