//! The CPU-bound loop every system runs in the CPU rows, in one place so
//! that procpool, procspawn and Python all run the same machine code for the
//! same number of iterations (one calibration, made once per run by the
//! benchmark and passed to all of them). Python calls it through `ctypes`
//! from this crate's shared library (`libprocpool_bench.so`, built next to
//! the benchmark's binary).

/// A CPU-bound loop whose cost grows linearly with `iters`; the optimizer
/// cannot skip it.
pub fn spin(iters: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(std::hint::black_box(i));
    }
    x
}

/// [`spin`] for C callers (Python's `ctypes`): the same loop, the same code.
#[no_mangle]
pub extern "C" fn procpool_bench_spin(iters: u64) -> u64 {
    spin(iters)
}
