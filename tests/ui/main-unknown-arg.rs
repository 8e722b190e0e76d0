// `#[procpool::main]` takes only `crate = path`.
#[procpool::main(processes = 4)]
fn main() {}
