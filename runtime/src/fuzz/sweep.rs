//! The fuzzer's mutations made everywhere instead of at random: each honest
//! input cut at every length, each of its bytes flipped bit by bit and set
//! to each byte that means something to a decoder, a huge length written
//! at every offset, pieces of it repeated where they stand, and values
//! nested far past the depth limit. What the random search reaches only by
//! chance at one offset of a long input, this reaches at all of them.

use super::{Input, INTERESTING, VALUE_DECODERS};

/// Lengths as they could be announced: a varint's u64 and u32 forms, a
/// raw u64 and u32, a LEB128 of u32::MAX, a length just past 2^60.
const HUGE: [&[u8]; 6] = [
    &[253, 255, 255, 255, 255, 255, 255, 255, 255],
    &[252, 255, 255, 255, 255],
    &[255; 8],
    &[255; 4],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[1, 0, 0, 0, 0, 0, 0, 0x10],
];

/// Every input one step from `seed`, in a fixed order.
fn neighbours(seed: &Input, mut each: impl FnMut(Input)) {
    let with = |bytes: Vec<u8>| {
        let mut input = seed.clone();
        *input.bytes() = bytes;
        input
    };
    let mut original = seed.clone();
    let original = original.bytes().clone();
    let len = original.len();
    for cut in 0..len {
        each(with(original[..cut].to_vec()));
    }
    for at in 0..len {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[at] ^= 1 << bit;
            each(with(bytes));
        }
        for &byte in &INTERESTING {
            if original[at] != byte {
                let mut bytes = original.clone();
                bytes[at] = byte;
                each(with(bytes));
            }
        }
        for huge in HUGE {
            let mut bytes = original.clone();
            let end = (at + huge.len()).min(len);
            bytes.splice(at..end, huge.iter().copied());
            each(with(bytes));
        }
        for n in [1, 2, 4, 9, 32] {
            // The piece at `at` twice over (a record, a length, a tag).
            let end = (at + n).min(len);
            let mut bytes = original.clone();
            bytes.splice(at..at, original[at..end].iter().copied());
            each(with(bytes));
        }
    }
}

/// Values nested far past the codec's depth limit, written by hand as
/// bincode would write them if it had no limit: each must be refused, not
/// overflow the 2 MiB stack it is decoded on.
fn deep_values() -> Vec<Input> {
    let decoder = |name: &str| VALUE_DECODERS.iter().position(|(n, _)| *n == name).unwrap();
    let levels = 100_000;
    let mut out = Vec::new();
    // Option<Box<Nest>>: `Some` all the way down, then `None`.
    let mut nest = vec![1u8; levels];
    nest.push(0);
    out.push(Input::Value(decoder("Option<Box<Nest>>"), nest));
    // Tree::Node's left child a Node again, for ever (the input ends first).
    out.push(Input::Value(decoder("Tree"), vec![1u8; levels]));
    // Tree::Named { label: "", kids: [Named { label: "", kids: [ ...
    out.push(Input::Value(decoder("Tree"), [2u8, 0, 1].repeat(levels)));
    out
}

#[test]
fn every_input_one_step_from_an_honest_one_decodes_to_a_value_or_an_error() {
    super::watched(|check| {
        let mut other = 0;
        for seed in super::seeds() {
            neighbours(&seed, |input| {
                other += 1;
                check(input, other);
            });
        }
        for input in deep_values() {
            let shown = input.describe();
            assert!(input.clone().decode(0).is_err(), "decoded: {shown}");
            other += 1;
            check(input, other);
        }
    });
}
