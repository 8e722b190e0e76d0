use procpool::pool_task;

struct Point {
    x: i32,
}

#[pool_task]
fn sum_x(points: &[Point]) -> i32 {
    points.iter().map(|p| p.x).sum()
}

fn main() {}
