//! Replaying the golden wire vectors (tests/data/vectors, captured from the
//! original C dc_server) against any server: our `dc_server`
//! (tests/vectors.rs) or a program built on the DC_SERVER API
//! (tests/c_api.rs).
//!
//! * Correct exchanges: the concatenated server bytes must equal the
//!   concatenated recorded `S>` bytes, and the connection stays open.
//! * Bad input the original answered by closing the connection: no reply
//!   bytes, EOF within 2 s, the process keeps running and a second, fresh
//!   connection is served.
//! * Where the original crashed (`raw_garbage_http`, `raw_proto_mismatch`:
//!   abort() of the whole server) the server must only close that one
//!   connection, without a reply.
//! * Where the original misparsed a frame split across writes
//!   (`raw_trickle_8`, `raw_trickle_12`, `raw_trickle_25`) the server must
//!   answer exactly as it answers the unsplit request.
//!
//! Every vector gets a fresh server of its own (from a [`Starter`]), so no
//! state leaks between them. `proxy_*` vectors (dc_client) are not
//! replayed here.
#![allow(dead_code)]

use crate::common::{describe, hex, to_hex, Vector};
use crate::dc_server::DcServer;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// A connection to where a server listens (crate::dc_server::Endpoint)
// ---------------------------------------------------------------------------

pub use crate::dc_server::Endpoint;

impl Endpoint {
    /// Connects, with read and write timeouts of `timeout`.
    pub fn connect(&self, timeout: Duration) -> io::Result<Conn> {
        let c = match self {
            Endpoint::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
            Endpoint::Tcp(a) => Conn::Tcp(TcpStream::connect_timeout(a, timeout)?),
        };
        c.set_read_timeout(Some(timeout))?;
        c.set_write_timeout(Some(timeout))?;
        Ok(c)
    }
}

/// A stream to a server, over a UNIX socket or TCP.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_write_timeout(t),
            Conn::Tcp(s) => s.set_write_timeout(t),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// A running server that a vector is replayed against; dropping it stops
/// the server (by its PID).
pub trait Target {
    /// Where it listens.
    fn endpoint(&self) -> Endpoint;
    /// Whether its process is still running.
    fn is_running(&mut self) -> bool;
}

/// A dc_server on a UNIX socket (every server the replays start is one).
impl Target for DcServer {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.socket().to_path_buf())
    }

    fn is_running(&mut self) -> bool {
        DcServer::is_running(self)
    }
}

/// Starts a fresh server, ready to accept connections.
pub type Starter<'a> = dyn Fn() -> Box<dyn Target> + Sync + 'a;

// ---------------------------------------------------------------------------
// Vectors and frames
// ---------------------------------------------------------------------------

/// A HAVE request for 'session-id-0001' with uid 1, as in the raw vectors.
pub const HAVE_SESSION_ID_0001: &str = "001100000000000001000301000f73657373696f6e2d69642d30303031";
/// The correct reply to it on an empty server: HAVE, uid 1, 0x01 (not found).
pub const HAVE_MISS_REPLY: &str = "001100000100000001000301000101";

/// Vectors where the original misparsed a frame that arrived in pieces
/// (FACTS.md, "Partial-frame decoding bug"). Ours must answer normally.
pub const TRICKLE_BUGS: &[&str] = &["raw_trickle_8", "raw_trickle_12", "raw_trickle_25"];

/// Vectors where the original aborted the whole server (version mismatch).
/// Ours must close that connection only, with no reply.
pub const CRASHERS: &[&str] = &["raw_garbage_http", "raw_proto_mismatch"];

/// Operation 4, which the original did not know and closed the connection
/// on: ours serves it as TAKE, and on an empty server finds nothing.
pub const TAKE_SERVED: &[&str] = &["raw_bad_operation"];
/// The TAKE request for 'session-id-0001' (uid 1) of those vectors.
pub const TAKE_SESSION_ID_0001: &str = "001100000000000001000401000f73657373696f6e2d69642d30303031";
/// Its reply on an empty server: TAKE, uid 1, 0x01 (not found).
pub const TAKE_MISS_REPLY: &str = "001100000100000001000401000101";

/// Bad input the original answered by closing the connection silently.
pub const CLOSERS: &[&str] = &[
    "raw_add_short_payload",
    "raw_bad_op_class",
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
pub const QUIET: Duration = Duration::from_millis(100);
/// After the last write, how long the connection must stay quiet and open.
pub const FINAL_QUIET: Duration = Duration::from_millis(200);
/// Gap between the writes of a vector whose writes were spaced.
pub const SPACING: Duration = Duration::from_millis(50);
/// Upper bound for any expected reply to arrive.
pub const REPLY_LIMIT: Duration = Duration::from_secs(5);
/// A rejected connection must be closed within this.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Frame helpers (independent of src/, straight from FACTS.md section 1)
// ---------------------------------------------------------------------------

/// Encodes one message as frames of at most 2048 bytes.
pub fn encode_msg(is_response: bool, uid: u32, op: u8, payload: &[u8]) -> Vec<u8> {
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
pub fn add_payload(timeout_msecs: u32, id: &[u8], data: &[u8]) -> Vec<u8> {
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
pub enum End {
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
    pub fn closed(&self) -> bool {
        matches!(self, End::Eof | End::Reset)
    }
}

/// Reads into `got` until it holds at least `target` bytes and then `quiet`
/// passes without more data, or until EOF/error, or until `hard` passes.
pub fn collect(
    s: &mut Conn,
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
pub fn probe(ep: &Endpoint) -> Option<String> {
    let mut s = match ep.connect(REPLY_LIMIT) {
        Ok(s) => s,
        Err(e) => return Some(format!("probe connect failed: {e}")),
    };
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
pub enum Kind {
    /// A correct exchange: reply bytes must match the recording.
    Reply,
    /// Original misparsed a split frame; ours must answer normally.
    TrickleFixed,
    /// Original closed the connection on an unknown operation; ours serves
    /// it (TAKE) and must answer it.
    TakeServed,
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

pub struct Plan {
    pub kind: Kind,
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

pub fn plan_for(v: &Vector) -> Plan {
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
    } else if TAKE_SERVED.contains(&name) {
        let sent: Vec<u8> = steps.iter().flat_map(|s| s.send.clone()).collect();
        if sent != hex(TAKE_SESSION_ID_0001) {
            problem = Some(format!(
                "recorded writes {} are not the TAKE frame",
                to_hex(&sent)
            ));
        }
        for s in &mut steps {
            s.expect.clear();
        }
        if let Some(last) = steps.last_mut() {
            last.expect = hex(TAKE_MISS_REPLY);
        }
        Kind::TakeServed
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

pub struct Outcome {
    pub name: String,
    pub kind: Kind,
    pub pass: bool,
    pub detail: String,
    pub millis: u128,
}

/// Replays one vector against a fresh server from `start`.
pub fn run_vector(v: &Vector, start: &Starter<'_>) -> Outcome {
    let started = Instant::now();
    let plan = plan_for(v);
    let mut failures: Vec<String> = Vec::new();
    if let Some(p) = &plan.problem {
        failures.push(format!("vector: {p}"));
    }

    let mut srv = start();
    let ep = srv.endpoint();
    let mut s = match ep.connect(REPLY_LIMIT) {
        Ok(s) => s,
        Err(e) => {
            return Outcome {
                name: v.name.clone(),
                kind: plan.kind,
                pass: false,
                detail: format!("connect to {ep:?}: {e}"),
                millis: started.elapsed().as_millis(),
            }
        }
    };

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
        Kind::Reply | Kind::TrickleFixed | Kind::TakeServed => {
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
        failures.push("the server process died".into());
    } else if let Some(p) = probe(&ep) {
        failures.push(format!("second connection not served: {p}"));
    }
    if !srv.is_running() {
        failures.push("the server process died after the probe".into());
    }
    drop(srv);

    let detail = if failures.is_empty() {
        match plan.kind {
            Kind::Reply | Kind::TrickleFixed | Kind::TakeServed => {
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

pub fn replayable(v: &Vector) -> bool {
    !v.name.starts_with("proxy_") && v.writes.iter().any(|(c, _)| *c)
}

pub fn table(outcomes: &[Outcome]) -> String {
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

/// Every listed special vector must exist among `vectors`, so that a
/// rename cannot silently turn a check off.
pub fn check_special_vectors(vectors: &[Vector]) {
    for name in TRICKLE_BUGS
        .iter()
        .chain(CRASHERS)
        .chain(CLOSERS)
        .chain(TAKE_SERVED)
    {
        assert!(
            vectors.iter().any(|v| v.name == *name),
            "vector {name} is missing"
        );
    }
}

/// Replays every vector, each against a fresh server from `start`, all in
/// parallel; a vector whose replay panicked counts as failed.
pub fn replay_all(vectors: &[Vector], start: &Starter<'_>) -> Vec<Outcome> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = vectors
            .iter()
            .map(|v| (v, scope.spawn(move || run_vector(v, start))))
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
    })
}

/// Prints the per-vector table and fails if any vector failed.
pub fn assert_all_passed(what: &str, outcomes: &[Outcome]) {
    let t = table(outcomes);
    eprintln!("per-vector outcomes ({what}):\n{t}");
    let failed = outcomes.iter().filter(|o| !o.pass).count();
    assert!(
        failed == 0,
        "{what}: {failed} of {} vectors failed:\n{t}",
        outcomes.len()
    );
}
