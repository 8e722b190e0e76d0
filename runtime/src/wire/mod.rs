//! The task channel's protocol: [`frame`]s (length-prefixed, bounded) and
//! the [`message`]s they carry.

pub(crate) mod frame;
pub(crate) mod message;

/// The version of what travels between a caller and the processes that run
/// its calls (these messages, a chunk's forms, the encodings of arguments
/// and results). Local workers are the caller's own program; through Redis,
/// a caller and a node meet only if theirs is the same (it is part of the
/// build id). Raised at each change of any of them (a node's failures
/// included, `redis::failure`): 2 when map chunks began to carry numbers in
/// the dense form, 3 when a node's `InitializerFailed` began to name its
/// initializer.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const VERSION: u64 = 3;

#[cfg(test)]
pub(crate) use frame::append_frame;
pub(crate) use frame::{Frame, FrameError, DEFAULT_MAX_FRAME, READ_CHUNK, SPLIT_MARK};
#[cfg(feature = "redis")]
pub(crate) use message::RESULTS_HEADER_LEN;
pub(crate) use message::{
    append_header, call_header, encode_reply, fit_texts, frame_allowance, parse_reply,
    parse_request, results_header, shorten, shutdown_message, value_header, Body, PanicReport,
    RemoteError, Reply, Request, CHUNK_FRAMING, MAX_NAME_LEN, MIN_MAX_FRAME,
};
