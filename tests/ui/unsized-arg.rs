use std::fmt::Debug;

use procpool::pool_task;

#[pool_task]
fn count_chars(text: str) -> usize {
    text.chars().count()
}

#[pool_task]
fn first(values: [u8]) -> u8 {
    values[0]
}

#[pool_task]
fn describe(value: dyn Debug) -> String {
    format!("{value:?}")
}

#[pool_task]
fn show(value: &dyn Debug) -> String {
    format!("{value:?}")
}

fn main() {}
