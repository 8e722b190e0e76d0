// `#[procpool::main(crate = path)]` for a procpool renamed in Cargo.toml
// (`pp = { package = "procpool", .. }`; here an alias stands for it): the
// `init()` it inserts goes through that path.
use procpool as pp;

#[pp::pool_task(crate = pp)]
fn one() -> u8 {
    1
}

#[pp::main(crate = pp)]
fn main() {
    let pool = pp::Pool::new(1).unwrap();
    assert_eq!(apply_one(&pool).unwrap(), 1);
}
