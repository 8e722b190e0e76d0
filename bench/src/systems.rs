//! The systems a run measures: procpool, the three floors, Python's
//! `multiprocessing.Pool` and procspawn's `Pool`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Procpool,
    /// Two processes exchanging frames over an AF_UNIX stream socket pair.
    Socket,
    /// The same frames over a pair of pipes.
    Pipe,
    /// One word in shared memory, waits and wake-ups by futex.
    Futex,
    Python,
    Procspawn,
}

pub use System::*;

impl System {
    /// Every system, in column order.
    pub const ALL: [System; 6] = [Procpool, Socket, Pipe, Futex, Python, Procspawn];
    /// The floors: no pool logic, only the cheapest exchange of each kind.
    pub const FLOORS: [System; 3] = [Socket, Pipe, Futex];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Procpool => "procpool",
            Socket => "socket floor",
            Pipe => "pipe floor",
            Futex => "futex floor",
            Python => "Python Pool (spawn)",
            Procspawn => "procspawn Pool",
        }
    }

    /// A floor's name in a cell ("futex").
    pub fn short(self) -> &'static str {
        match self {
            Socket => "socket",
            Pipe => "pipe",
            Futex => "futex",
            other => other.name(),
        }
    }
}
