use procpool as pp;

#[pp::pool_task(crate = "pp")]
fn double(x: u32) -> u32 {
    x * 2
}

#[pp::pool_task(crate)]
fn triple(x: u32) -> u32 {
    x * 3
}

#[pp::main(crate = "pp")]
fn main() {}
