//! `apply_<fn>` and `apply_async_<fn>`: results of every kind of task come
//! back intact from another process.

mod support;

use std::path::{Path, PathBuf};

use procpool::{pool_task, Pool};
use serde::{Deserialize, Serialize};

procpool::enable_test_support!();

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn count(words: &[String], needle: &str) -> usize {
    words.iter().filter(|w| *w == needle).count()
}

#[pool_task]
fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[pool_task]
fn manhattan(a: &Point, b: Point) -> (u64, u32) {
    (
        (a.x - b.x).unsigned_abs() + (a.y - b.y).unsigned_abs(),
        std::process::id(),
    )
}

#[pool_task]
fn parse_port(text: String) -> Result<u16, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a port: {e}"))
}

#[pool_task]
fn touch(path: PathBuf) {
    std::fs::write(path, std::process::id().to_string()).unwrap();
}

#[pool_task(name = "custom/name")]
fn renamed(s: String) -> String {
    s.to_uppercase()
}

#[test]
fn apply_returns_the_result_from_another_process() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(apply_square(&pool, 4).unwrap(), 16);
    let pid = apply_worker_pid(&pool).unwrap();
    assert_ne!(pid, std::process::id());
}

#[test]
fn apply_async_returns_at_once_and_get_waits() {
    let pool = Pool::new(2).unwrap();
    let r = apply_async_square(&pool, 5);
    assert_eq!(r.get().unwrap(), 25);
    let many: Vec<_> = (0..50).map(|x| apply_async_square(&pool, x)).collect();
    let got: Vec<u64> = many.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(got, (0..50).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn the_function_stays_callable() {
    assert_eq!(square(3), 9);
    assert_eq!(count(&["a".into()], "a"), 1);
}

#[test]
fn reference_arguments_are_sent_by_value() {
    let pool = Pool::new(1).unwrap();
    let words: Vec<String> = ["a", "b", "a", "c", "a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(apply_count(&pool, &words, "a").unwrap(), 3);
    assert_eq!(apply_count(&pool, &words[..2], "c").unwrap(), 0);
    assert_eq!(
        apply_file_name(&pool, Path::new("/tmp/x/report.txt"))
            .unwrap()
            .as_deref(),
        Some("report.txt")
    );
    let (distance, pid) =
        apply_manhattan(&pool, &Point { x: 1, y: 2 }, Point { x: -2, y: 6 }).unwrap();
    assert_eq!(distance, 7);
    assert_ne!(pid, std::process::id());
}

#[test]
fn result_returns_arrive_as_values() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_parse_port(&pool, "8080".into()).unwrap(), Ok(8080));
    let err = apply_parse_port(&pool, "http".into()).unwrap().unwrap_err();
    assert!(err.contains("\"http\" is not a port"), "{err}");
}

#[test]
fn unit_tasks_run_for_their_effect() {
    let pool = Pool::new(1).unwrap();
    let path = support::Scratch::temp("touch");
    apply_touch(&pool, path.to_path_buf()).unwrap();
    let writer: u32 = std::fs::read_to_string(&*path).unwrap().parse().unwrap();
    assert_ne!(writer, std::process::id());
}

#[test]
fn tasks_are_registered_by_stable_names() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(apply_renamed(&pool, "abc".into()).unwrap(), "ABC");
    let r = apply_async_square(&pool, 2);
    assert_eq!(r.task(), "apply::square");
    r.get().unwrap();
    let listing = procpool::registry();
    let has = |name: &str, signature: &str| {
        listing
            .iter()
            .any(|t| t.name() == name && t.signature() == signature)
    };
    assert!(
        has("apply::count", "fn(&[String], &str) -> usize"),
        "{listing:?}"
    );
    assert!(has("custom/name", "fn(String) -> String"), "{listing:?}");
}

#[test]
fn large_payloads_round_trip() {
    #[pool_task]
    fn checksum(bytes: Vec<u8>) -> (usize, u64) {
        (bytes.len(), bytes.iter().map(|&b| u64::from(b)).sum())
    }
    let pool = Pool::new(1).unwrap();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected: u64 = data.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(apply_checksum(&pool, data).unwrap(), (4_000_000, expected));
}
