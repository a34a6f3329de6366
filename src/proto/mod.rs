//! The distcache wire format, with no I/O.
//!
//! A message travels as up to [`MAX_FRAMES`] frames. Each frame is a 14-byte
//! big-endian [`FrameHeader`] followed by at most [`MAX_FRAME_DATA`] bytes of
//! payload; every frame but the last carries exactly [`MAX_FRAME_DATA`] bytes.
//! [`encode_message`] fragments a payload, [`Decoder`] reassembles messages
//! from bytes that may arrive split at any point.

mod add;
mod command;
mod decoder;
mod error;
mod header;
mod message;

pub use add::AddRequest;
pub use command::{Command, Status};
pub use decoder::{decode_all, Decoder, Role, WholeFrame, MAX_DECODER_BUFFER};
pub use error::ProtoError;
pub use header::FrameHeader;
pub use message::{encode_message, encoded_len, Message};

use std::sync::atomic::{AtomicU32, Ordering};

/// Protocol version carried in the high 16 bits of every frame's level.
pub const PROTO_VERSION: u16 = 0x0011;
/// Patch level this implementation sends in the low 16 bits.
pub const PATCH_LEVEL: u16 = 0x0000;
/// The full protocol level sent in every frame (`0x00110000`).
pub const PROTO_LEVEL: u32 = ((PROTO_VERSION as u32) << 16) | PATCH_LEVEL as u32;
/// Size of a frame header on the wire.
pub const HEADER_LEN: usize = 14;
/// Most payload bytes one frame carries (`DC_MSG_MAX_DATA`).
pub const MAX_FRAME_DATA: usize = 2048;
/// Most frames in one message (`DC_MAX_MSG`).
pub const MAX_FRAMES: usize = 16;
/// Most payload bytes in one message (`DC_MAX_TOTAL_DATA`).
pub const MAX_TOTAL_DATA: usize = MAX_FRAME_DATA * MAX_FRAMES;
/// Longest session id the server accepts (`DC_MAX_ID_LEN`).
pub const MAX_ID_LEN: usize = 64;
/// Longest session lifetime the server accepts, in milliseconds (7 days).
pub const MAX_EXPIRY_MS: u32 = 604_800_000;
/// Bytes in front of the id in an ADD payload (timeout and id length).
pub const ADD_PREFIX_LEN: usize = 8;
/// Most bytes a single frame occupies on the wire.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_FRAME_DATA;

static NEXT_UID: AtomicU32 = AtomicU32::new(1);

/// Takes the next request uid from the one process-wide counter.
///
/// The counter starts at 1 and goes up by one for every transaction attempt,
/// whichever client makes it, as the original library numbered its requests.
pub fn next_request_uid() -> u32 {
    NEXT_UID.fetch_add(1, Ordering::Relaxed)
}
