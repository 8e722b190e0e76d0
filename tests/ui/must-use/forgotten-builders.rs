#![deny(unused_must_use)]

fn main() {
    procpool::Pool::builder();
    procpool::MapOptions::new();
    procpool::MapOptions::new().chunksize(4);
}
