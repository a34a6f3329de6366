//! The protocol over a connection's buffers (`DC_PLUG`): whole messages
//! are read out of a read buffer and written into a send buffer, split into
//! frames and reassembled as the wire format requires.
//!
//! Each direction is a small state machine. Reading: idle until a whole
//! message has arrived, then *waiting* until the caller starts reading it,
//! then *reading* until the caller consumes it (no later message is decoded
//! before that). Writing: idle, then *building* while the caller writes the
//! payload (which it may still roll back), then *sending* once committed,
//! until every frame is in the send buffer.

use crate::nal::Buffer;
use crate::proto::{
    Command, Decoder, FrameHeader, Message, Role, HEADER_LEN, MAX_FRAME_DATA, MAX_TOTAL_DATA,
};

#[derive(Debug)]
enum ReadState {
    /// No whole message yet (some frames may be in the decoder).
    Idle,
    /// A whole message the caller has not started reading.
    Waiting(Message),
    /// A message the caller is reading.
    Reading(Message),
}

#[derive(Debug)]
struct Outgoing {
    uid: u32,
    command: Command,
    payload: Vec<u8>,
    /// Payload bytes already framed into the send buffer.
    sent: usize,
}

#[derive(Debug)]
enum WriteState {
    Idle,
    Building(Outgoing),
    Sending(Outgoing),
}

/// One end of a protocol conversation over a connection's buffers.
#[derive(Debug)]
pub struct Plug {
    to_server: bool,
    decoder: Decoder,
    read: ReadState,
    write: WriteState,
}

impl Plug {
    /// A plug for a client talking to a server (`to_server`: it writes
    /// requests and reads replies) or for a server talking to a client.
    pub fn new(to_server: bool) -> Plug {
        let role = if to_server {
            Role::Client
        } else {
            Role::Server
        };
        Plug {
            to_server,
            decoder: Decoder::new(role),
            read: ReadState::Idle,
            write: WriteState::Idle,
        }
    }

    /// Whether this plug writes requests (and reads replies).
    pub fn to_server(&self) -> bool {
        self.to_server
    }

    /// Decodes what `input` holds until a whole message is waiting, taking
    /// the bytes used out of it. False when the stream is corrupt (the
    /// connection can no longer be used).
    pub fn pull(&mut self, input: &mut Buffer) -> bool {
        if !matches!(self.read, ReadState::Idle) {
            return true;
        }
        while !input.is_empty() {
            match self.decoder.decode(input.data()) {
                Err(_) => return false,
                Ok((used, msg)) => {
                    input.read(None, used);
                    if let Some(msg) = msg {
                        self.read = ReadState::Waiting(msg);
                        return true;
                    }
                }
            }
        }
        true
    }

    /// The message waiting to be read: starts reading it, or with `resume`
    /// returns the one being read again. `None` when there is none.
    pub fn read(&mut self, resume: bool) -> Option<&Message> {
        self.read = match std::mem::replace(&mut self.read, ReadState::Idle) {
            ReadState::Waiting(m) => ReadState::Reading(m),
            ReadState::Reading(m) if resume => ReadState::Reading(m),
            other => {
                self.read = other;
                return None;
            }
        };
        match &self.read {
            ReadState::Reading(m) => Some(m),
            _ => None,
        }
    }

    /// Whether a message is waiting or being read.
    pub fn has_message(&self) -> bool {
        !matches!(self.read, ReadState::Idle)
    }

    /// Finishes with the message being read and decodes the next one from
    /// `input` if it is there. False when no message was being read or the
    /// stream is corrupt.
    pub fn consume(&mut self, input: &mut Buffer) -> bool {
        if !matches!(self.read, ReadState::Reading(_)) {
            return false;
        }
        self.read = ReadState::Idle;
        self.pull(input)
    }

    /// Starts a message (or, with `resume`, replaces one being built).
    /// False while a committed message is still being framed, while one is
    /// being built and `resume` is not set, or for a payload over 32768
    /// bytes.
    pub fn write(&mut self, resume: bool, uid: u32, command: Command, payload: &[u8]) -> bool {
        let free = match self.write {
            WriteState::Idle => true,
            WriteState::Building(_) => resume,
            WriteState::Sending(_) => false,
        };
        if !free || payload.len() > MAX_TOTAL_DATA {
            return false;
        }
        self.write = WriteState::Building(Outgoing {
            uid,
            command,
            payload: payload.to_vec(),
            sent: 0,
        });
        true
    }

    /// Appends to the message being built. False when none is, for no
    /// bytes, or when the payload would exceed 32768 bytes.
    pub fn write_more(&mut self, bytes: &[u8]) -> bool {
        match &mut self.write {
            WriteState::Building(out)
                if !bytes.is_empty() && out.payload.len() + bytes.len() <= MAX_TOTAL_DATA =>
            {
                out.payload.extend_from_slice(bytes);
                true
            }
            _ => false,
        }
    }

    /// Sends the message being built: frames as much of it as `output` has
    /// room for (the rest follows on later [`Plug::push`]es). False when no
    /// message is being built.
    pub fn commit(&mut self, output: &mut Buffer) -> bool {
        self.write = match std::mem::replace(&mut self.write, WriteState::Idle) {
            WriteState::Building(out) => WriteState::Sending(out),
            other => {
                self.write = other;
                return false;
            }
        };
        self.push(output);
        true
    }

    /// Drops the message being built. False when none is.
    pub fn rollback(&mut self) -> bool {
        if matches!(self.write, WriteState::Building(_)) {
            self.write = WriteState::Idle;
            true
        } else {
            false
        }
    }

    /// Whether a message may be started without `resume` (nothing is being
    /// built or still being framed).
    pub fn can_write(&self) -> bool {
        matches!(self.write, WriteState::Idle)
    }

    /// Frames as much of a committed message into `output` as whole frames
    /// fit.
    pub fn push(&mut self, output: &mut Buffer) {
        let WriteState::Sending(out) = &mut self.write else {
            return;
        };
        loop {
            let rest = &out.payload[out.sent..];
            let len = rest.len().min(MAX_FRAME_DATA);
            if HEADER_LEN + len > output.unused() {
                return;
            }
            let complete = len == rest.len();
            // len is at most MAX_FRAME_DATA (2048), so it fits in u16.
            let header =
                FrameHeader::new(!self.to_server, out.uid, out.command, complete, len as u16);
            output.write(&header.encode());
            output.write(&rest[..len]);
            out.sent += len;
            if complete {
                self.write = WriteState::Idle;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{decode_all, encode_message};

    fn buffer(size: usize) -> Buffer {
        Buffer::with_size(size).expect("size")
    }

    #[test]
    fn request_and_reply_round_trip() {
        let mut client = Plug::new(true);
        let mut server = Plug::new(false);
        let mut wire = buffer(32768);
        let payload: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        assert!(client.write(false, 7, Command::Add, &payload[..100]));
        assert!(client.write_more(&payload[100..]));
        assert!(!client.write(false, 8, Command::Get, b"x"), "busy building");
        assert!(client.commit(&mut wire));
        assert!(client.can_write());
        assert!(server.pull(&mut wire));
        let msg = server.read(false).expect("request");
        assert_eq!(
            (msg.uid, msg.command, msg.payload.len()),
            (7, Command::Add, 20_000)
        );
        assert_eq!(msg.payload, payload);
        assert!(server.read(false).is_none(), "already being read");
        assert!(server.read(true).is_some(), "resume");
        assert!(server.consume(&mut wire));
        assert!(!server.consume(&mut wire));
    }

    #[test]
    fn frames_wait_for_room() {
        let mut plug = Plug::new(false);
        let mut out = buffer(4200);
        assert!(plug.write(false, 1, Command::Get, &[9u8; 6000]));
        assert!(plug.commit(&mut out));
        assert_eq!(out.used(), 2 * (HEADER_LEN + 2048), "two whole frames fit");
        assert!(!plug.can_write());
        let mut wire = out.data().to_vec();
        out.reset();
        plug.push(&mut out);
        assert!(plug.can_write());
        wire.extend_from_slice(out.data());
        let mut expect = Vec::new();
        encode_message(&mut expect, true, 1, Command::Get, &[9u8; 6000]).expect("encode");
        assert_eq!(wire, expect);
        let (msgs, _) = decode_all(Role::Client, &wire).expect("decode");
        assert_eq!(msgs.len(), 1);
    }

    #[test]
    fn pipelined_messages_wait_their_turn() {
        let mut wire = buffer(1024);
        for uid in 1..=3u32 {
            let mut bytes = Vec::new();
            encode_message(&mut bytes, false, uid, Command::Have, b"id").expect("encode");
            wire.write(&bytes);
        }
        let mut plug = Plug::new(false);
        for uid in 1..=3u32 {
            assert!(plug.pull(&mut wire));
            assert_eq!(plug.read(false).map(|m| m.uid), Some(uid));
            assert!(plug.consume(&mut wire));
        }
        assert!(!plug.has_message());
    }

    #[test]
    fn corruption_and_wrong_direction_fail() {
        let mut wire = buffer(1024);
        wire.write(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!Plug::new(false).pull(&mut wire));
        let mut reply = Vec::new();
        encode_message(&mut reply, true, 1, Command::Get, b"x").expect("encode");
        let mut wire = buffer(1024);
        wire.write(&reply);
        assert!(
            !Plug::new(false).pull(&mut wire),
            "a server reads no replies"
        );
    }

    #[test]
    fn rollback_and_limits() {
        let mut plug = Plug::new(true);
        let mut out = buffer(64);
        assert!(!plug.rollback());
        assert!(!plug.commit(&mut out));
        assert!(!plug.write(false, 1, Command::Add, &[0; MAX_TOTAL_DATA + 1]));
        assert!(plug.write(false, 1, Command::Add, &[0; MAX_TOTAL_DATA]));
        assert!(!plug.write_more(b"x"));
        assert!(plug.rollback());
        assert!(plug.write(false, 2, Command::Remove, b""));
        assert!(!plug.write_more(b""));
        assert!(plug.commit(&mut out));
        assert_eq!(
            out.used(),
            HEADER_LEN,
            "an empty payload is one empty frame"
        );
    }
}
