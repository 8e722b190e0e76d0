//! Borrowed map items: a task taking `&Path`, `&str`, `&[T]` or `&T` maps
//! over `files.iter()` (items `&PathBuf`, `&String`, `&Vec<T>`, `&T`) as
//! well as over owned items, in every map form, with the same results; a
//! `&T` task over `&&T` items (`Vec<&T>::iter()`) and owning pointers too.
//! Also: `Imap` and `ImapUnordered` move to another thread and keep
//! working there (they are `Send` when their input is).

use std::path::{Path, PathBuf};

use procpool::{pool_task, MapOptions, Pool};
use serde::{Deserialize, Serialize};

procpool::enable_test_support!();

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scale {
    factor: u64,
}

/// The path's length in bytes, and the pid that measured it.
#[pool_task]
fn path_len(path: &Path) -> (usize, u32) {
    (path.as_os_str().len(), std::process::id())
}

#[pool_task]
fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[pool_task]
fn total(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[pool_task]
fn scaled(scale: &Scale, x: u64) -> u64 {
    scale.factor * x
}

fn paths() -> Vec<PathBuf> {
    (0..40)
        .map(|i| PathBuf::from("/tmp/x".repeat(i % 7 + 1)))
        .collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn a_path_task_maps_over_borrowed_and_owned_items_in_every_form() {
    let pool = Pool::new(2).unwrap();
    let files = paths();
    let expected: Vec<usize> = files.iter().map(|p| p.as_os_str().len()).collect();
    let lens = |out: Vec<(usize, u32)>| -> Vec<usize> {
        assert!(out.iter().all(|(_, pid)| *pid != std::process::id()));
        out.into_iter().map(|(len, _)| len).collect()
    };
    let options = MapOptions::new().chunksize(3);
    assert_eq!(lens(map_path_len(&pool, files.iter()).unwrap()), expected);
    assert_eq!(lens(map_path_len(&pool, files.clone()).unwrap()), expected);
    assert_eq!(
        lens(map_path_len_with(&pool, files.iter(), options).unwrap()),
        expected
    );
    assert_eq!(
        lens(map_async_path_len(&pool, files.iter()).get().unwrap()),
        expected
    );
    assert_eq!(
        lens(
            map_async_path_len_with(&pool, files.iter(), options)
                .get()
                .unwrap()
        ),
        expected
    );
    let ordered: Vec<_> = imap_path_len(&pool, files.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(lens(ordered), expected);
    let ordered: Vec<_> = imap_path_len_with(&pool, files.iter(), options)
        .map(Result::unwrap)
        .collect();
    assert_eq!(lens(ordered), expected);
    let unordered: Vec<_> = imap_unordered_path_len(&pool, files.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(sorted(lens(unordered)), sorted(expected.clone()));
    let unordered: Vec<_> = imap_unordered_path_len_with(&pool, files.iter(), options)
        .map(Result::unwrap)
        .collect();
    assert_eq!(sorted(lens(unordered)), sorted(expected.clone()));
    // &Path and &str items too.
    let as_paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    assert_eq!(lens(map_path_len(&pool, as_paths).unwrap()), expected);
    assert_eq!(lens(map_path_len(&pool, ["/a", "/bc"]).unwrap()), [2, 3]);
}

#[test]
fn str_slice_and_struct_tasks_map_over_borrowed_items() {
    let pool = Pool::new(2).unwrap();
    let texts: Vec<String> = (0..30).map(|i| "w ".repeat(i)).collect();
    let counts: Vec<usize> = (0..30).collect();
    assert_eq!(map_word_count(&pool, texts.iter()).unwrap(), counts);
    assert_eq!(map_word_count(&pool, texts.clone()).unwrap(), counts);
    let strs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(map_async_word_count(&pool, strs).get().unwrap(), counts);
    let got: Vec<usize> = imap_word_count(&pool, texts.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, counts);

    let lists: Vec<Vec<u64>> = (0..20).map(|i| (0..i).collect()).collect();
    let sums: Vec<u64> = lists.iter().map(|l| l.iter().sum()).collect();
    assert_eq!(map_total(&pool, lists.iter()).unwrap(), sums);
    let got: Vec<u64> = imap_unordered_total(&pool, lists.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(sorted(got), sorted(sums.clone()));
    assert_eq!(map_total(&pool, [[1u64, 2], [3, 4]]).unwrap(), [3, 7]);

    let scale = Scale { factor: 3 };
    let items = (0..10u64).map(|x| (&scale, x));
    assert_eq!(
        map_scaled(&pool, items).unwrap(),
        (0..10).map(|x| x * 3).collect::<Vec<_>>()
    );
    let owned = vec![(Scale { factor: 2 }, 5u64)];
    assert_eq!(map_scaled(&pool, owned).unwrap(), [10]);
}

#[pool_task]
fn factor_of(scale: &Scale) -> u64 {
    scale.factor
}

#[test]
fn a_struct_task_maps_over_references_to_references_and_smart_pointers() {
    use std::borrow::Cow;
    use std::rc::Rc;
    use std::sync::Arc;

    let pool = Pool::new(2).unwrap();
    let scales: Vec<Scale> = (1..=12).map(|factor| Scale { factor }).collect();
    let factors: Vec<u64> = (1..=12).collect();
    // `Vec<&T>::iter()` gives `&&T`.
    let refs: Vec<&Scale> = scales.iter().collect();
    assert_eq!(map_factor_of(&pool, refs.iter()).unwrap(), factors);
    assert_eq!(
        map_async_factor_of(&pool, refs.iter()).get().unwrap(),
        factors
    );
    let options = MapOptions::new().chunksize(5);
    assert_eq!(
        map_factor_of_with(&pool, refs.iter(), options).unwrap(),
        factors
    );
    let got: Vec<u64> = imap_factor_of(&pool, refs.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, factors);
    let got: Vec<u64> = imap_unordered_factor_of(&pool, refs.iter())
        .map(Result::unwrap)
        .collect();
    assert_eq!(sorted(got), factors);
    // `&T`, `T`, and owning pointers.
    assert_eq!(map_factor_of(&pool, refs.clone()).unwrap(), factors);
    let boxed: Vec<Box<Scale>> = scales.iter().cloned().map(Box::new).collect();
    assert_eq!(map_factor_of(&pool, boxed).unwrap(), factors);
    let shared: Vec<Arc<Scale>> = scales.iter().cloned().map(Arc::new).collect();
    assert_eq!(
        map_factor_of(&pool, shared.iter().cloned()).unwrap(),
        factors
    );
    let counted: Vec<Rc<Scale>> = scales.iter().cloned().map(Rc::new).collect();
    assert_eq!(map_factor_of(&pool, counted).unwrap(), factors);
    let cows = scales.iter().map(Cow::Borrowed);
    assert_eq!(map_factor_of(&pool, cows).unwrap(), factors);
    let mut owned = scales.clone();
    assert_eq!(map_factor_of(&pool, owned.iter_mut()).unwrap(), factors);
    assert_eq!(map_factor_of(&pool, scales).unwrap(), factors);
    // Two arguments: a tuple whose reference item is a `&&T`.
    let scale = Scale { factor: 4 };
    let by_ref = &scale;
    let items = (0..6u64).map(|x| (&by_ref, x));
    assert_eq!(
        map_scaled(&pool, items).unwrap(),
        (0..6).map(|x| x * 4).collect::<Vec<_>>()
    );
}

#[test]
fn imap_iterators_move_to_another_thread() {
    let pool = Pool::new(2).unwrap();
    let files = paths();
    let expected: Vec<usize> = files.iter().map(|p| p.as_os_str().len()).collect();
    let ordered = imap_path_len(&pool, files.iter());
    let unordered = imap_unordered_word_count(&pool, vec!["a b".to_string(); 50]);
    let (got, words) = std::thread::scope(|s| {
        let a = s.spawn(move || ordered.map(|r| r.unwrap().0).collect::<Vec<usize>>());
        let b = s.spawn(move || unordered.map(Result::unwrap).sum::<usize>());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(got, expected);
    assert_eq!(words, 100);
}
