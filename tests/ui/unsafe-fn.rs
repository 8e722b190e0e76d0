use procpool::pool_task;

#[pool_task]
unsafe fn first(bytes: Vec<u8>) -> u8 {
    *bytes.get_unchecked(0)
}

fn main() {}
