use procpool::{pool_task, Pool};

#[derive(serde::Serialize, serde::Deserialize)]
struct Point {
    x: i32,
}

#[pool_task]
fn px(p: &Point) -> i32 {
    p.x
}

fn main() {
    let pool = Pool::new(1).unwrap();
    let _ = map_px(&pool, vec![1u64, 2]);
}
