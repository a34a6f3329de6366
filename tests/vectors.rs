//! Replays the golden wire vectors (tests/data/vectors, captured from the
//! original C dc_server) against our `dc_server` (the replay itself is in
//! tests/replay, shared with tests/c_api.rs).
//!
//! * Correct exchanges: the concatenated server bytes must equal the
//!   concatenated recorded `S>` bytes, and the connection stays open.
//! * Bad input the original answered by closing the connection: no reply
//!   bytes, EOF within 2 s, the process keeps running and a second, fresh
//!   connection is served.
//! * Where the original crashed (`raw_garbage_http`, `raw_proto_mismatch`:
//!   abort() of the whole server) our server must only close that one
//!   connection, without a reply.
//! * Where the original misparsed a frame split across writes
//!   (`raw_trickle_8`, `raw_trickle_12`, `raw_trickle_25`) our server must
//!   answer exactly as it answers the unsplit request.
//!
//! Every vector gets a fresh server of its own, so no state leaks between
//! them. `proxy_*` vectors (dc_client) are not part of this file.

mod common;
mod dc_server;
mod replay;

use common::{all_vectors, describe, hex, to_hex, Vector};
use dc_server::DcServer;
use replay::{
    add_payload, assert_all_passed, check_special_vectors, collect, encode_msg, probe, replay_all,
    replayable, End, Endpoint, Target, QUIET, REPLY_LIMIT, SPACING,
};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// A fresh dc_server on a UNIX socket of its own.
fn start_dc_server() -> Box<dyn Target> {
    Box::new(DcServer::start(&[]))
}

#[test]
fn replay_vectors_against_dc_server() {
    let vectors: Vec<Vector> = all_vectors().into_iter().filter(replayable).collect();
    assert!(
        vectors.len() >= 28,
        "expected at least 28 replayable vectors, found {}",
        vectors.len()
    );
    check_special_vectors(&vectors);
    let outcomes = replay_all(&vectors, &start_dc_server);
    assert_all_passed("dc_server", &outcomes);
}

// ---------------------------------------------------------------------------
// Split frames on a server that has already served traffic
// ---------------------------------------------------------------------------

/// Puts traffic through the server first: the original's partial-frame bug
/// read stale buffer bytes left by earlier connections.
fn connect(socket: &Path) -> replay::Conn {
    Endpoint::Unix(socket.to_path_buf())
        .connect(REPLY_LIMIT)
        .expect("connect to dc_server")
}

fn warm_up(socket: &Path) {
    let mut s = connect(socket);
    let id = b"warm-up-session-id";
    let data = vec![0xffu8; 3000];
    let add = encode_msg(false, 900, 0, &add_payload(60_000, id, &data));
    s.write_all(&add).expect("warm-up ADD");
    let mut got = Vec::new();
    let want = encode_msg(true, 900, 0, &[0]);
    collect(&mut s, &mut got, want.len(), QUIET, REPLY_LIMIT);
    assert_eq!(to_hex(&got), to_hex(&want), "warm-up ADD reply");
    let get = encode_msg(false, 901, 1, id);
    s.write_all(&get).expect("warm-up GET");
    let mut got = Vec::new();
    let want = encode_msg(true, 901, 1, &data);
    collect(&mut s, &mut got, want.len(), QUIET, REPLY_LIMIT);
    assert!(got == want, "warm-up GET reply: {}", describe(&want, &got));
    drop(s);
    // A connection that leaves half a frame of 0xff bytes behind.
    let mut s = connect(socket);
    let mut junk = hex("00110000000000038400030107ff");
    junk.extend_from_slice(&[0xffu8; 500]);
    let _ = s.write_all(&junk);
    std::thread::sleep(Duration::from_millis(20));
}

/// Sends `msg` in pieces cut at `cuts`, `gap` apart, and returns what came
/// back (after the expected length plus a quiet period) and how it ended.
fn send_split(
    socket: &Path,
    msg: &[u8],
    cuts: &[usize],
    gap: Duration,
    want_len: usize,
) -> (Vec<u8>, End) {
    let mut s = connect(socket);
    let mut from = 0;
    let mut got = Vec::new();
    for &cut in cuts.iter().chain(std::iter::once(&msg.len())) {
        if let Err(e) = s.write_all(&msg[from..cut]) {
            return (got, End::Error(format!("write [{from}..{cut}): {e}")));
        }
        from = cut;
        if cut < msg.len() {
            // Gives the server time to read the piece on its own, and shows
            // whether it answered too early.
            let end = collect(&mut s, &mut got, 0, gap, REPLY_LIMIT);
            if end != End::Quiet {
                return (got, end);
            }
        }
    }
    let end = collect(&mut s, &mut got, want_len, QUIET, REPLY_LIMIT);
    (got, end)
}

#[test]
fn split_frames_are_answered_normally_on_a_warm_server() {
    let srv = DcServer::start(&[]);
    warm_up(srv.socket());

    let mut failures = Vec::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        // A HAVE frame (29 bytes) split once at every possible offset.
        for k in 1..29usize {
            let socket = srv.socket();
            handles.push(scope.spawn(move || {
                let uid = 1000 + k as u32;
                let msg = encode_msg(false, uid, 3, b"session-id-0001");
                let want = encode_msg(true, uid, 3, &[1]);
                let (got, end) = send_split(socket, &msg, &[k], SPACING, want.len());
                (format!("HAVE split at {k}"), want, got, end)
            }));
        }
        // The same frame one byte at a time.
        let socket = srv.socket();
        handles.push(scope.spawn(move || {
            let msg = encode_msg(false, 2000, 3, b"session-id-0001");
            let want = encode_msg(true, 2000, 3, &[1]);
            let cuts: Vec<usize> = (1..msg.len()).collect();
            let (got, end) = send_split(socket, &msg, &cuts, Duration::from_millis(5), want.len());
            ("HAVE byte by byte".to_string(), want, got, end)
        }));
        // A two-frame ADD (2048 + 62 bytes) split around the second header.
        for k in [
            2048usize, 2061, 2062, 2063, 2066, 2068, 2072, 2075, 2076, 2077, 2100,
        ] {
            let socket = srv.socket();
            handles.push(scope.spawn(move || {
                let uid = 3000 + k as u32;
                let id = format!("split-add-{k}");
                let data = vec![0x5au8; 2110 - 8 - id.len()];
                let msg = encode_msg(false, uid, 0, &add_payload(60_000, id.as_bytes(), &data));
                let want = encode_msg(true, uid, 0, &[0]);
                let (got, end) = send_split(socket, &msg, &[k], SPACING, want.len());
                (format!("2-frame ADD split at {k}"), want, got, end)
            }));
        }
        for h in handles {
            let (what, want, got, end) = h.join().expect("split thread");
            let ok = got == want && end == End::Quiet;
            eprintln!(
                "{} {what}: {} (end {end:?})",
                if ok { "PASS" } else { "FAIL" },
                describe(&want, &got)
            );
            if !ok {
                failures.push(format!("{what}: {} (end {end:?})", describe(&want, &got)));
            }
        }
    });
    assert!(
        failures.is_empty(),
        "split frames failed:\n{}",
        failures.join("\n")
    );
    assert!(
        probe(&Endpoint::Unix(srv.socket().to_path_buf())).is_none(),
        "server no longer serves after split tests"
    );
}
