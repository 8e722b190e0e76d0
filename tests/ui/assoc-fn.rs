use procpool::pool_task;

struct Math;

impl Math {
    /// Doubles.
    #[pool_task]
    pub fn double(x: u32) -> u32 {
        x * 2
    }
}

trait Halve {
    #[pool_task]
    fn halve(x: u32) -> u32 {
        x / 2
    }
}

fn main() {
    assert_eq!(Math::double(2), 4);
}
