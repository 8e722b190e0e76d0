// An `async fn main` with no runtime's attribute: one error at `async`.
#[procpool::main]
async fn main() {}
