//! Wire-format tests for `distcache::internals::proto`: the golden vectors captured from
//! the original C distcache, hand-made frames for every framing rule of
//! FACTS.md section 1, property tests of encode/decode under arbitrary
//! splitting, a seeded fuzz loop of mutated streams checked against a small
//! reference parser, and the ADD payload rules.

mod common;

use common::Vector;
use distcache::internals::proto::{
    decode_all, encode_message, encoded_len, next_request_uid, AddRequest, Command, Decoder,
    FrameHeader, Message, ProtoError, Role, Status, HEADER_LEN, MAX_DECODER_BUFFER, MAX_EXPIRY_MS,
    MAX_FRAMES, MAX_FRAME_DATA, MAX_ID_LEN, MAX_TOTAL_DATA, PROTO_LEVEL,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (SplitMix64): the fuzz loops are reproducible
/// from their seed, and cheap in debug builds.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with the given probability in percent.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// What a decoder made of a byte stream.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    /// Whole messages, in order, before any error.
    msgs: Vec<Message>,
    /// The decode error, if the stream was refused.
    err: Option<ProtoError>,
    /// Without an error: whether part of an unfinished message is held.
    mid: bool,
}

fn is_response_for(role: Role) -> bool {
    role == Role::Client
}

/// A valid frame to throw at a decoder after it failed.
fn probe_frame() -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, false, 1, Command::Have, b"x").unwrap();
    let mut resp = Vec::new();
    encode_message(&mut resp, true, 1, Command::Have, b"x").unwrap();
    out.extend_from_slice(&resp);
    out
}

/// Feeds `chunks` one after the other to a fresh decoder, calling `decode`
/// again on what is left of a chunk after each message, and checks the
/// decoder's contract on every call:
/// * `Ok((used, None))` consumed the whole input ("needs more");
/// * `Ok((used, Some(m)))` consumed at least one byte, at most the input,
///   and `m` is in this role's direction and within the payload limit;
/// * an error is final: later calls (empty, the rest, a valid frame) return
///   the same error;
/// * without an error, every byte was consumed;
/// * the decoder never holds more than `MAX_DECODER_BUFFER` bytes (one
///   header and one message's payload).
fn feed(role: Role, chunks: &[&[u8]]) -> Outcome {
    let mut dec = Decoder::new(role);
    let mut msgs = Vec::new();
    let mut consumed = 0usize;
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        loop {
            let result = dec.decode(rest);
            assert!(
                dec.buffered() <= MAX_DECODER_BUFFER,
                "decoder holds {} bytes",
                dec.buffered()
            );
            match result {
                Ok((used, msg)) => {
                    assert!(
                        used <= rest.len(),
                        "consumed {used} of {} bytes",
                        rest.len()
                    );
                    match msg {
                        Some(m) => {
                            assert!(used > 0, "a message out of zero bytes");
                            assert!(m.payload.len() <= MAX_TOTAL_DATA, "payload over the limit");
                            assert_eq!(m.is_response, is_response_for(role), "wrong direction");
                            msgs.push(m);
                        }
                        None => assert_eq!(used, rest.len(), "stopped early without a message"),
                    }
                    consumed += used;
                    rest = &rest[used..];
                    if rest.is_empty() {
                        break;
                    }
                }
                Err(e) => {
                    assert_eq!(
                        dec.decode(&[]),
                        Err(e.clone()),
                        "error not sticky (empty input)"
                    );
                    assert_eq!(dec.decode(rest), Err(e.clone()), "error not sticky (rest)");
                    assert_eq!(
                        dec.decode(&probe_frame()),
                        Err(e.clone()),
                        "error not sticky (valid frame)"
                    );
                    return Outcome {
                        msgs,
                        err: Some(e),
                        mid: false,
                    };
                }
            }
        }
    }
    assert_eq!(consumed, total, "not every byte was consumed");
    Outcome {
        msgs,
        err: None,
        mid: dec.is_mid_message(),
    }
}

/// [`feed`] as the server reads: each message is first asked of
/// `decode_whole` (no copy when it stands whole in one frame), and only
/// when that declines, of `decode`.
fn feed_whole_first(role: Role, chunks: &[&[u8]]) -> Outcome {
    let mut dec = Decoder::new(role);
    let mut msgs = Vec::new();
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() {
            let step = match dec.decode_whole(rest) {
                Ok(Some(w)) => {
                    assert!(w.used > 0 && w.used <= rest.len());
                    Ok((
                        w.used,
                        Some(Message {
                            is_response: w.header.is_response,
                            uid: w.header.uid,
                            command: w.header.command,
                            payload: w.payload.to_vec(),
                        }),
                    ))
                }
                Ok(None) => dec.decode(rest),
                Err(e) => Err(e),
            };
            match step {
                Ok((used, msg)) => {
                    msgs.extend(msg);
                    rest = &rest[used..];
                }
                Err(e) => {
                    assert_eq!(dec.decode(&[]), Err(e.clone()), "error not sticky");
                    return Outcome {
                        msgs,
                        err: Some(e),
                        mid: false,
                    };
                }
            }
        }
    }
    Outcome {
        msgs,
        err: None,
        mid: dec.is_mid_message(),
    }
}

/// Cuts `bytes` into chunks of the given sizes (the last one takes the rest).
fn cut<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    for &s in sizes {
        let end = (pos + s).min(bytes.len());
        out.push(&bytes[pos..end]);
        pos = end;
    }
    out.push(&bytes[pos..]);
    out
}

/// Random chunk sizes covering `len` bytes, in one of several styles: tiny
/// pieces (with empty ones) over the first two frames or so and larger ones
/// after, header-sized pieces, or a mix of small and large.
fn random_sizes(rng: &mut Rng, len: usize) -> Vec<usize> {
    let style = rng.below(4);
    let mut sizes = Vec::new();
    let mut sum = 0;
    while sum < len {
        let s = match style {
            0 if sum < 3000 => rng.range(0, 3),
            0 => rng.range(1, 4200),
            1 => rng.range(1, 2 * HEADER_LEN),
            2 => rng.range(1, 4200),
            _ => {
                if rng.chance(50) {
                    rng.range(0, 20)
                } else {
                    rng.range(1, len.max(1))
                }
            }
        };
        sizes.push(s);
        sum += s;
    }
    sizes
}

/// Decodes the stream whole, in random pieces and (when short) one byte at a
/// time; all three must agree. Returns the common outcome.
fn decode_every_way(role: Role, bytes: &[u8], rng: &mut Rng) -> Outcome {
    let whole = feed(role, &[bytes]);
    let sizes = random_sizes(rng, bytes.len());
    let split = feed(role, &cut(bytes, &sizes));
    assert_eq!(whole, split, "split {sizes:?} changed the result");
    assert_eq!(
        whole,
        feed_whole_first(role, &cut(bytes, &sizes)),
        "decoding whole frames without a copy, split {sizes:?}, changed the result"
    );
    assert_eq!(
        whole,
        feed_whole_first(role, &[bytes]),
        "decoding whole frames without a copy changed the result"
    );
    if bytes.len() <= 400 {
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            whole,
            feed(role, &bytewise),
            "byte-at-a-time changed the result"
        );
    }
    whole
}

/// A whole-buffer reference parser written straight from FACTS.md section 1
/// and the `ProtoError` docs: checks run in wire order on each 14-byte header
/// as soon as it is complete; a continuation must repeat the uid and op; at
/// most 16 frames / 32768 bytes per message.
fn reference(role: Role, bytes: &[u8]) -> Outcome {
    let want_response = is_response_for(role);
    let mut msgs = Vec::new();
    let mut pos = 0usize;
    // (uid, command, payload, frames) of the message being reassembled.
    let mut cur: Option<(u32, Command, Vec<u8>, usize)> = None;
    let fail = |msgs: Vec<Message>, e: ProtoError| Outcome {
        msgs,
        err: Some(e),
        mid: false,
    };
    loop {
        if bytes.len() - pos < HEADER_LEN {
            let mid = cur.is_some() || pos < bytes.len();
            return Outcome {
                msgs,
                err: None,
                mid,
            };
        }
        let h = &bytes[pos..pos + HEADER_LEN];
        pos += HEADER_LEN;
        let level = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if level >> 16 != 0x0011 {
            return fail(msgs, ProtoError::Version(level));
        }
        if h[4] > 1 || (h[4] == 1) != want_response {
            return fail(msgs, ProtoError::Direction(h[4]));
        }
        let uid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        if h[9] != 0 {
            return fail(msgs, ProtoError::OpClass(h[9]));
        }
        let command = match h[10] {
            0 => Command::Add,
            1 => Command::Get,
            2 => Command::Remove,
            3 => Command::Have,
            4 => Command::Take,
            op => return fail(msgs, ProtoError::Operation(op)),
        };
        if h[11] > 1 {
            return fail(msgs, ProtoError::CompleteFlag(h[11]));
        }
        let complete = h[11] == 1;
        let len = u16::from_be_bytes([h[12], h[13]]);
        if len > 2048 {
            return fail(msgs, ProtoError::FrameTooLong(len));
        }
        if !complete && len != 2048 {
            return fail(msgs, ProtoError::ShortFragment(len));
        }
        let (c_uid, c_cmd, mut payload, mut frames) =
            cur.take().unwrap_or((uid, command, Vec::new(), 0));
        if c_uid != uid || c_cmd != command {
            return fail(msgs, ProtoError::FragmentMismatch);
        }
        frames += 1;
        if frames > 16 || payload.len() + usize::from(len) > 32768 {
            return fail(msgs, ProtoError::MessageTooLong);
        }
        let len = usize::from(len);
        if bytes.len() - pos < len {
            return Outcome {
                msgs,
                err: None,
                mid: true,
            };
        }
        payload.extend_from_slice(&bytes[pos..pos + len]);
        pos += len;
        if complete {
            msgs.push(Message {
                is_response: want_response,
                uid,
                command,
                payload,
            });
        } else {
            cur = Some((uid, command, payload, frames));
        }
    }
}

fn encode_all(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out).expect("encode");
    }
    out
}

/// The offsets at which the frames of a valid encoding start.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        starts.push(pos);
        pos += HEADER_LEN + usize::from(u16::from_be_bytes([bytes[pos + 12], bytes[pos + 13]]));
    }
    starts
}

/// The 14 header bytes of a frame, field by field, so that any field can be
/// set to an invalid value.
#[derive(Debug, Clone, Copy)]
struct RawHeader {
    level: u32,
    resp: u8,
    uid: u32,
    class: u8,
    op: u8,
    complete: u8,
    len: u16,
}

impl RawHeader {
    /// A valid, complete request header.
    fn request(op: Command, len: usize) -> RawHeader {
        RawHeader {
            level: 0x0011_0000,
            resp: 0,
            uid: 1,
            class: 0,
            op: op.wire(),
            complete: 1,
            len: len as u16,
        }
    }

    fn bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.level.to_be_bytes());
        b[4] = self.resp;
        b[5..9].copy_from_slice(&self.uid.to_be_bytes());
        b[9] = self.class;
        b[10] = self.op;
        b[11] = self.complete;
        b[12..14].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// This header followed by `data`.
    fn frame(self, data: &[u8]) -> Vec<u8> {
        let mut v = self.bytes().to_vec();
        v.extend_from_slice(data);
        v
    }
}

const HAVE_ID: &[u8] = b"session-id-0001";

/// Decodes a hand-made stream every way and expects this error.
fn expect_error(role: Role, bytes: &[u8], want: ProtoError) {
    let mut rng = Rng::new(bytes.len() as u64);
    let out = decode_every_way(role, bytes, &mut rng);
    assert_eq!(out.err, Some(want), "outcome {out:?}");
    assert_eq!(reference(role, bytes), out, "reference parser disagrees");
}

/// Decodes a hand-made stream every way and expects exactly these messages.
fn expect_messages(role: Role, bytes: &[u8]) -> Vec<Message> {
    let mut rng = Rng::new(bytes.len() as u64);
    let out = decode_every_way(role, bytes, &mut rng);
    assert_eq!(out.err, None, "unexpected error");
    assert!(!out.mid, "message left unfinished");
    assert_eq!(reference(role, bytes), out, "reference parser disagrees");
    out.msgs
}

// ---------------------------------------------------------------------------
// Golden vectors
// ---------------------------------------------------------------------------

fn side_writes(v: &Vector, client: bool) -> Vec<&[u8]> {
    v.writes
        .iter()
        .filter(|(c, _)| *c == client)
        .map(|(_, b)| b.as_slice())
        .collect()
}

fn side_bytes(v: &Vector, client: bool) -> Vec<u8> {
    side_writes(v, client).concat()
}

/// Vectors recording a misbehaving original whose server writes are bogus.
fn server_side_is_bogus(v: &Vector) -> bool {
    v.name == "raw_trickle_25"
}

/// Whether the original server dropped the connection (or died) on this input.
fn server_closed(v: &Vector) -> bool {
    v.comments.iter().any(|c| {
        c.contains("connection closed by server") || c.contains("server alive after exchange: NO")
    })
}

/// Decodes a whole buffer with the checked feeder first (it fails fast if the
/// decoder stops making progress), then with `decode_all`, which must agree.
fn decode_whole(role: Role, bytes: &[u8], what: &str) -> (Vec<Message>, bool) {
    let out = feed(role, &[bytes]);
    assert_eq!(out.err, None, "{what}");
    let (msgs, mid) = decode_all(role, bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (&msgs, mid),
        (&out.msgs, out.mid),
        "{what}: decode_all disagrees"
    );
    (msgs, mid)
}

/// Decodes one side of a vector write by write (the original segmentation)
/// and as one buffer; both must give whole messages that re-encode exactly.
fn check_side_round_trips(v: &Vector, client: bool) -> Vec<Message> {
    let role = if client { Role::Server } else { Role::Client };
    let bytes = side_bytes(v, client);
    let what = format!("{} {}", v.name, if client { "C>" } else { "S>" });
    let (msgs, mid) = decode_whole(role, &bytes, &what);
    assert!(!mid, "{}: unfinished message at the end", v.name);
    let by_write = feed(role, &side_writes(v, client));
    assert_eq!(
        by_write,
        Outcome {
            msgs: msgs.clone(),
            err: None,
            mid: false
        },
        "{}",
        v.name
    );
    assert_eq!(encode_all(&msgs), bytes, "{}: re-encoding differs", v.name);
    msgs
}

/// Every plain (DC_CTX API) vector: the client's bytes decode as requests and
/// the server's as replies, into whole messages that re-encode to exactly the
/// captured bytes; the i-th reply answers the i-th request (same uid and op).
#[test]
fn vectors_api_exchanges_decode_and_reencode_exactly() {
    let mut checked = 0;
    for v in common::all_vectors() {
        if v.name.starts_with("raw_") || v.name.starts_with("proxy_") {
            continue;
        }
        let requests = check_side_round_trips(&v, true);
        let replies = check_side_round_trips(&v, false);
        assert_eq!(
            requests.len(),
            replies.len(),
            "{}: requests vs replies",
            v.name
        );
        for (q, r) in requests.iter().zip(&replies) {
            assert_eq!((q.uid, q.command), (r.uid, r.command), "{}", v.name);
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} plain vectors found");
}

/// The proxy legs are well-formed protocol too: both directions decode whole
/// and re-encode exactly (the empty reply of proxy_backend_down included).
#[test]
fn vectors_proxy_legs_decode_and_reencode_exactly() {
    let mut checked = 0;
    for v in common::all_vectors()
        .iter()
        .filter(|v| v.name.starts_with("proxy_"))
    {
        check_side_round_trips(v, true);
        check_side_round_trips(v, false);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// Raw vectors the original answered normally: the requests decode whole
/// (including the 0x0011abcd patch level and the zero-length final frame),
/// and the replies decode and re-encode exactly.
#[test]
fn vectors_raw_answered_decode_cleanly() {
    let mut checked = 0;
    for v in common::all_vectors() {
        if !v.name.starts_with("raw_") || server_closed(&v) {
            continue;
        }
        let (msgs, mid) = decode_whole(Role::Server, &side_bytes(&v, true), &v.name);
        assert!(!mid && !msgs.is_empty(), "{}", v.name);
        if !server_side_is_bogus(&v) {
            check_side_round_trips(&v, false);
        }
        checked += 1;
    }
    assert!(checked >= 13, "only {checked} raw vectors found");
}

/// How a closed-connection raw vector must be refused.
#[derive(Debug)]
enum Refusal {
    /// The frame decoder fails with this error.
    Decode(ProtoError),
    /// The frames decode, but the ADD payload is rejected with this error.
    AddPayload(ProtoError),
    /// Not refused: an operation the original did not know and we serve,
    /// decoded as this one request.
    Served(Command),
}

/// Every raw vector where the original closed the connection (or died): our
/// decoder refuses it with the named error, however the bytes are split.
/// raw_trickle_12 is excluded: that drop was the original's bug (see below).
#[test]
fn vectors_raw_closed_connection_are_refused() {
    use ProtoError::*;
    use Refusal::*;
    let expected: BTreeMap<&str, Refusal> = [
        ("raw_add_short_payload", AddPayload(ShortAdd(3))),
        ("raw_bad_op_class", Decode(OpClass(1))),
        // Operation 4 is TAKE here; the original knew no such operation.
        ("raw_bad_operation", Served(Command::Take)),
        ("raw_datalen_too_big", Decode(FrameTooLong(2049))),
        ("raw_fragment_cmd_mismatch", Decode(FragmentMismatch)),
        ("raw_fragment_uid_mismatch", Decode(FragmentMismatch)),
        ("raw_garbage_http", Decode(Version(0x4745_5420))),
        ("raw_incomplete_short", Decode(ShortFragment(15))),
        ("raw_is_response_set", Decode(Direction(1))),
        ("raw_proto_mismatch", Decode(Version(0x0012_0000))),
        ("raw_too_many_frames", Decode(MessageTooLong)),
    ]
    .into_iter()
    .collect();
    let vectors = common::all_vectors();
    let closed: Vec<&Vector> = vectors
        .iter()
        .filter(|v| {
            v.name.starts_with("raw_") && !v.name.starts_with("raw_trickle_") && server_closed(v)
        })
        .collect();
    let names: Vec<&str> = closed.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        expected.keys().copied().collect::<Vec<_>>(),
        "vector set changed"
    );
    let mut rng = Rng::new(7);
    for v in closed {
        let bytes = side_bytes(v, true);
        assert!(
            side_writes(v, false).is_empty(),
            "{}: the original sent a reply",
            v.name
        );
        let out = decode_every_way(Role::Server, &bytes, &mut rng);
        match &expected[v.name.as_str()] {
            Decode(e) => {
                assert_eq!(out.err.as_ref(), Some(e), "{}", v.name);
                assert!(out.msgs.is_empty(), "{}", v.name);
            }
            AddPayload(e) => {
                assert_eq!(out.err, None, "{}", v.name);
                assert_eq!(out.msgs.len(), 1, "{}", v.name);
                assert_eq!(out.msgs[0].command, Command::Add, "{}", v.name);
                assert_eq!(
                    AddRequest::parse(&out.msgs[0].payload),
                    Err(e.clone()),
                    "{}",
                    v.name
                );
            }
            Served(command) => {
                assert_eq!(out.err, None, "{}", v.name);
                assert_eq!(out.msgs.len(), 1, "{}", v.name);
                assert_eq!(out.msgs[0].command, *command, "{}", v.name);
            }
        }
    }
}

/// The original's partial-frame bug must not exist: each raw_trickle_*
/// request, fed in its original writes and completed with the bytes the
/// original never got to read (raw_trickle_12), is one ordinary HAVE. Every
/// two- and three-way split of that frame gives the same single message.
#[test]
fn vectors_raw_trickle_reassemble_at_any_split() {
    let vectors = common::all_vectors();
    let canonical = side_bytes(
        vectors.iter().find(|v| v.name == "raw_trickle_14").unwrap(),
        true,
    );
    let want = vec![Message {
        is_response: false,
        uid: 1,
        command: Command::Have,
        payload: HAVE_ID.to_vec(),
    }];
    let mut trickles = 0;
    for v in vectors
        .iter()
        .filter(|v| v.name.starts_with("raw_trickle_"))
    {
        let sent = side_bytes(v, true);
        assert!(
            canonical.starts_with(&sent),
            "{}: not the HAVE frame",
            v.name
        );
        let mut chunks = side_writes(v, true);
        let sent_only = feed(Role::Server, &chunks);
        if sent.len() < canonical.len() {
            assert_eq!(
                sent_only,
                Outcome {
                    msgs: vec![],
                    err: None,
                    mid: true
                },
                "{}",
                v.name
            );
        }
        chunks.push(&canonical[sent.len()..]);
        assert_eq!(feed(Role::Server, &chunks).msgs, want, "{}", v.name);
        trickles += 1;
    }
    assert_eq!(trickles, 5);
    for i in 0..=canonical.len() {
        for j in i..=canonical.len() {
            let chunks = [&canonical[..i], &canonical[i..j], &canonical[j..]];
            let out = feed(Role::Server, &chunks);
            assert_eq!(
                out,
                Outcome {
                    msgs: want.clone(),
                    err: None,
                    mid: false
                },
                "{i}/{j}"
            );
        }
    }
}

/// Every ADD request in the vectors gets, from `AddRequest::parse`, the
/// status the original server answered with (a valid parse was answered
/// 0x00, or 0x65 when the id already existed).
#[test]
fn vectors_add_status_matches_original_reply() {
    let mut adds = 0;
    for v in common::all_vectors() {
        if server_side_is_bogus(&v) || server_closed(&v) {
            continue;
        }
        let (requests, _) = decode_whole(Role::Server, &side_bytes(&v, true), &v.name);
        let (replies, _) = decode_whole(Role::Client, &side_bytes(&v, false), &v.name);
        for (q, r) in requests.iter().zip(&replies) {
            if q.command != Command::Add {
                continue;
            }
            assert_eq!(r.payload.len(), 1, "{}", v.name);
            let reply = r.payload[0];
            match AddRequest::parse(&q.payload) {
                Ok(Ok(_)) => assert!(
                    reply == Status::Ok.wire() || reply == Status::AddMatchingSession.wire(),
                    "{}: parsed fine but the original said {reply:#04x}",
                    v.name
                ),
                Ok(Err(status)) => assert_eq!(status.wire(), reply, "{}", v.name),
                Err(e) => panic!("{}: {e}", v.name),
            }
            adds += 1;
        }
    }
    assert!(adds >= 15, "only {adds} ADDs checked");
}

// ---------------------------------------------------------------------------
// Random round trips under random splitting
// ---------------------------------------------------------------------------

/// Payload lengths with the frame boundaries over-represented.
fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0usize, 1, 2047, 2048, 2049, 4095, 4096, 4097, 30720, 32767, 32768,
        ]),
        4 => 0usize..=64,
        3 => 0usize..=MAX_TOTAL_DATA,
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

/// (uid, command, payload length, payload seed)
fn message_spec() -> impl Strategy<Value = (u32, Command, usize, u64)> {
    (any::<u32>(), command(), payload_len(), any::<u64>())
}

fn build_message(role: Role, (uid, command, len, seed): (u32, Command, usize, u64)) -> Message {
    let mut payload = vec![0u8; len];
    Rng::new(seed).fill(&mut payload);
    Message {
        is_response: is_response_for(role),
        uid,
        command,
        payload,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encoding 1..=4 random messages back to back and feeding the stream to a
    /// decoder in random pieces gives back the same messages in order, with
    /// every byte consumed and nothing left pending; the encoded size is
    /// `encoded_len`. Short streams are also fed one byte at a time.
    #[test]
    fn round_trip_under_random_splits(
        client in any::<bool>(),
        specs in prop::collection::vec(message_spec(), 1..=4),
        split_seed in any::<u64>(),
    ) {
        let role = if client { Role::Client } else { Role::Server };
        let msgs: Vec<Message> = specs.into_iter().map(|s| build_message(role, s)).collect();
        let bytes = encode_all(&msgs);
        let want_len: usize = msgs.iter().map(|m| encoded_len(m.payload.len())).sum();
        prop_assert_eq!(bytes.len(), want_len);
        let want = Outcome { msgs, err: None, mid: false };
        let mut rng = Rng::new(split_seed);
        prop_assert_eq!(&decode_every_way(role, &bytes, &mut rng), &want);
        for _ in 0..3 {
            let sizes = random_sizes(&mut rng, bytes.len());
            prop_assert_eq!(&feed(role, &cut(&bytes, &sizes)), &want);
        }
        // Every prefix is "need more", never an error or a message too many.
        let cutpoint = rng.below(bytes.len() + 1);
        let prefix = feed(role, &[&bytes[..cutpoint]]);
        prop_assert_eq!(prefix.err, None);
        prop_assert!(prefix.msgs.len() <= want.msgs.len());
        prop_assert_eq!(&prefix.msgs[..], &want.msgs[..prefix.msgs.len()]);
    }

    /// A single small message fed strictly one byte at a time comes out once,
    /// on its last byte, and the decoder is then idle.
    #[test]
    fn small_message_one_byte_at_a_time(
        client in any::<bool>(),
        uid in any::<u32>(),
        cmd in command(),
        payload in prop::collection::vec(any::<u8>(), 0..=64),
    ) {
        let role = if client { Role::Client } else { Role::Server };
        let msg = Message { is_response: client, uid, command: cmd, payload };
        let bytes = encode_all(std::slice::from_ref(&msg));
        let mut dec = Decoder::new(role);
        for (i, b) in bytes.iter().enumerate() {
            let (used, out) = dec.decode(std::slice::from_ref(b)).unwrap();
            prop_assert_eq!(used, 1);
            if i + 1 < bytes.len() {
                prop_assert!(out.is_none());
                prop_assert!(dec.is_mid_message());
            } else {
                prop_assert_eq!(out.as_ref(), Some(&msg));
                prop_assert!(!dec.is_mid_message());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Seeded fuzz loop: mutated and random streams
// ---------------------------------------------------------------------------

fn random_message(rng: &mut Rng, role: Role) -> Message {
    let len = match rng.below(100) {
        0..=59 => rng.range(0, 40),
        60..=87 => rng.range(41, 700),
        88..=98 => rng.range(2040, 6200),
        _ => rng.range(30000, MAX_TOTAL_DATA),
    };
    let mut payload = vec![0u8; len];
    rng.fill(&mut payload);
    let uid = if rng.chance(20) {
        rng.pick(&[0, 1, u32::MAX])
    } else {
        rng.next_u32()
    };
    Message {
        is_response: is_response_for(role),
        uid,
        command: rng.pick(&Command::ALL),
        payload,
    }
}

fn random_stream(rng: &mut Rng, role: Role) -> (Vec<Message>, Vec<u8>) {
    let n = rng.range(1, 4);
    let msgs: Vec<Message> = (0..n).map(|_| random_message(rng, role)).collect();
    let bytes = encode_all(&msgs);
    (msgs, bytes)
}

/// Sets one header field of one frame to a value chosen to break a rule
/// (or, sometimes, to another valid value).
fn mutate_header_field(rng: &mut Rng, bytes: &mut [u8], start: usize) {
    let h = &mut bytes[start..start + HEADER_LEN];
    match rng.below(7) {
        0 => {
            let random = rng.next_u32();
            let level = rng.pick(&[0x0012_0000, 0x0011_abcd, 0x0010_ffff, 0, random]);
            h[0..4].copy_from_slice(&u32::to_be_bytes(level));
        }
        1 => h[4] = rng.pick(&[0, 1, 2, 0xff]),
        2 => {
            let uid = rng.next_u32();
            h[5..9].copy_from_slice(&uid.to_be_bytes());
        }
        3 => h[9] = rng.pick(&[1, 0x80, 0xff]),
        4 => h[10] = rng.pick(&[0, 1, 2, 3, 4, 0xff]),
        5 => h[11] = rng.pick(&[0, 1, 2, 0xff]),
        _ => {
            let old = u16::from_be_bytes([h[12], h[13]]);
            let len = rng.pick(&[
                0,
                1,
                2047,
                2048,
                2049,
                0xffff,
                old.wrapping_add(1),
                old.wrapping_sub(1),
            ]);
            h[12..14].copy_from_slice(&len.to_be_bytes());
        }
    }
}

/// Inserts `extra` at `at` (what `splice` does, with bulk copies: the fuzz
/// loops run in debug builds).
fn insert(bytes: &mut Vec<u8>, at: usize, extra: &[u8]) {
    let tail = bytes.split_off(at);
    bytes.extend_from_slice(extra);
    bytes.extend_from_slice(&tail);
}

/// Applies 1..=3 random mutations: bit flips, byte overwrites, header-field
/// edits, truncation, deletion, duplication, inserted continuation frames,
/// and splicing in another stream.
fn mutate(rng: &mut Rng, role: Role, bytes: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 3) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        match rng.below(9) {
            0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            7 => {
                // Insert 1..=16 full continuation frames (same level,
                // direction, uid and op) in front of a frame: a longer valid
                // message, or one of more than 16 frames.
                let starts = frame_starts(bytes);
                if starts.is_empty() {
                    continue;
                }
                let s = rng.pick(&starts);
                let mut h: [u8; HEADER_LEN] = bytes[s..s + HEADER_LEN].try_into().unwrap();
                h[11] = 0;
                h[12..14].copy_from_slice(&(MAX_FRAME_DATA as u16).to_be_bytes());
                let mut extra = Vec::new();
                for _ in 0..rng.range(1, MAX_FRAMES) {
                    extra.extend_from_slice(&h);
                    extra.extend_from_slice(&[0x5a; MAX_FRAME_DATA]);
                }
                insert(bytes, s, &extra);
            }
            1 => {
                // Overwrite, mostly inside a header where it matters most.
                let starts = frame_starts(bytes);
                let i = if rng.chance(70) && !starts.is_empty() {
                    (rng.pick(&starts) + rng.below(HEADER_LEN)).min(len - 1)
                } else {
                    rng.below(len)
                };
                bytes[i] = rng.byte();
            }
            2 | 3 => {
                let starts = frame_starts(bytes);
                if let Some(&s) = starts.get(rng.below(starts.len().max(1))) {
                    mutate_header_field(rng, bytes, s);
                }
            }
            4 => bytes.truncate(rng.below(len)),
            5 => {
                let a = rng.below(len);
                let b = rng.range(a, (a + 40).min(len));
                bytes.drain(a..b);
            }
            6 => {
                let a = rng.below(len);
                let b = rng.range(a, (a + 60).min(len));
                let copy = bytes[a..b].to_vec();
                let at = rng.range(0, len);
                insert(bytes, at, &copy);
            }
            _ => {
                // Splice another valid stream in, often at a frame boundary,
                // which makes continuation mismatches and long messages.
                let (_, other) = random_stream(rng, role);
                let mut starts = frame_starts(bytes);
                starts.push(len);
                let at = if rng.chance(60) {
                    rng.pick(&starts)
                } else {
                    rng.range(0, len)
                };
                let take = rng.range(0, other.len());
                insert(bytes, at, &other[..take]);
            }
        }
    }
}

/// Random junk: pure noise, or noise behind a plausible version prefix.
fn junk(rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![0u8; rng.range(0, 120)];
    rng.fill(&mut v);
    if v.len() >= 12 && rng.chance(70) {
        v[0..4].copy_from_slice(&PROTO_LEVEL.to_be_bytes());
        v[4] = rng.below(2) as u8;
        v[9] = 0;
        v[10] = rng.below(4) as u8;
        v[11] = rng.below(2) as u8;
    }
    v
}

/// Runs one fuzz case: decodes `bytes` whole, in random pieces and byte by
/// byte; asserts identical outcomes (messages before the error, the error
/// itself, pending state) and agreement with the reference parser.
fn fuzz_case(rng: &mut Rng, role: Role, bytes: &[u8]) -> Outcome {
    let out = decode_every_way(role, bytes, rng);
    assert_eq!(
        out,
        reference(role, bytes),
        "reference parser disagrees on {bytes:02x?}"
    );
    out
}

/// At least 100,000 cases in total (this test and the next): valid streams
/// with 1..=3 mutations, decoded with random splits, never panic; the decoder
/// yields messages, asks for more, or fails with a sticky error; messages
/// respect the limits; the outcome does not depend on how the stream is split
/// and matches the reference parser. Every tenth case is left unmutated and
/// must decode to exactly the original messages.
#[test]
fn fuzz_mutated_streams_split_independent() {
    let mut rng = Rng::new(0x00d1_57ca_c4e0_0001);
    let (mut errors, mut clean) = (0, 0);
    for case in 0..85_000u32 {
        let role = if rng.chance(50) {
            Role::Server
        } else {
            Role::Client
        };
        let (msgs, mut bytes) = random_stream(&mut rng, role);
        if case % 10 == 0 {
            let out = fuzz_case(&mut rng, role, &bytes);
            assert_eq!(
                out,
                Outcome {
                    msgs,
                    err: None,
                    mid: false
                },
                "case {case}"
            );
            clean += 1;
            continue;
        }
        mutate(&mut rng, role, &mut bytes);
        // Now and then read the stream from the wrong side.
        let reader = if rng.chance(5) {
            if role == Role::Server {
                Role::Client
            } else {
                Role::Server
            }
        } else {
            role
        };
        if fuzz_case(&mut rng, reader, &bytes).err.is_some() {
            errors += 1;
        }
    }
    // The mutations must actually reach the error paths, and not only them.
    assert!(errors > 30_000, "only {errors} mutated cases were refused");
    assert!(clean == 8_500);
}

/// Random junk (15,000 cases, with a valid-looking prefix most of the time)
/// follows the same rules as the mutated streams.
#[test]
fn fuzz_random_junk_split_independent() {
    let mut rng = Rng::new(0x00d1_57ca_c4e0_0002);
    for _ in 0..15_000 {
        let role = if rng.chance(50) {
            Role::Server
        } else {
            Role::Client
        };
        let bytes = junk(&mut rng);
        fuzz_case(&mut rng, role, &bytes);
    }
}

/// Each kind of header corruption in the fuzz reaches its own error variant
/// (the fuzz above would pass vacuously if some rule were never exercised).
#[test]
fn fuzz_reaches_every_error_variant() {
    let mut rng = Rng::new(0x00d1_57ca_c4e0_0003);
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..20_000 {
        let role = if rng.chance(50) {
            Role::Server
        } else {
            Role::Client
        };
        let (_, mut bytes) = random_stream(&mut rng, role);
        mutate(&mut rng, role, &mut bytes);
        if let Some(e) = reference(role, &bytes).err {
            let name = format!("{e:?}");
            let variant = name.split('(').next().unwrap().to_string();
            *seen.entry(variant).or_default() += 1;
        }
    }
    for variant in [
        "Version",
        "Direction",
        "OpClass",
        "Operation",
        "CompleteFlag",
        "FrameTooLong",
        "ShortFragment",
        "FragmentMismatch",
        "MessageTooLong",
    ] {
        assert!(
            seen.get(variant).copied().unwrap_or(0) > 0,
            "{variant} never hit: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Frame rules (FACTS.md section 1), one hand-made frame each
// ---------------------------------------------------------------------------

/// Protocol version: a different version (high 16 bits) is an error naming
/// the peer's level; a different patch level (low 16 bits) is accepted.
#[test]
fn rule_version_high_bits_must_match_patch_level_ignored() {
    for level in [0x0012_0000u32, 0x0010_0000, 0x0000_0011, 0xffff_0000] {
        let f = RawHeader {
            level,
            ..RawHeader::request(Command::Have, 15)
        }
        .frame(HAVE_ID);
        expect_error(Role::Server, &f, ProtoError::Version(level));
    }
    for level in [0x0011_abcdu32, 0x0011_ffff, 0x0011_0001] {
        let f = RawHeader {
            level,
            ..RawHeader::request(Command::Have, 15)
        }
        .frame(HAVE_ID);
        let msgs = expect_messages(Role::Server, &f);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].payload, HAVE_ID);
    }
}

/// is_response must be 0 for a server and 1 for a client; any other byte is
/// corrupt for both.
#[test]
fn rule_is_response_must_match_the_role() {
    let req = RawHeader::request(Command::Have, 15);
    expect_error(
        Role::Server,
        &RawHeader { resp: 1, ..req }.frame(HAVE_ID),
        ProtoError::Direction(1),
    );
    expect_error(Role::Client, &req.frame(HAVE_ID), ProtoError::Direction(0));
    for bad in [2u8, 0x80, 0xff] {
        let f = RawHeader { resp: bad, ..req }.frame(HAVE_ID);
        expect_error(Role::Server, &f, ProtoError::Direction(bad));
        expect_error(Role::Client, &f, ProtoError::Direction(bad));
    }
    let reply = RawHeader {
        resp: 1,
        len: 1,
        ..req
    }
    .frame(&[1]);
    let msgs = expect_messages(Role::Client, &reply);
    assert!(msgs[0].is_response);
}

/// op_class must be 0.
#[test]
fn rule_op_class_must_be_zero() {
    for class in [1u8, 2, 0xff] {
        let f = RawHeader {
            class,
            ..RawHeader::request(Command::Get, 15)
        }
        .frame(HAVE_ID);
        expect_error(Role::Server, &f, ProtoError::OpClass(class));
    }
}

/// Operations are 0..=4 (4, TAKE, is ours); 5 and above are refused.
#[test]
fn rule_operation_must_be_known() {
    for op in [5u8, 6, 0x80, 0xff] {
        let f = RawHeader {
            op,
            ..RawHeader::request(Command::Get, 15)
        }
        .frame(HAVE_ID);
        expect_error(Role::Server, &f, ProtoError::Operation(op));
    }
    for cmd in Command::ALL {
        let f = RawHeader::request(cmd, 15).frame(HAVE_ID);
        assert_eq!(expect_messages(Role::Server, &f)[0].command, cmd);
        assert_eq!(Command::from_wire(cmd.wire()), Some(cmd));
    }
    assert_eq!(Command::from_wire(4), Some(Command::Take));
    assert_eq!(Command::from_wire(5), None);
}

/// complete must be 0 or 1.
#[test]
fn rule_complete_flag_must_be_0_or_1() {
    for complete in [2u8, 0xff] {
        let f = RawHeader {
            complete,
            ..RawHeader::request(Command::Get, 15)
        }
        .frame(HAVE_ID);
        expect_error(Role::Server, &f, ProtoError::CompleteFlag(complete));
    }
}

/// data_len is at most 2048 (2049 refused as soon as the header is in).
#[test]
fn rule_data_len_at_most_2048() {
    let f = RawHeader::request(Command::Get, 2049).frame(&[b'x'; 2049]);
    expect_error(Role::Server, &f, ProtoError::FrameTooLong(2049));
    expect_error(
        Role::Server,
        &f[..HEADER_LEN],
        ProtoError::FrameTooLong(2049),
    );
    let f = RawHeader {
        len: 0xffff,
        ..RawHeader::request(Command::Get, 0)
    }
    .bytes();
    expect_error(Role::Server, &f, ProtoError::FrameTooLong(0xffff));
    let ok = RawHeader::request(Command::Get, 2048).frame(&[b'x'; 2048]);
    assert_eq!(expect_messages(Role::Server, &ok)[0].payload.len(), 2048);
}

/// A frame with complete=0 must carry exactly 2048 bytes.
#[test]
fn rule_incomplete_frame_must_be_full() {
    for len in [0usize, 1, 15, 2047] {
        let f = RawHeader {
            complete: 0,
            ..RawHeader::request(Command::Get, len)
        }
        .frame(&vec![b'x'; len]);
        expect_error(Role::Server, &f, ProtoError::ShortFragment(len as u16));
    }
}

/// A continuation frame must repeat the uid and the operation.
#[test]
fn rule_continuation_must_repeat_uid_and_op() {
    let first = RawHeader {
        complete: 0,
        ..RawHeader::request(Command::Add, 2048)
    }
    .frame(&[0u8; 2048]);
    let other_uid = RawHeader {
        uid: 2,
        ..RawHeader::request(Command::Add, 10)
    }
    .frame(&[0; 10]);
    let other_op = RawHeader::request(Command::Get, 10).frame(&[0; 10]);
    let same = RawHeader::request(Command::Add, 10).frame(&[0; 10]);
    expect_error(
        Role::Server,
        &[first.clone(), other_uid].concat(),
        ProtoError::FragmentMismatch,
    );
    expect_error(
        Role::Server,
        &[first.clone(), other_op].concat(),
        ProtoError::FragmentMismatch,
    );
    let msgs = expect_messages(Role::Server, &[first, same].concat());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload.len(), 2058);
}

/// At most 16 frames: 16 full frames make a 32768-byte message; a 17th frame
/// (even an empty one) is refused.
#[test]
fn rule_at_most_16_frames() {
    let full = RawHeader {
        complete: 0,
        ..RawHeader::request(Command::Add, 2048)
    }
    .frame(&[7u8; 2048]);
    let last_full = RawHeader::request(Command::Add, 2048).frame(&[7u8; 2048]);
    let empty_last = RawHeader::request(Command::Add, 0).frame(&[]);

    let sixteen = [vec![full.clone(); 15].concat(), last_full.clone()].concat();
    let msgs = expect_messages(Role::Server, &sixteen);
    assert_eq!(msgs[0].payload.len(), MAX_TOTAL_DATA);

    let seventeen_empty = [vec![full.clone(); 16].concat(), empty_last].concat();
    expect_error(Role::Server, &seventeen_empty, ProtoError::MessageTooLong);
    let seventeen = [vec![full; 16].concat(), last_full].concat();
    expect_error(Role::Server, &seventeen, ProtoError::MessageTooLong);
}

/// The decoder's memory bound is what it says and is reached: a message of
/// 32768 bytes one byte short of complete holds exactly one header and one
/// message's payload; handing the message out releases the payload; a
/// stream of such messages split anywhere never holds more.
#[test]
fn decoder_memory_bound_is_exact() {
    assert_eq!(MAX_DECODER_BUFFER, HEADER_LEN + MAX_TOTAL_DATA);
    let mut bytes = Vec::new();
    encode_message(&mut bytes, false, 9, Command::Add, &[3u8; MAX_TOTAL_DATA]).unwrap();
    let mut dec = Decoder::new(Role::Server);
    assert_eq!(dec.buffered(), HEADER_LEN, "nothing reserved up front");
    let (last, head) = bytes.split_last().unwrap();
    assert_eq!(dec.decode(head), Ok((head.len(), None)));
    assert_eq!(dec.buffered(), MAX_DECODER_BUFFER);
    let (used, msg) = dec.decode(std::slice::from_ref(last)).unwrap();
    assert_eq!(
        (used, msg.map(|m| m.payload.len())),
        (1, Some(MAX_TOTAL_DATA))
    );
    assert_eq!(
        dec.buffered(),
        HEADER_LEN,
        "the payload left with the message"
    );

    let stream = [bytes.clone(), bytes.clone(), bytes].concat();
    let mut rng = Rng::new(0x00d1_57ca_c4e0_0004);
    for _ in 0..20 {
        let out = feed(
            Role::Server,
            &cut(&stream, &random_sizes(&mut rng, stream.len())),
        );
        assert_eq!(out.msgs.len(), 3);
    }
}

/// A final zero-length frame after a full 2048-byte frame is accepted, and a
/// message decoded after it starts afresh.
#[test]
fn rule_zero_length_final_frame_accepted() {
    let full = RawHeader {
        complete: 0,
        ..RawHeader::request(Command::Add, 2048)
    }
    .frame(&[9u8; 2048]);
    let empty = RawHeader::request(Command::Add, 0).frame(&[]);
    let next = RawHeader {
        uid: 2,
        ..RawHeader::request(Command::Have, 15)
    }
    .frame(HAVE_ID);
    let msgs = expect_messages(Role::Server, &[full, empty, next].concat());
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].payload, vec![9u8; 2048]);
    assert_eq!((msgs[1].uid, msgs[1].command), (2, Command::Have));
}

/// Encode side: a payload of exactly 2048*k bytes is k full frames, the last
/// one complete, with no empty trailer; other sizes fill every frame but the
/// last; the header carries 0x00110000 and op_class 0.
#[test]
fn encode_frames_exact_multiples_without_trailer() {
    for k in 1..=MAX_FRAMES {
        for extra in [0usize, 1] {
            let len = k * MAX_FRAME_DATA - extra;
            let payload = vec![0xa5u8; len];
            let mut out = Vec::new();
            encode_message(&mut out, false, 42, Command::Add, &payload).unwrap();
            assert_eq!(
                out.len(),
                k * (HEADER_LEN + MAX_FRAME_DATA) - extra,
                "len {len}"
            );
            assert_eq!(out.len(), encoded_len(len));
            let starts = frame_starts(&out);
            assert_eq!(starts.len(), k, "len {len}");
            for (i, &s) in starts.iter().enumerate() {
                let h: [u8; HEADER_LEN] = out[s..s + HEADER_LEN].try_into().unwrap();
                let fh = FrameHeader::decode(&h, false).unwrap();
                assert_eq!(fh.proto_level, PROTO_LEVEL);
                assert_eq!(h[9], 0, "op_class");
                assert_eq!(fh.uid, 42);
                assert_eq!(fh.complete, i + 1 == k, "frame {i} of {k}");
                let want = if i + 1 < k {
                    MAX_FRAME_DATA
                } else {
                    MAX_FRAME_DATA - extra
                };
                assert_eq!(usize::from(fh.data_len), want);
            }
        }
    }
}

/// Encode side: an empty payload is one empty, complete frame; a payload of
/// 32769 bytes is refused and leaves the output untouched.
#[test]
fn encode_empty_payload_and_too_long() {
    let mut out = vec![0xee];
    encode_message(&mut out, true, 7, Command::Get, &[]).unwrap();
    assert_eq!(hexs(&out[1..]), "0011000001000000070001010000");
    assert_eq!(encoded_len(0), HEADER_LEN);

    let mut out = vec![1, 2, 3];
    let err = encode_message(&mut out, false, 1, Command::Add, &[0; MAX_TOTAL_DATA + 1]);
    assert_eq!(err, Err(ProtoError::PayloadTooLong(MAX_TOTAL_DATA + 1)));
    assert_eq!(out, [1, 2, 3]);
}

/// FrameHeader encode/decode round trip at both directions.
#[test]
fn frame_header_round_trip() {
    for is_response in [false, true] {
        for cmd in Command::ALL {
            for (complete, len) in [(true, 0u16), (true, 2048), (false, 2048), (true, 17)] {
                let h = FrameHeader::new(is_response, 0xdead_beef, cmd, complete, len);
                assert_eq!(FrameHeader::decode(&h.encode(), is_response), Ok(h));
            }
        }
    }
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------
// ADD payloads
// ---------------------------------------------------------------------------

fn add_payload(timeout: u32, id_len: u32, rest: &[u8]) -> Vec<u8> {
    [&timeout.to_be_bytes()[..], &id_len.to_be_bytes()[..], rest].concat()
}

/// A payload too short for its 8-byte prefix is a protocol error (the
/// original closed the connection), not a status.
#[test]
fn add_parse_short_payload_is_an_error() {
    let full = add_payload(60000, 1, b"ab");
    for len in 0..8 {
        assert_eq!(
            AddRequest::parse(&full[..len]),
            Err(ProtoError::ShortAdd(len))
        );
    }
}

/// The status checks run in the original's order: timeout range first (even
/// when the id length is also bad), then id length against the rest
/// (corrupt), then the id range.
#[test]
fn add_parse_status_order() {
    let over = MAX_EXPIRY_MS + 1;
    let cases: [(u32, u32, usize, Status); 12] = [
        (over, 15, 31, Status::AddTimeoutRange),
        (over, 1000, 31, Status::AddTimeoutRange),
        (over, 0, 31, Status::AddTimeoutRange),
        (u32::MAX, 65, 70, Status::AddTimeoutRange),
        (60000, 100, 31, Status::AddCorrupt),
        (60000, 15, 15, Status::AddCorrupt),
        (60000, 65, 65, Status::AddCorrupt),
        (60000, 0, 0, Status::AddCorrupt),
        (60000, u32::MAX, 10, Status::AddCorrupt),
        (60000, 0, 16, Status::AddIdRange),
        (60000, 65, 81, Status::AddIdRange),
        (60000, 1000, 2000, Status::AddIdRange),
    ];
    for (timeout, id_len, rest_len, want) in cases {
        let payload = add_payload(timeout, id_len, &vec![b'i'; rest_len]);
        assert_eq!(
            AddRequest::parse(&payload),
            Ok(Err(want)),
            "timeout {timeout} id_len {id_len} rest {rest_len}"
        );
    }
}

/// The limits themselves are accepted: timeout 0 and exactly 604800000, id
/// lengths 1 and 64, one byte of session data.
#[test]
fn add_parse_accepts_the_limits() {
    for timeout in [0, 1, MAX_EXPIRY_MS] {
        for id_len in [1usize, MAX_ID_LEN] {
            let id = vec![b'k'; id_len];
            let payload = add_payload(timeout, id_len as u32, &[&id[..], b"D"].concat());
            let req = AddRequest::parse(&payload).unwrap().unwrap();
            assert_eq!(
                req,
                AddRequest {
                    timeout_msecs: timeout,
                    id: &id,
                    data: b"D"
                }
            );
        }
    }
}

/// `encode` refuses payloads over 32768 bytes and accepts exactly 32768.
#[test]
fn add_encode_limit() {
    let id = [1u8; 8];
    let data = vec![2u8; MAX_TOTAL_DATA - 16];
    let mut out = Vec::new();
    AddRequest {
        timeout_msecs: 1,
        id: &id,
        data: &data,
    }
    .encode(&mut out)
    .unwrap();
    assert_eq!(out.len(), MAX_TOTAL_DATA);
    let data = vec![2u8; MAX_TOTAL_DATA - 15];
    let mut out = Vec::new();
    let err = AddRequest {
        timeout_msecs: 1,
        id: &id,
        data: &data,
    }
    .encode(&mut out);
    assert_eq!(err, Err(ProtoError::PayloadTooLong(MAX_TOTAL_DATA + 1)));
}

/// Spec of `AddRequest::parse` straight from FACTS.md, for the property below.
fn add_spec(payload: &[u8]) -> Result<Option<Status>, ProtoError> {
    if payload.len() < 8 {
        return Err(ProtoError::ShortAdd(payload.len()));
    }
    let timeout = u32::from_be_bytes(payload[0..4].try_into().unwrap());
    let id_len = u32::from_be_bytes(payload[4..8].try_into().unwrap()) as usize;
    let rest = payload.len() - 8;
    Ok(if timeout > 604_800_000 {
        Some(Status::AddTimeoutRange)
    } else if id_len >= rest {
        Some(Status::AddCorrupt)
    } else if id_len == 0 || id_len > 64 {
        Some(Status::AddIdRange)
    } else {
        None
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Valid ADDs survive encode then parse unchanged.
    #[test]
    fn add_round_trip(
        timeout in prop_oneof![Just(0u32), Just(MAX_EXPIRY_MS), 0..=MAX_EXPIRY_MS],
        id in prop::collection::vec(any::<u8>(), 1..=MAX_ID_LEN),
        data in prop::collection::vec(any::<u8>(), 1..300),
    ) {
        let req = AddRequest { timeout_msecs: timeout, id: &id, data: &data };
        let mut out = Vec::new();
        req.encode(&mut out).unwrap();
        prop_assert_eq!(out.len(), 8 + id.len() + data.len());
        prop_assert_eq!(AddRequest::parse(&out), Ok(Ok(req)));
    }

    /// Payloads with boundary-heavy prefixes: parse never panics, agrees with
    /// the spec, and what it accepts re-encodes to the same bytes.
    #[test]
    fn add_parse_matches_spec(
        timeout in prop_oneof![
            Just(0u32), Just(MAX_EXPIRY_MS), Just(MAX_EXPIRY_MS + 1), Just(u32::MAX), any::<u32>()
        ],
        id_len in prop_oneof![0u32..=70, Just(u32::MAX), any::<u32>()],
        rest_len in 0usize..100,
        cut_to in prop::option::of(0usize..8),
    ) {
        let mut payload = add_payload(timeout, id_len, &vec![b'r'; rest_len]);
        if let Some(n) = cut_to {
            payload.truncate(n);
        }
        let got = AddRequest::parse(&payload);
        let want = add_spec(&payload);
        match (&got, &want) {
            (Ok(Ok(req)), Ok(None)) => {
                let mut out = Vec::new();
                req.encode(&mut out).unwrap();
                prop_assert_eq!(out, payload);
            }
            (Ok(Err(s)), Ok(Some(w))) => prop_assert_eq!(s, w),
            (Err(e), Err(w)) => prop_assert_eq!(e, w),
            _ => {
                return Err(TestCaseError::fail(format!("parse {got:?} vs spec {want:?}")));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Request uids
// ---------------------------------------------------------------------------

/// `next_request_uid` increases strictly on every call (other tests in the
/// process may take uids too, so only the order is checked), and concurrent
/// callers never get the same uid.
#[test]
fn next_request_uid_strictly_increasing_and_unique() {
    let mut last = next_request_uid();
    for _ in 0..10_000 {
        let uid = next_request_uid();
        assert!(uid > last, "{uid} after {last}");
        last = uid;
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let uids: Vec<u32> = (0..5_000).map(|_| next_request_uid()).collect();
                assert!(uids.windows(2).all(|w| w[0] < w[1]));
                uids
            })
        })
        .collect();
    let mut all: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a uid was handed out twice");
    assert!(all[0] > last);
}
