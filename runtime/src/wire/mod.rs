//! The task channel's protocol: [`frame`]s (length-prefixed, bounded) and
//! the [`message`]s they carry.

pub(crate) mod frame;
pub(crate) mod message;

pub(crate) use frame::{append_frame, read_frame, write_frame, FrameError, DEFAULT_MAX_FRAME};
pub(crate) use message::{
    append_header, batch_header, call_header, encode_reply, parse_reply, parse_request, results_header,
    shutdown_message, value_header, Body, PanicReport, RemoteError, Reply, Request, MAX_NAME_LEN,
    MIN_MAX_FRAME,
};

/// Property tests of the decoder: whatever the bytes, it returns an error
/// rather than panicking, and it never reserves more than the frame limit,
/// nor more than one chunk beyond the bytes that actually arrived.
/// `PROPTEST_CASES` sets the number of cases (default 256).
#[cfg(test)]
mod fuzz {
    use super::frame::{read_frame_into, write_frame, FrameError, DEFAULT_MAX_FRAME, READ_CHUNK};
    use super::message::*;
    use proptest::prelude::*;

    /// Reads with [`read_frame_into`] and checks what it reserved.
    fn decode_checked(bytes: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
        let mut body = Vec::new();
        let result = read_frame_into(&mut &bytes[..], max, &mut body);
        let received = bytes.len().saturating_sub(4);
        assert!(
            body.capacity() <= max,
            "reserved {} bytes over the limit {max}",
            body.capacity()
        );
        assert!(
            body.capacity() <= received + READ_CHUNK,
            "reserved {} bytes with only {received} received",
            body.capacity()
        );
        if let Ok(()) = &result {
            let _ = parse_request(&body);
            let _ = parse_reply(body.clone());
        }
        result.map(|()| body)
    }

    /// Any text, up to 40 characters (regex strategies need a feature we do
    /// not enable).
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter)
    }

    /// A valid frame: a call, or one of the replies.
    fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
        let call = (
            any::<u64>(),
            any::<u64>(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(id, fp, name, args)| {
                let mut body = call_header(id, fp, &name);
                body.extend_from_slice(&args);
                body
            });
        let reply = (
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            text(),
        )
            .prop_flat_map(|(id, bytes, text)| {
                prop_oneof![
                    Just(encode_reply(&Reply::Hello { pid: id as u32 })),
                    Just(encode_reply(&Reply::Value {
                        id,
                        bytes: bytes.into()
                    })),
                    Just(encode_reply(&Reply::Panic {
                        id,
                        report: PanicReport {
                            message: text.clone(),
                            location: text.clone(),
                            backtrace: Some(text.clone()),
                        },
                    })),
                    Just(encode_reply(&Reply::Failed {
                        id,
                        error: RemoteError::UnknownTask {
                            suggestions: vec![text.clone()],
                        },
                    })),
                    Just(encode_reply(&Reply::Fatal { message: text })),
                ]
            });
        prop_oneof![call, reply, Just(shutdown_message().to_vec())].prop_map(|body: Vec<u8>| {
            let mut frame = Vec::new();
            write_frame(&mut frame, &[&body], usize::MAX).unwrap();
            frame
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_or_overallocate(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            max in prop_oneof![Just(0usize), 1usize..1024, Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
        ) {
            let _ = decode_checked(&bytes, max);
        }

        #[test]
        fn valid_frames_round_trip(frame in valid_frame()) {
            let body = decode_checked(&frame, DEFAULT_MAX_FRAME).unwrap();
            prop_assert_eq!(&body[..], &frame[4..]);
        }

        #[test]
        fn mutated_frames_never_panic_or_overallocate(
            frame in valid_frame(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            max in prop_oneof![1usize..1024, Just(DEFAULT_MAX_FRAME)],
        ) {
            let mut frame = frame;
            for (at, byte) in flips {
                let i = at.index(frame.len());
                frame[i] ^= byte;
            }
            if truncate {
                frame.truncate(cut.index(frame.len() + 1));
            }
            let _ = decode_checked(&frame, max);
        }

        #[test]
        fn bogus_lengths_fail_without_reserving_them(
            len in any::<u32>(),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            max in prop_oneof![Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
        ) {
            let mut frame = len.to_le_bytes().to_vec();
            frame.extend_from_slice(&tail);
            match decode_checked(&frame, max) {
                Ok(body) => prop_assert_eq!(body.len(), len as usize),
                Err(FrameError::TooLarge { .. }) => prop_assert!(len as usize > max),
                Err(FrameError::Truncated { expected, got }) => {
                    prop_assert_eq!(expected, len as usize);
                    prop_assert!(got < expected);
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }
}
