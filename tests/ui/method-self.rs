use procpool::pool_task;

struct Counter(u32);

impl Counter {
    #[pool_task]
    fn get(&self) -> u32 {
        self.0
    }
}

fn main() {}
