//! Replays the golden wire vectors (tests/data/vectors, captured from the
//! original C dc_server) against our `dc_server`.
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

use common::{all_vectors, connect_unix, describe, hex, to_hex, ServerProc, Vector};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A HAVE request for 'session-id-0001' with uid 1, as in the raw vectors.
const HAVE_SESSION_ID_0001: &str = "001100000000000001000301000f73657373696f6e2d69642d30303031";
/// The correct reply to it on an empty server: HAVE, uid 1, 0x01 (not found).
const HAVE_MISS_REPLY: &str = "001100000100000001000301000101";

/// Vectors where the original misparsed a frame that arrived in pieces
/// (FACTS.md, "Partial-frame decoding bug"). Ours must answer normally.
const TRICKLE_BUGS: &[&str] = &["raw_trickle_8", "raw_trickle_12", "raw_trickle_25"];

/// Vectors where the original aborted the whole server (version mismatch).
/// Ours must close that connection only, with no reply.
const CRASHERS: &[&str] = &["raw_garbage_http", "raw_proto_mismatch"];

/// Bad input the original answered by closing the connection silently.
const CLOSERS: &[&str] = &[
    "raw_add_short_payload",
    "raw_bad_op_class",
    "raw_bad_operation",
    "raw_datalen_too_big",
    "raw_fragment_cmd_mismatch",
    "raw_fragment_uid_mismatch",
    "raw_incomplete_short",
    "raw_is_response_set",
    "raw_too_many_frames",
];

/// After the expected bytes have arrived, keep reading this long to catch
/// extra bytes (and to give the same spacing as the original raw scripts,
/// whose reads waited for 0.1 s of quiet).
const QUIET: Duration = Duration::from_millis(100);
/// After the last write, how long the connection must stay quiet and open.
const FINAL_QUIET: Duration = Duration::from_millis(200);
/// Gap between the writes of a vector whose writes were spaced.
const SPACING: Duration = Duration::from_millis(50);
/// Upper bound for any expected reply to arrive.
const REPLY_LIMIT: Duration = Duration::from_secs(5);
/// A rejected connection must be closed within this.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Frame helpers (independent of src/, straight from FACTS.md section 1)
// ---------------------------------------------------------------------------

/// Encodes one message as frames of at most 2048 bytes.
fn encode_msg(is_response: bool, uid: u32, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload.chunks(2048).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&0x0011_0000u32.to_be_bytes());
        out.push(u8::from(is_response));
        out.extend_from_slice(&uid.to_be_bytes());
        out.push(0);
        out.push(op);
        out.push(u8::from(i + 1 == chunks.len()));
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// ADD request payload: timeout, id_len, id, data.
fn add_payload(timeout_msecs: u32, id: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&timeout_msecs.to_be_bytes());
    p.extend_from_slice(&(id.len() as u32).to_be_bytes());
    p.extend_from_slice(id);
    p.extend_from_slice(data);
    p
}

// ---------------------------------------------------------------------------
// Bounded socket I/O
// ---------------------------------------------------------------------------

/// How a bounded read phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Enough bytes arrived and then nothing more for the quiet period.
    Quiet,
    /// The server closed the connection (read returned 0).
    Eof,
    /// The server reset the connection (closed it with our bytes unread).
    Reset,
    /// The hard limit passed before enough bytes arrived.
    Deadline,
    /// Another I/O error.
    Error(String),
}

impl End {
    fn closed(&self) -> bool {
        matches!(self, End::Eof | End::Reset)
    }
}

/// Reads into `got` until it holds at least `target` bytes and then `quiet`
/// passes without more data, or until EOF/error, or until `hard` passes.
fn collect(
    s: &mut UnixStream,
    got: &mut Vec<u8>,
    target: usize,
    quiet: Duration,
    hard: Duration,
) -> End {
    let deadline = Instant::now() + hard;
    let mut buf = [0u8; 65536];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return if got.len() >= target {
                End::Quiet
            } else {
                End::Deadline
            };
        }
        let remaining = deadline - now;
        let wait = if got.len() >= target {
            quiet.min(remaining)
        } else {
            remaining
        };
        let wait = wait.max(Duration::from_millis(1));
        if let Err(e) = s.set_read_timeout(Some(wait)) {
            return End::Error(format!("set_read_timeout: {e}"));
        }
        match s.read(&mut buf) {
            Ok(0) => return End::Eof,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if got.len() >= target {
                    return End::Quiet;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return End::Reset,
            Err(e) => return End::Error(e.to_string()),
        }
    }
}

/// On a fresh connection, a HAVE for an id nobody stored must be answered
/// with "not found". Returns None when it was, else what went wrong.
fn probe(socket: &Path) -> Option<String> {
    let mut s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => return Some(format!("probe connect failed: {e}")),
    };
    let _ = s.set_write_timeout(Some(REPLY_LIMIT));
    let uid = 0x0a0b_0c0d;
    let req = encode_msg(false, uid, 3, b"probe-id-never-added");
    let want = encode_msg(true, uid, 3, &[1]);
    if let Err(e) = s.write_all(&req) {
        return Some(format!("probe write failed: {e}"));
    }
    let mut got = Vec::new();
    let end = collect(&mut s, &mut got, want.len(), QUIET, REPLY_LIMIT);
    if got != want || end != End::Quiet {
        return Some(format!("probe: {} (end {end:?})", describe(&want, &got)));
    }
    None
}

// ---------------------------------------------------------------------------
// Replay plans
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A correct exchange: reply bytes must match the recording.
    Reply,
    /// Original misparsed a split frame; ours must answer normally.
    TrickleFixed,
    /// Original closed the connection silently; so must ours.
    Close,
    /// Original aborted the whole server; ours closes this connection only.
    CrashFixed,
}

/// One client write and the server bytes expected after it (before the
/// next write).
struct Step {
    send: Vec<u8>,
    expect: Vec<u8>,
}

struct Plan {
    kind: Kind,
    steps: Vec<Step>,
    /// Whether to leave a gap between writes so they arrive separately.
    spaced: bool,
    /// A problem with the vector itself (unclassified, inconsistent).
    problem: Option<String>,
}

/// Steps as recorded: each `C>` write with the `S>` bytes that followed it.
fn recorded_steps(v: &Vector) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (is_client, bytes) in &v.writes {
        if *is_client {
            steps.push(Step {
                send: bytes.clone(),
                expect: Vec::new(),
            });
        } else if let Some(last) = steps.last_mut() {
            last.expect.extend_from_slice(bytes);
        }
    }
    steps
}

fn plan_for(v: &Vector) -> Plan {
    let name = v.name.as_str();
    let has_server_bytes = v.writes.iter().any(|(c, _)| !*c);
    let mut steps = recorded_steps(v);
    let spaced = name.starts_with("raw_trickle_")
        || v.comments
            .iter()
            .any(|c| c.contains("ms apart") || c.contains("pause"));
    let mut problem = None;

    let kind = if TRICKLE_BUGS.contains(&name) {
        let full = hex(HAVE_SESSION_ID_0001);
        let sent: Vec<u8> = steps.iter().flat_map(|s| s.send.clone()).collect();
        if !full.starts_with(&sent) {
            problem = Some(format!(
                "recorded writes {} are not a prefix of the HAVE frame",
                to_hex(&sent)
            ));
        }
        // raw_trickle_12: the original dropped the connection after the
        // first 12 bytes, so the rest was never sent; send it here.
        if sent.len() < full.len() {
            steps.push(Step {
                send: full[sent.len()..].to_vec(),
                expect: Vec::new(),
            });
        }
        for s in &mut steps {
            s.expect.clear();
        }
        if let Some(last) = steps.last_mut() {
            last.expect = hex(HAVE_MISS_REPLY);
        }
        Kind::TrickleFixed
    } else if CRASHERS.contains(&name) || CLOSERS.contains(&name) {
        if has_server_bytes {
            problem = Some("listed as a closing vector but has S> bytes".into());
        }
        for s in &mut steps {
            s.expect.clear();
        }
        if CRASHERS.contains(&name) {
            Kind::CrashFixed
        } else {
            Kind::Close
        }
    } else {
        if !has_server_bytes {
            problem = Some("no S> bytes but not listed as a closing vector".into());
        }
        Kind::Reply
    };
    Plan {
        kind,
        steps,
        spaced,
        problem,
    }
}

// ---------------------------------------------------------------------------
// Running one vector
// ---------------------------------------------------------------------------

struct Outcome {
    name: String,
    kind: Kind,
    pass: bool,
    detail: String,
    millis: u128,
}

fn run_vector(v: &Vector) -> Outcome {
    let started = Instant::now();
    let plan = plan_for(v);
    let mut failures: Vec<String> = Vec::new();
    if let Some(p) = &plan.problem {
        failures.push(format!("vector: {p}"));
    }

    let mut srv = ServerProc::start(&[]);
    let mut s = connect_unix(&srv.socket, REPLY_LIMIT);

    let expected: Vec<u8> = plan.steps.iter().flat_map(|s| s.expect.clone()).collect();
    let mut got = Vec::new();
    let mut target = 0usize;
    let mut end = End::Quiet;
    let mut write_error = None;
    let n = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        if let Err(e) = s.write_all(&step.send).and_then(|_| s.flush()) {
            write_error = Some(format!("write {} failed: {e}", i + 1));
            break;
        }
        target += step.expect.len();
        let last = i + 1 == n;
        if plan.kind == Kind::Close || plan.kind == Kind::CrashFixed {
            if last {
                end = collect(&mut s, &mut got, 0, CLOSE_LIMIT, CLOSE_LIMIT);
            } else if plan.spaced {
                std::thread::sleep(SPACING);
            }
            continue;
        }
        if last {
            end = collect(&mut s, &mut got, target, FINAL_QUIET, REPLY_LIMIT);
        } else if !step.expect.is_empty() {
            end = collect(&mut s, &mut got, target, QUIET, REPLY_LIMIT);
        } else if plan.spaced {
            end = collect(&mut s, &mut got, target, SPACING, REPLY_LIMIT);
        }
        if end != End::Quiet {
            break;
        }
    }

    match plan.kind {
        Kind::Reply | Kind::TrickleFixed => {
            if let Some(e) = &write_error {
                failures.push(e.clone());
            }
            if got != expected {
                failures.push(describe(&expected, &got));
            }
            if end != End::Quiet {
                failures.push(format!(
                    "connection should stay open and quiet, ended {end:?}"
                ));
            }
        }
        Kind::Close | Kind::CrashFixed => {
            // A write error (EPIPE/ECONNRESET) is fine: the server may close
            // before it has read everything. Then the read must see EOF.
            if write_error.is_some() && !end.closed() {
                end = collect(&mut s, &mut got, 0, CLOSE_LIMIT, CLOSE_LIMIT);
            }
            if !got.is_empty() {
                failures.push(format!("expected no reply, got {}", describe(&[], &got)));
            }
            if !end.closed() {
                failures.push(format!(
                    "connection not closed within {CLOSE_LIMIT:?} (ended {end:?})"
                ));
            }
        }
    }
    drop(s);

    if !srv.is_running() {
        failures.push("dc_server process died".into());
    } else if let Some(p) = probe(&srv.socket) {
        failures.push(format!("second connection not served: {p}"));
    }
    if !srv.is_running() {
        failures.push("dc_server process died after the probe".into());
    }
    srv.kill();

    let detail = if failures.is_empty() {
        match plan.kind {
            Kind::Reply | Kind::TrickleFixed => {
                format!("{}; open after; probe ok", describe(&expected, &got))
            }
            Kind::Close | Kind::CrashFixed => format!(
                "no reply, closed ({end:?}){}; probe ok",
                write_error.map(|e| format!(", {e}")).unwrap_or_default()
            ),
        }
    } else {
        failures.join(" | ")
    };
    Outcome {
        name: v.name.clone(),
        kind: plan.kind,
        pass: failures.is_empty(),
        detail,
        millis: started.elapsed().as_millis(),
    }
}

fn replayable(v: &Vector) -> bool {
    !v.name.starts_with("proxy_") && v.writes.iter().any(|(c, _)| *c)
}

fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    for o in outcomes {
        let _ = writeln!(
            t,
            "{} {:<28} {:<12} {:>5}ms  {}",
            if o.pass { "PASS" } else { "FAIL" },
            o.name,
            format!("{:?}", o.kind),
            o.millis,
            o.detail
        );
    }
    t
}

#[test]
fn replay_vectors_against_dc_server() {
    let vectors: Vec<Vector> = all_vectors().into_iter().filter(replayable).collect();
    assert!(
        vectors.len() >= 28,
        "expected at least 28 replayable vectors, found {}",
        vectors.len()
    );
    // Every listed special vector must exist, so a rename cannot silently
    // turn a check off.
    for name in TRICKLE_BUGS.iter().chain(CRASHERS).chain(CLOSERS) {
        assert!(
            vectors.iter().any(|v| v.name == *name),
            "vector {name} is missing"
        );
    }

    // Each vector runs on a server of its own, all in parallel.
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = vectors
            .iter()
            .map(|v| (v, scope.spawn(move || run_vector(v))))
            .collect();
        handles
            .into_iter()
            .map(|(v, h)| {
                h.join().unwrap_or_else(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Outcome {
                        name: v.name.clone(),
                        kind: plan_for(v).kind,
                        pass: false,
                        detail: format!("panicked: {msg}"),
                        millis: 0,
                    }
                })
            })
            .collect()
    });

    let t = table(&outcomes);
    eprintln!("per-vector outcomes:\n{t}");
    let failed = outcomes.iter().filter(|o| !o.pass).count();
    assert!(
        failed == 0,
        "{failed} of {} vectors failed:\n{t}",
        outcomes.len()
    );
}

// ---------------------------------------------------------------------------
// Split frames on a server that has already served traffic
// ---------------------------------------------------------------------------

/// Puts traffic through the server first: the original's partial-frame bug
/// read stale buffer bytes left by earlier connections.
fn warm_up(socket: &Path) {
    let mut s = connect_unix(socket, REPLY_LIMIT);
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
    let mut s = connect_unix(socket, REPLY_LIMIT);
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
    let mut s = connect_unix(socket, REPLY_LIMIT);
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
    let srv = ServerProc::start(&[]);
    warm_up(&srv.socket);

    let mut failures = Vec::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        // A HAVE frame (29 bytes) split once at every possible offset.
        for k in 1..29usize {
            let socket = &srv.socket;
            handles.push(scope.spawn(move || {
                let uid = 1000 + k as u32;
                let msg = encode_msg(false, uid, 3, b"session-id-0001");
                let want = encode_msg(true, uid, 3, &[1]);
                let (got, end) = send_split(socket, &msg, &[k], SPACING, want.len());
                (format!("HAVE split at {k}"), want, got, end)
            }));
        }
        // The same frame one byte at a time.
        let socket = &srv.socket;
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
            let socket = &srv.socket;
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
        probe(&srv.socket).is_none(),
        "server no longer serves after split tests"
    );
}
