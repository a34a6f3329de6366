use super::{Command, ProtoError, HEADER_LEN, MAX_FRAME_DATA, PROTO_LEVEL, PROTO_VERSION};

/// One frame header, as it travels: 14 bytes, all integers big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Protocol level (version in the high 16 bits, patch level in the low).
    pub proto_level: u32,
    /// Whether this frame belongs to a reply.
    pub is_response: bool,
    /// The request uid, echoed by the reply.
    pub uid: u32,
    /// The operation.
    pub command: Command,
    /// Whether this is the last frame of its message.
    pub complete: bool,
    /// Payload bytes following this header.
    pub data_len: u16,
}

impl FrameHeader {
    /// Writes the header's 14 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.proto_level.to_be_bytes());
        b[4] = u8::from(self.is_response);
        b[5..9].copy_from_slice(&self.uid.to_be_bytes());
        b[9] = 0; // operation class: "user", the only one defined
        b[10] = self.command.wire();
        b[11] = u8::from(self.complete);
        b[12..14].copy_from_slice(&self.data_len.to_be_bytes());
        b
    }

    /// Reads and validates a header. `want_response` is the direction the
    /// reader expects: servers read requests, clients read replies.
    ///
    /// The checks run in wire order, so the first bad field is the one named.
    pub fn decode(b: &[u8; HEADER_LEN], want_response: bool) -> Result<FrameHeader, ProtoError> {
        let proto_level = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if (proto_level >> 16) as u16 != PROTO_VERSION {
            return Err(ProtoError::Version(proto_level));
        }
        let is_response = match b[4] {
            0 => false,
            1 => true,
            other => return Err(ProtoError::Direction(other)),
        };
        if is_response != want_response {
            return Err(ProtoError::Direction(b[4]));
        }
        let uid = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        if b[9] != 0 {
            return Err(ProtoError::OpClass(b[9]));
        }
        let command = Command::from_wire(b[10]).ok_or(ProtoError::Operation(b[10]))?;
        let complete = match b[11] {
            0 => false,
            1 => true,
            other => return Err(ProtoError::CompleteFlag(other)),
        };
        let data_len = u16::from_be_bytes([b[12], b[13]]);
        if usize::from(data_len) > MAX_FRAME_DATA {
            return Err(ProtoError::FrameTooLong(data_len));
        }
        if !complete && usize::from(data_len) != MAX_FRAME_DATA {
            return Err(ProtoError::ShortFragment(data_len));
        }
        Ok(FrameHeader {
            proto_level,
            is_response,
            uid,
            command,
            complete,
            data_len,
        })
    }

    /// A header at our own protocol level.
    pub fn new(
        is_response: bool,
        uid: u32,
        command: Command,
        complete: bool,
        data_len: u16,
    ) -> Self {
        FrameHeader {
            proto_level: PROTO_LEVEL,
            is_response,
            uid,
            command,
            complete,
            data_len,
        }
    }
}
