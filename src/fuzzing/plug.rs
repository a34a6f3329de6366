//! `DC_PLUG`: two plugs, a client's and a server's, talking through their
//! buffers, driven by a script of operations read from the input, with
//! arbitrary bytes injected into either direction now and then.

use super::Input;
use crate::nal::Buffer;
use crate::plug::Plug;
use crate::proto::{Command, Decoder, Message, Role, MAX_FRAME_LEN, MAX_TOTAL_DATA};
use std::collections::VecDeque;

/// Send buffer sizes: too small for a full frame, one frame, several.
const SEND_SIZES: [usize; 4] = [100, MAX_FRAME_LEN, 4096, 32768];
/// Read buffer sizes: down to one byte at a time.
const READ_SIZES: [usize; 4] = [1, 14, 2048, 32768];
/// Operations in a script, at most.
const MAX_OPS: usize = 2000;
/// Rounds of the final flush, at most (each moves at least a byte or ends).
const MAX_FLUSH_ROUNDS: usize = 200_000;

/// One end: its plug, its buffers and what the checks know of it.
struct End {
    plug: Plug,
    send: Buffer,
    read: Buffer,
    /// The message being built, as the plug should hold it.
    building: Option<Message>,
    /// Messages this end committed that the other end has not read yet.
    committed: VecDeque<Message>,
    /// The same bytes as `read` received, decoded eagerly by a decoder of
    /// its own: what the plug must hand out, in order.
    oracle: Decoder,
    decoded: VecDeque<Message>,
    oracle_failed: bool,
    /// The message the plug is handing out, once `read` started it.
    reading: Option<Message>,
    /// Bytes that no plug wrote were put in `read`.
    tainted: bool,
    /// The plug reported a corrupt stream.
    dead: bool,
    /// Payloads differ from message to message.
    serial: u8,
}

impl End {
    fn new(to_server: bool, send: usize, read: usize) -> End {
        let buffer = |size| Buffer::with_size(size).unwrap_or_default();
        End {
            plug: Plug::new(to_server),
            send: buffer(send),
            read: buffer(read),
            building: None,
            committed: VecDeque::new(),
            oracle: Decoder::new(if to_server {
                Role::Client
            } else {
                Role::Server
            }),
            decoded: VecDeque::new(),
            oracle_failed: false,
            reading: None,
            tainted: false,
            dead: false,
            serial: 0,
        }
    }

    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.serial = self.serial.wrapping_add(1);
        let serial = self.serial;
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ serial)
            .collect()
    }

    /// Puts bytes in `read` (as many as fit) and shows them to the oracle.
    fn receive(&mut self, bytes: &[u8]) -> usize {
        let n = self.read.write(bytes);
        let mut rest = &bytes[..n];
        while !rest.is_empty() && !self.oracle_failed {
            match self.oracle.decode(rest) {
                Ok((used, msg)) => {
                    rest = &rest[used..];
                    self.decoded.extend(msg);
                }
                Err(_) => self.oracle_failed = true,
            }
        }
        n
    }

    fn write(&mut self, resume: bool, uid: u32, command: Command, len: usize) {
        let can_write = self.plug.can_write();
        if self.building.is_some() {
            assert!(!can_write, "a message is being built");
        }
        let allowed = if self.building.is_some() {
            resume
        } else {
            can_write
        };
        let payload = self.payload(len);
        let done = self.plug.write(resume, uid, command, &payload);
        assert_eq!(
            done,
            allowed && len <= MAX_TOTAL_DATA,
            "write of {len} bytes"
        );
        if done {
            self.building = Some(Message {
                is_response: !self.plug.to_server(),
                uid,
                command,
                payload,
            });
        }
    }

    fn write_more(&mut self, len: usize) {
        let more = self.payload(len);
        let fits = match &self.building {
            Some(m) => len > 0 && m.payload.len() + len <= MAX_TOTAL_DATA,
            None => false,
        };
        assert_eq!(self.plug.write_more(&more), fits, "write_more of {len}");
        if let (true, Some(m)) = (fits, &mut self.building) {
            m.payload.extend_from_slice(&more);
        }
    }

    fn commit(&mut self) {
        assert_eq!(self.plug.commit(&mut self.send), self.building.is_some());
        self.committed.extend(self.building.take());
    }

    fn rollback(&mut self) {
        assert_eq!(self.plug.rollback(), self.building.is_some());
        self.building = None;
    }

    /// Decodes what `read` holds, with `pull` or (when `consume`) by
    /// finishing the message being read, and checks the plug against the
    /// oracle.
    fn pull(&mut self, consume: bool) {
        if self.dead {
            return;
        }
        let ok = if consume {
            let was_reading = self.reading.take().is_some();
            let ok = self.plug.consume(&mut self.read);
            if !was_reading {
                assert!(!ok, "consume with no message being read");
                return;
            }
            ok
        } else {
            self.plug.pull(&mut self.read)
        };
        if !ok {
            assert!(
                self.oracle_failed,
                "plug refused a stream its decoder takes"
            );
            assert!(self.tainted, "plug refused bytes a plug wrote");
            self.dead = true;
            return;
        }
        if self.reading.is_none() {
            let waiting = !self.decoded.is_empty();
            assert_eq!(self.plug.has_message(), waiting, "a whole message is in");
            assert!(waiting || !self.oracle_failed, "corrupt bytes not refused");
        }
    }

    /// Starts (or resumes) reading the waiting message and checks it.
    fn read(&mut self, resume: bool, peer: &mut VecDeque<Message>) {
        if self.dead {
            return;
        }
        let got = self.plug.read(resume).cloned();
        match (&self.reading, got) {
            (Some(current), Some(again)) => {
                assert!(resume, "read(false) gave the message being read");
                assert_eq!(&again, current);
            }
            (Some(_), None) => assert!(!resume, "resume lost the message"),
            (None, Some(msg)) => {
                let want = self.decoded.pop_front();
                assert_eq!(Some(&msg), want.as_ref(), "plug and decoder differ");
                if !self.tainted {
                    assert_eq!(Some(&msg), peer.pop_front().as_ref(), "not what was sent");
                }
                self.reading = Some(msg);
            }
            (None, None) => assert!(!self.plug.has_message(), "a message not handed out"),
        }
    }
}

/// Moves up to `max` bytes (0: all that fit) from `from.send` to `to.read`.
fn transfer(from: &mut End, to: &mut End, max: usize) -> usize {
    let max = if max == 0 { usize::MAX } else { max };
    let take = from.send.used().min(max).min(to.read.unused());
    let bytes = from.send.data()[..take].to_vec();
    let n = to.receive(&bytes);
    from.send.read(None, n);
    n
}

/// The plug state machine: a script of writes, appends, commits,
/// rollbacks, pushes, transfers, reads and consumes on a client plug and a
/// server plug, with junk injected now and then. Every return value is the
/// one the plug's rules give; each end hands out exactly what an
/// independent decoder finds in the bytes it received, and, while no junk
/// entered that direction, exactly the messages the other end committed, in
/// order. At the end everything committed is delivered.
pub fn plug(data: &[u8]) {
    let mut input = Input::new(data);
    let sizes = input.byte();
    let send = SEND_SIZES[usize::from(sizes & 3)];
    let read = READ_SIZES[usize::from((sizes >> 2) & 3)];
    let mut ends = [End::new(true, send, read), End::new(false, send, read)];
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.byte();
        let side = usize::from(op & 1);
        let [client, server] = &mut ends;
        let (me, other) = if side == 0 {
            (client, server)
        } else {
            (server, client)
        };
        match (op >> 1) % 9 {
            0 => {
                let (resume, uid) = (input.byte() & 1 == 1, input.u32());
                let command = Command::ALL[usize::from(input.byte() & 3)];
                let len = usize::from(input.u16()) % (MAX_TOTAL_DATA + 2);
                me.write(resume, uid, command, len);
            }
            1 => me.write_more(usize::from(input.u16()) % (MAX_TOTAL_DATA + 2)),
            2 => me.commit(),
            3 => me.rollback(),
            4 => me.plug.push(&mut me.send),
            5 => {
                transfer(me, other, usize::from(input.u16()));
            }
            6 => me.pull(input.byte() & 1 == 1),
            7 => me.read(input.byte() & 1 == 1, &mut other.committed),
            _ => {
                let len = usize::from(input.byte() % 64);
                let junk = input.bytes(len);
                if me.receive(junk) > 0 {
                    me.tainted = true;
                }
            }
        }
    }
    flush(&mut ends);
}

/// Pushes, moves and reads until nothing moves, then checks that every
/// committed message reached a clean, live direction's reader.
fn flush(ends: &mut [End; 2]) {
    for _ in 0..MAX_FLUSH_ROUNDS {
        let mut moved = 0;
        for side in 0..2 {
            let [client, server] = &mut *ends;
            let (me, other) = if side == 0 {
                (client, server)
            } else {
                (server, client)
            };
            let before = (me.send.used(), me.plug.can_write());
            me.plug.push(&mut me.send);
            moved += usize::from(before != (me.send.used(), me.plug.can_write()));
            moved += transfer(me, other, 0);
            if other.reading.is_some() {
                other.pull(true);
                moved += 1;
            }
            let unread = other.read.used();
            other.pull(false);
            moved += usize::from(other.read.used() != unread);
            if !other.dead && other.plug.has_message() {
                other.read(false, &mut me.committed);
                moved += 1;
            }
        }
        if moved == 0 {
            break;
        }
    }
    for (side, end) in ends.iter().enumerate() {
        let receiver = &ends[1 - side];
        if receiver.tainted || receiver.dead || end.send.size() < MAX_FRAME_LEN {
            continue;
        }
        assert!(
            end.plug.can_write() || end.building.is_some(),
            "not flushed"
        );
        assert!(
            end.committed.is_empty(),
            "{} messages lost",
            end.committed.len()
        );
    }
}
