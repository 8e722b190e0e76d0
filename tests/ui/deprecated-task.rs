// A deprecated task: its callers are warned, through the generated
// functions too, and nothing else is (procpool's own registration of the
// task calls it, which must not warn at the definition).
#![deny(deprecated)]

use procpool::{pool_task, Pool};

#[deprecated(note = "use `new_square`")]
#[pool_task]
fn old_square(x: u64) -> u64 {
    x * x
}

#[allow(deprecated)]
fn still_allowed(pool: &Pool) {
    let _ = apply_old_square(pool, 2);
    let _ = old_square(2);
}

fn main() {
    procpool::init();
    let pool = Pool::new(1).unwrap();
    still_allowed(&pool);
    let _ = apply_old_square(&pool, 3);
    let _ = map_old_square(&pool, 0..3);
}
