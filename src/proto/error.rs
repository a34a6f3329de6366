use thiserror::Error;

/// Why bytes could not be decoded as, or encoded to, protocol frames.
///
/// Every decode error means the byte stream can no longer be trusted: the
/// connection that carried it is closed. Nothing here aborts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The peer speaks another protocol version (or is not distcache at all).
    #[error("protocol version mismatch: peer level {0:#010x}, ours is 0x00110000")]
    Version(u32),
    /// The is_response byte was not the one expected in this direction.
    #[error("frame direction byte {0} is not the one expected here")]
    Direction(u8),
    /// The operation class byte is not 0 (the only class defined).
    #[error("unknown operation class {0}")]
    OpClass(u8),
    /// The operation byte is not ADD, GET, REMOVE, HAVE or TAKE.
    #[error("unknown operation {0}")]
    Operation(u8),
    /// The complete byte is neither 0 nor 1.
    #[error("invalid complete flag {0}")]
    CompleteFlag(u8),
    /// A frame claims more payload than a frame may carry.
    #[error("frame data length {0} exceeds 2048")]
    FrameTooLong(u16),
    /// A frame that is not the last one carries fewer than 2048 bytes.
    #[error("non-final frame carries {0} bytes instead of 2048")]
    ShortFragment(u16),
    /// A continuation frame names another request uid or operation.
    #[error("continuation frame does not match the message it continues")]
    FragmentMismatch,
    /// More than 16 frames, or more than 32768 payload bytes.
    #[error("message exceeds 16 frames / 32768 bytes")]
    MessageTooLong,
    /// An ADD payload too short to hold its timeout and id length.
    #[error("ADD payload of {0} bytes is shorter than its 8-byte prefix")]
    ShortAdd(usize),
    /// A payload to encode is larger than one message may carry.
    #[error("payload of {0} bytes exceeds 32768")]
    PayloadTooLong(usize),
}
