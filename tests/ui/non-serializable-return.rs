use procpool::pool_task;

struct Report {
    lines: usize,
}

#[pool_task]
fn count_lines(text: String) -> Report {
    Report { lines: text.lines().count() }
}

fn main() {}
