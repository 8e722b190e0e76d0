//! The task channel's protocol: [`frame`]s (length-prefixed, bounded) and
//! the [`message`]s they carry.

pub(crate) mod frame;
pub(crate) mod message;

#[cfg(test)]
pub(crate) use frame::append_frame;
pub(crate) use frame::{Frame, FrameError, DEFAULT_MAX_FRAME, READ_CHUNK, SPLIT_MARK};
pub(crate) use message::{
    append_header, call_header, encode_reply, parse_reply, parse_request, results_header,
    shorten, shutdown_message, value_header, Body, PanicReport, RemoteError, Reply, Request, MAX_NAME_LEN,
    MIN_MAX_FRAME,
};
