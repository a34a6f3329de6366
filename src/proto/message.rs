use super::{Command, FrameHeader, ProtoError, HEADER_LEN, MAX_FRAME_DATA, MAX_TOTAL_DATA};

/// One whole protocol message: a request or a reply, reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Whether this is a reply.
    pub is_response: bool,
    /// The request uid (a reply carries its request's uid).
    pub uid: u32,
    /// The operation.
    pub command: Command,
    /// The payload, at most 32768 bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// Appends this message's frames to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        encode_message(out, self.is_response, self.uid, self.command, &self.payload)
    }
}

/// Bytes on the wire for a payload of `payload_len` bytes.
pub fn encoded_len(payload_len: usize) -> usize {
    let frames = payload_len.div_ceil(MAX_FRAME_DATA).max(1);
    frames * HEADER_LEN + payload_len
}

/// Appends the frames of one message to `out`.
///
/// Every frame but the last carries exactly 2048 bytes; a payload that is an
/// exact multiple of 2048 ends with a full frame marked complete, and an empty
/// payload is one empty frame. Fails, leaving `out` untouched, when the
/// payload exceeds 32768 bytes.
pub fn encode_message(
    out: &mut Vec<u8>,
    is_response: bool,
    uid: u32,
    command: Command,
    payload: &[u8],
) -> Result<(), ProtoError> {
    if payload.len() > MAX_TOTAL_DATA {
        return Err(ProtoError::PayloadTooLong(payload.len()));
    }
    out.reserve(encoded_len(payload.len()));
    let mut chunks = payload.chunks(MAX_FRAME_DATA).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&FrameHeader::new(is_response, uid, command, true, 0).encode());
        return Ok(());
    }
    while let Some(chunk) = chunks.next() {
        let complete = chunks.peek().is_none();
        // A chunk is at most MAX_FRAME_DATA (2048) bytes, so it fits in u16.
        let len = chunk.len() as u16;
        out.extend_from_slice(&FrameHeader::new(is_response, uid, command, complete, len).encode());
        out.extend_from_slice(chunk);
    }
    Ok(())
}
