//! The server's request loop (`DC_SERVER`'s [`Embedded`] over a [`Plug`]),
//! fed an arbitrary byte stream cut at arbitrary points.

use super::split_stream;
use crate::cache::{MemoryStore, Millis};
use crate::nal::Buffer;
use crate::plug::Plug;
use crate::proto::{decode_all, Command, Decoder, Message, Role, MAX_FRAME_LEN, MAX_TOTAL_DATA};
use crate::server::{handle_request, Embedded, Policy};

/// Sessions the store holds: small, so that ADDs evict.
const CAPACITY: usize = 8;
/// Read buffer sizes, down to one byte at a time.
const READ_SIZES: [usize; 4] = [1, 13, 4096, 32768];
/// Send buffer sizes: at least one whole frame, so that every reply fits.
const SEND_SIZES: [usize; 4] = [MAX_FRAME_LEN, MAX_FRAME_LEN + 1, 4096, 32768];
/// Calls without progress before the loop counts as stuck.
const MAX_STEPS: usize = 1_000_000;

/// The server under test, its buffers, and what its client has read.
struct Conn {
    server: Embedded,
    plug: Plug,
    read: Buffer,
    send: Buffer,
    /// Bytes the client reads from `send` at once (0: all there are).
    drain_step: usize,
    replies: Vec<u8>,
    dropped: bool,
}

impl Conn {
    /// Runs the server until it makes no more progress on what it holds.
    /// True when anything moved.
    fn serve(&mut self) -> bool {
        let mut progressed = false;
        for _ in 0..MAX_STEPS {
            let before = self.state();
            // Request i is answered at time i, as the reference does.
            let now: Millis = self.server.operations();
            if !self
                .server
                .process(&mut self.plug, &mut self.read, &mut self.send, now)
            {
                self.dropped = true;
                return true;
            }
            assert!(self.server.items(now) <= CAPACITY, "store over capacity");
            if self.state() == before {
                return progressed;
            }
            progressed = true;
        }
        panic!("server loop never settles");
    }

    fn state(&self) -> (usize, usize, u64, bool, bool) {
        (
            self.read.used(),
            self.send.used(),
            self.server.operations(),
            self.plug.has_message(),
            self.plug.can_write(),
        )
    }

    /// The client reads replies. True when it got any.
    fn drain(&mut self) -> bool {
        let n = match self.drain_step {
            0 => self.send.used(),
            step => step.min(self.send.used()),
        };
        self.replies.extend_from_slice(&self.send.data()[..n]);
        self.send.read(None, n);
        n > 0
    }
}

/// What a correct server answers to `stream`: each request decoded from the
/// whole stream, handled in turn at time i by a store of its own, until the
/// stream ends or turns bad. Also the requests, and whether the connection
/// is to be dropped.
fn reference(stream: &[u8]) -> (Vec<u8>, Vec<Message>, bool) {
    let store = MemoryStore::new(CAPACITY);
    let mut decoder = Decoder::new(Role::Server);
    let (mut out, mut requests) = (Vec::new(), Vec::new());
    let mut rest = stream;
    while !rest.is_empty() {
        let Ok((used, msg)) = decoder.decode(rest) else {
            return (out, requests, true);
        };
        rest = &rest[used..];
        if let Some(req) = msg {
            let now = requests.len() as Millis;
            if handle_request(Policy::default(), &store, now, &req, &mut out).is_err() {
                return (out, requests, true);
            }
            requests.push(req);
        }
    }
    (out, requests, false)
}

/// Checks one reply's shape against its request, whatever the store held.
fn check_reply(req: &Message, reply: &Message) {
    assert_eq!((reply.uid, reply.command), (req.uid, req.command));
    let p = &reply.payload;
    match req.command {
        Command::Add => assert!(
            matches!(p[..], [0x00] | [0x64..=0x68]),
            "ADD reply {p:02x?}"
        ),
        Command::Remove | Command::Have => assert!(matches!(p[..], [0] | [1]), "{p:02x?}"),
        Command::Get | Command::Take => assert!(!p.is_empty() && p.len() <= MAX_TOTAL_DATA),
    }
}

/// The server's request loop: a split stream (flags: bits 0-1 the read
/// buffer size, bits 2-3 the send buffer size, bits 4-5 how much the client
/// reads at once, bit 6 a client that reads only when the server is stuck)
/// fed chunk by chunk into `Embedded::process`. It never panics or stalls
/// while input is waiting; the store stays within its capacity; the replies
/// are well-formed frames, one per request, each the reply to its request
/// in order; they are byte for byte what the request handler gives for the
/// stream decoded whole; and the connection is dropped exactly when the
/// stream turns corrupt or holds an ADD too short for its prefix.
pub fn server(data: &[u8]) {
    let (flags, chunks, stream) = split_stream(data);
    let buffer = |size| Buffer::with_size(size).unwrap_or_default();
    let mut conn = Conn {
        server: Embedded::new(Box::new(MemoryStore::new(CAPACITY))),
        plug: Plug::new(false),
        read: buffer(READ_SIZES[usize::from(flags & 3)]),
        send: buffer(SEND_SIZES[usize::from((flags >> 2) & 3)]),
        drain_step: [0, 100, MAX_FRAME_LEN, 5000][usize::from((flags >> 4) & 3)],
        replies: Vec::new(),
        dropped: false,
    };
    let lazy = flags & 0x40 != 0;
    'feed: for chunk in chunks {
        let mut rest = chunk;
        loop {
            let taken = conn.read.write(rest);
            rest = &rest[taken..];
            let served = conn.serve();
            if conn.dropped {
                break 'feed;
            }
            let read_any = (!lazy || (taken == 0 && !served)) && conn.drain();
            if rest.is_empty() {
                break;
            }
            assert!(
                taken > 0 || served || read_any,
                "server stuck with input waiting"
            );
        }
    }
    // The end of the input: the client reads the rest of the replies (and,
    // once the server gave up, what it had already started to send).
    conn.drain_step = 0;
    let mut settled = false;
    for _ in 0..MAX_STEPS {
        let served = !conn.dropped && conn.serve();
        if conn.dropped {
            conn.plug.push(&mut conn.send);
        }
        if !conn.drain() && !served {
            settled = true;
            break;
        }
    }
    assert!(settled, "the server never finished answering");
    assert!(conn.plug.can_write(), "a reply was never sent");

    let (expected, requests, drop) = reference(stream);
    assert_eq!(conn.dropped, drop, "dropped the connection or not");
    match decode_all(Role::Client, &conn.replies) {
        Ok((replies, false)) => {
            assert_eq!(replies.len(), requests.len(), "one reply per request");
            for (req, reply) in requests.iter().zip(&replies) {
                check_reply(req, reply);
            }
        }
        other => panic!("replies do not decode: {other:?}"),
    }
    assert!(
        conn.replies == expected,
        "replies differ from the handler's"
    );
}
