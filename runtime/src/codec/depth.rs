//! A limit on how deeply a value may nest, enforced while it is encoded and
//! while it is decoded, so that neither side can overflow its stack on a
//! value (a 100,000-deep list, a damaged frame) and a partly decoded value
//! is shallow enough to drop.
//!
//! serde serializers and deserializers recurse once per level of nesting,
//! and so does dropping the value. These wrappers go between serde and the
//! format and count the levels on the way down: every `Some`, newtype,
//! sequence, tuple, map, struct and enum variant with data is one level,
//! counted the same way on both sides, so whatever encodes also decodes.
//! A value nested deeper than [`MAX_DEPTH`] is an error, not a crash.

mod de;
mod ser;

use std::cell::Cell;

pub(crate) use de::{with_element_budget, Bounded};
pub(crate) use ser::Limited;

/// The deepest nesting a value may have. Decoding through these wrappers
/// took about 150 bytes of stack per level in a release build and 1.1 KiB
/// in an unoptimized one on a linked list (400 B and 1.4 KiB per node on an
/// enum tree), so such a value at the limit decodes (and drops) on a 2 MiB
/// thread, tokio's default and the callback thread's, with room to spare
/// for the caller's own frames. A value whose levels hold much inline (an
/// array in each node) takes more per level: for it the stack left is the
/// limit (see [`deeper`]).
pub(crate) const MAX_DEPTH: usize = 512;

/// How every error of this module begins (see [`is_nesting_error`]).
const NESTS: &str = "the value nests ";

fn too_deep() -> String {
    format!(
        "{NESTS}deeper than {MAX_DEPTH} levels (each Option, newtype, \
         sequence, tuple, map, struct and enum variant counts one), procpool's \
         limit against stack overflows"
    )
}

/// From this depth on, each level also keeps [`STACK_RESERVE`] free.
const STACK_CHECKED_FROM: usize = 16;

/// The stack a level may not eat into from [`STACK_CHECKED_FROM`] on: room
/// for the unwinding and the caller's own frames, besides the next level.
const STACK_RESERVE: usize = 128 << 10;

thread_local! {
    /// The stack left where the value being encoded or decoded on this
    /// thread began (0: unknown; see [`measured`]).
    static TOP: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f`, the encoding or decoding of a whole value, with the stack its
/// levels take measured from here (see [`deeper`]).
#[inline(always)]
fn measured<R>(f: impl FnOnce() -> R) -> R {
    /// Puts back the enclosing value's start (a `Json` value inside a
    /// bincode one), even after a panic.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            TOP.set(self.0);
        }
    }
    let _restore = Restore(TOP.replace(crate::sys::stack_left().unwrap_or(0)));
    f()
}

/// The level below `depth`, or the error if that is too deep: past
/// [`MAX_DEPTH`], or with too little of the thread's stack left for
/// another level. A level can take hundreds of kilobytes (serde builds
/// each level's value, with whatever it holds inline, on the stack, several
/// times over in a debug build: a level holding 32 KiB took some 230 KiB),
/// so every level keeps free twice the stack the levels so far took each,
/// on average (and [`STACK_RESERVE`] more from [`STACK_CHECKED_FROM`] on).
/// Under the fixed reserve alone, looked at from level 16 on, eight such
/// levels overflowed a 2 MiB thread before the first look.
#[inline(always)]
fn deeper<E>(depth: usize, error: impl FnOnce(String) -> E) -> Result<usize, E> {
    if depth >= MAX_DEPTH {
        return Err(too_deep_error(error));
    }
    if let Some(left) = crate::sys::stack_left() {
        let reserve = if depth >= STACK_CHECKED_FROM {
            STACK_RESERVE
        } else {
            0
        };
        // left < reserve + 2 * used / depth, without a division.
        let used = TOP.get().saturating_sub(left);
        let spare = left.saturating_sub(reserve);
        if left < reserve || spare.saturating_mul(depth.max(1)) < used.saturating_mul(2) {
            return Err(no_stack_error(depth, left, error));
        }
    }
    Ok(depth + 1)
}

#[cold]
#[inline(never)]
fn too_deep_error<E>(error: impl FnOnce(String) -> E) -> E {
    error(too_deep())
}

#[cold]
#[inline(never)]
fn no_stack_error<E>(depth: usize, left: usize, error: impl FnOnce(String) -> E) -> E {
    error(format!(
        "{NESTS}too deeply for this thread's stack: {left} bytes of it were left \
         at level {depth} (its levels are large); handle it on a thread with a larger stack \
         (procpool stops short of a stack overflow)"
    ))
}

/// Whether `message` is an error of this module: the value it is about
/// was refused because it nests too deeply, so dropping it may recurse
/// deeper than its thread's stack allows (see [`drop_deep`]).
fn is_nesting_error(message: &str) -> bool {
    message.starts_with(NESTS)
}

/// Drops `value`, which an encoder refused with `why`: by [`drop_deep`]
/// if it was refused for its depth (see [`is_nesting_error`]), its own
/// `Drop` then recursing as deep as it nests; where it is otherwise.
pub(crate) fn drop_refused<T>(value: T, why: &str) {
    if is_nesting_error(why) {
        drop_deep(value);
    }
}

/// The stack [`drop_deep`] drops on: as large as the worker's task stack
/// (`worker::TASK_STACK`), on which a list a million levels deep drops by
/// its own recursive `Drop`, even in a debug build. Only what the drop
/// uses is ever touched.
const DROP_STACK: usize = 256 << 20;

/// Drops `value`, which an encoder refused for its depth (see
/// [`is_nesting_error`]), on a fresh stack of [`DROP_STACK`] bytes on this
/// thread: the value's own recursive `Drop` (a linked list of `Box`es has
/// one) could overflow the caller's stack, and it is the caller's value
/// (moved into `apply_<fn>` or a map's item), so the caller would die of it
/// in procpool's code. A `Drop` that panics resumes its panic here. If no
/// such stack can be mapped (`stacker` panics then), the value is leaked
/// rather than dropped on this stack.
#[cold]
#[inline(never)]
fn drop_deep<T>(value: T) {
    let mut slot = Some(value);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stacker::grow(DROP_STACK, || drop(slot.take()));
    }));
    if let Err(panic) = dropped {
        match slot.take() {
            // The stack was never mapped: the value is still here.
            Some(value) => std::mem::forget(value),
            // Its own `Drop` panicked.
            None => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// A list whose drop recurses once per node (the field is only
    /// dropped).
    #[allow(dead_code)]
    struct List(Option<Box<List>>);

    #[test]
    fn drop_deep_drops_a_list_a_million_deep_on_a_2_mib_thread() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let mut list = List(None);
                for _ in 0..1_000_000 {
                    list = List(Some(Box::new(list)));
                }
                super::drop_deep(list);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Panics when dropped, after counting its drop.
    struct Loud<'a>(&'a std::sync::atomic::AtomicUsize);

    impl Drop for Loud<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("loud drop");
        }
    }

    #[test]
    fn drop_deep_resumes_the_panic_of_the_values_drop_once() {
        let drops = std::sync::atomic::AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::drop_deep(Loud(&drops));
        }));
        let panic = caught.expect_err("the drop's panic is resumed");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"loud drop"));
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    use serde::{Deserialize, Serialize};

    use super::MAX_DEPTH;
    use crate::codec::{decode, encode};

    /// Every kind of level (what each costs is in `shape`).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        End,
        Newtype(Box<Shape>),
        Tuple(Box<Shape>, u8),
        Struct { inner: Box<Shape> },
        Seq(Vec<Shape>),
        Map(BTreeMap<u8, Shape>),
        Opt(Option<Box<Shape>>),
        Wrapped(Wrapper),
        Pair((Box<Shape>, u8)),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper(Box<Shape>);

    /// A value exactly `depth` levels deep, using every kind in turn.
    fn shape(depth: usize) -> Shape {
        let mut value = Shape::End;
        let mut left = depth;
        let mut kind = 0;
        while left > 0 {
            // One-level kinds when only one level is left.
            let k = if left == 1 { kind % 3 } else { kind % 9 };
            kind += 1;
            let (next, cost) = match k {
                0 => (Shape::Newtype(Box::new(value)), 1),
                1 => (Shape::Tuple(Box::new(value), 7), 1),
                2 => (
                    Shape::Struct {
                        inner: Box::new(value),
                    },
                    1,
                ),
                3 => (Shape::Seq(vec![value]), 2),
                4 => (Shape::Map(BTreeMap::from([(1, value)])), 2),
                5 => (Shape::Opt(Some(Box::new(value))), 2),
                6 => (Shape::Wrapped(Wrapper(Box::new(value))), 2),
                7 => (Shape::Pair((Box::new(value), 3)), 2),
                _ => (Shape::Newtype(Box::new(value)), 1),
            };
            value = next;
            left -= cost;
        }
        value
    }

    #[test]
    fn a_value_at_the_limit_round_trips_and_one_level_more_fails_both_ways() {
        let at_limit = shape(MAX_DEPTH);
        let bytes = encode(&at_limit).unwrap();
        assert_eq!(decode::<Shape>(&bytes).unwrap(), at_limit);

        let over = shape(MAX_DEPTH + 1);
        let error = encode(&over).unwrap_err();
        assert!(error.contains("deeper than 512 levels"), "{error}");
        // What a peer without the limit would send: refused on decoding.
        let bytes = bincode::serde::encode_to_vec(&over, bincode::config::standard()).unwrap();
        let error = decode::<Shape>(&bytes).unwrap_err();
        assert!(error.contains("deeper than 512 levels"), "{error}");
    }

    /// A level that holds 32 KiB inline (serde's arrays nest): in a debug
    /// build each such level took some 230 KiB of stack to decode.
    #[derive(Debug, Serialize, Deserialize)]
    struct Wide([[[u8; 32]; 32]; 32]);

    #[allow(clippy::large_enum_variant)]
    #[derive(Debug, Serialize, Deserialize)]
    enum Chain {
        End,
        Link(Box<Chain>, Wide),
    }

    /// The bytes of a chain of `links` links.
    fn chain_bytes(links: usize) -> Vec<u8> {
        // Each link's variant, then (its inner chain), then its 32 KiB.
        let mut bytes = vec![1u8; links];
        bytes.push(0);
        bytes.extend(std::iter::repeat_n(7u8, links * 32768));
        bytes
    }

    fn decode_chain_on(stack: usize, links: usize) -> Result<(), String> {
        let bytes = chain_bytes(links);
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || decode::<Chain>(&bytes).map(drop))
            .unwrap()
            .join()
            .unwrap()
    }

    /// Levels of hundreds of kilobytes of stack each are refused before the
    /// stack runs out, however few: the stack check began at level 16 and
    /// kept 128 KiB free, and eight such levels overflowed a 2 MiB thread in
    /// a debug build (the process aborted). Each chain decodes or is refused
    /// (at most 2 MiB / 32 KiB links fit, in any build); a short one
    /// decodes, and a long one on a larger stack.
    #[test]
    fn large_levels_are_refused_before_they_overflow_a_small_stack() {
        for links in [4, 6, 8, 12, 16, 40, 64] {
            match decode_chain_on(2 << 20, links) {
                Ok(()) => assert!(links < 64, "{links} links of 32 KiB on a 2 MiB stack"),
                Err(error) => assert!(error.contains("this thread's stack"), "{links}: {error}"),
            }
        }
        decode_chain_on(2 << 20, 2).unwrap();
        decode_chain_on(64 << 20, 40).unwrap();
    }

    /// 100,000 levels of bytes (a list of `Some`s), decoded on a 2 MiB
    /// thread: an error, not a stack overflow.
    #[test]
    fn deep_bytes_fail_without_overflowing_a_small_stack() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Nest(Option<Box<Nest>>);
        let mut bytes = vec![1u8; 100_000];
        bytes.push(0);
        let decoded = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || decode::<Nest>(&bytes).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(decoded.unwrap_err().contains("deeper than"));
    }
}
