use super::{Command, FrameHeader, Message, ProtoError, HEADER_LEN, MAX_FRAMES, MAX_TOTAL_DATA};

/// Most bytes a [`Decoder`] holds at any time: the header being read and
/// the payload of one message ([`Decoder::buffered`] never exceeds it).
pub const MAX_DECODER_BUFFER: usize = HEADER_LEN + MAX_TOTAL_DATA;

/// Which side of the conversation a [`Decoder`] reads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads requests (a server, or the server leg of a proxy).
    Server,
    /// Reads replies (a client).
    Client,
}

/// An incremental message decoder.
///
/// Feed it bytes as they arrive with [`Decoder::decode`]; the same bytes split
/// at any points give the same messages. A decode error is final: the decoder
/// refuses further input, as the stream can no longer be trusted. It never
/// holds more than one message in memory: [`MAX_DECODER_BUFFER`] bytes.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The current frame's header once all 14 bytes are in, and the payload
    /// bytes of that frame still to come.
    frame: Option<(FrameHeader, usize)>,
    /// uid and command of the message being reassembled, once it started.
    started: Option<(u32, Command)>,
    frames: usize,
    payload: Vec<u8>,
    failed: Option<ProtoError>,
}

/// A message that stood whole in one frame of the input, read where it
/// lies (see [`Decoder::decode_whole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeFrame<'a> {
    /// Bytes of input it takes.
    pub used: usize,
    /// Its frame header.
    pub header: FrameHeader,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Decoder {
    /// A decoder for the given side.
    pub fn new(role: Role) -> Self {
        Decoder {
            role,
            header: [0; HEADER_LEN],
            header_len: 0,
            frame: None,
            started: None,
            frames: 0,
            payload: Vec::new(),
            failed: None,
        }
    }

    /// Whether some bytes of an unfinished message are held.
    pub fn is_mid_message(&self) -> bool {
        self.header_len > 0 || self.frame.is_some() || self.started.is_some()
    }

    /// Bytes of memory the decoder holds for the message being read: its
    /// header buffer and the space reserved for the payload. At most
    /// [`MAX_DECODER_BUFFER`], whatever the input.
    pub fn buffered(&self) -> usize {
        HEADER_LEN + self.payload.capacity()
    }

    /// The next message without copying it, when nothing is half-decoded and
    /// it stands whole in `input` as one frame (as almost every request
    /// does): the bytes it takes and its header and payload. `Ok(None)`:
    /// use [`Decoder::decode`], which handles every case. A header that
    /// fails its checks fails the decoder, as [`Decoder::decode`] would.
    pub fn decode_whole<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<Option<WholeFrame<'a>>, ProtoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let Some(head) = input.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        if self.is_mid_message() {
            return Ok(None);
        }
        let header = FrameHeader::decode(head, self.role == Role::Client)
            .inspect_err(|e| self.failed = Some(e.clone()))?;
        let end = HEADER_LEN + usize::from(header.data_len);
        match input.get(HEADER_LEN..end) {
            Some(payload) if header.complete => Ok(Some(WholeFrame {
                used: end,
                header,
                payload,
            })),
            _ => Ok(None),
        }
    }

    /// Consumes bytes from `input` until one message is complete or the input
    /// runs out. Returns how many bytes were consumed and the message, if one
    /// was completed; call again with the rest of the input for more.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), ProtoError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.frame {
                None => {
                    let take = (HEADER_LEN - self.header_len).min(rest.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&rest[..take]);
                    self.header_len += take;
                    used += take;
                    if self.header_len == HEADER_LEN {
                        self.header_len = 0;
                        let header = self.start_frame()?;
                        self.frame = Some((header, usize::from(header.data_len)));
                        if let Some(msg) = self.finish_frame_if_done() {
                            return Ok((used, Some(msg)));
                        }
                    }
                }
                Some((header, remaining)) => {
                    let take = remaining.min(rest.len());
                    self.payload.extend_from_slice(&rest[..take]);
                    used += take;
                    self.frame = Some((header, remaining - take));
                    if let Some(msg) = self.finish_frame_if_done() {
                        return Ok((used, Some(msg)));
                    }
                }
            }
        }
        Ok((used, None))
    }

    /// Validates a freshly completed header against the message so far.
    fn start_frame(&mut self) -> Result<FrameHeader, ProtoError> {
        let checked = FrameHeader::decode(&self.header, self.role == Role::Client)
            .and_then(|h| self.check_continuation(h));
        checked.inspect_err(|e| self.failed = Some(e.clone()))
    }

    fn check_continuation(&mut self, h: FrameHeader) -> Result<FrameHeader, ProtoError> {
        match self.started {
            Some((uid, cmd)) if uid != h.uid || cmd != h.command => {
                return Err(ProtoError::FragmentMismatch)
            }
            Some(_) => {}
            None => self.started = Some((h.uid, h.command)),
        }
        self.frames += 1;
        let needed = self.payload.len() + usize::from(h.data_len);
        if self.frames > MAX_FRAMES || needed > MAX_TOTAL_DATA {
            return Err(ProtoError::MessageTooLong);
        }
        // Room for this frame's payload, growing geometrically but never
        // past one message's limit.
        if needed > self.payload.capacity() {
            let target = needed.max((2 * self.payload.capacity()).min(MAX_TOTAL_DATA));
            self.payload.reserve_exact(target - self.payload.len());
        }
        Ok(h)
    }

    /// Ends the current frame when its payload is all in, and hands out the
    /// message when that frame was the last one.
    fn finish_frame_if_done(&mut self) -> Option<Message> {
        let (header, 0) = self.frame? else {
            return None;
        };
        self.frame = None;
        if !header.complete {
            return None;
        }
        self.started = None;
        self.frames = 0;
        Some(Message {
            is_response: header.is_response,
            uid: header.uid,
            command: header.command,
            payload: std::mem::take(&mut self.payload),
        })
    }
}

/// Decodes every whole message in `bytes` (a convenience for tests and tools).
pub fn decode_all(role: Role, mut bytes: &[u8]) -> Result<(Vec<Message>, bool), ProtoError> {
    let mut decoder = Decoder::new(role);
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (used, msg) = decoder.decode(bytes)?;
        bytes = &bytes[used..];
        out.extend(msg);
    }
    Ok((out, decoder.is_mid_message()))
}
