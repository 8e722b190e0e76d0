use procpool::pool_task;

trait Job {
    #[pool_task]
    fn run(x: u8) -> u8;
}

extern "C" {
    #[pool_task]
    fn abs(x: i32) -> i32;
}

fn main() {}
