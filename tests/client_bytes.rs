//! The bytes `distcache::Client` puts on the wire must be the bytes the
//! original DC_CTX client library sent in the golden vectors.
//!
//! For each DC_CTX vector, the same API calls run against a fake server (a
//! UnixListener in a thread) that records every byte it receives per
//! connection and answers each request with the recorded `S>` bytes (uids
//! rewritten to the request's). Then:
//! * the client bytes of every connection equal the vector's `C>` bytes, with
//!   request uids compared modulo one offset (the first uid seen maps to the
//!   vector's first uid, later ones keep their differences);
//! * the number of connections matches (PERSISTENT: one; flags=0: one per
//!   operation);
//! * the API results match the vector's `# result: API ...` lines.
//!
//! Request uids come from one process-wide counter, so this binary holds a
//! single #[test] that runs the scenarios one after another: the uids of the
//! whole run must then be exactly 1, 2, 3, ... with no gaps (an ADD refused
//! locally for being too big uses no uid).

mod common;

use common::{describe, hex, to_hex, vectors_dir};
use distcache::internals::proto::Status;
use distcache::{Client, ClientError, Flags};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const HEADER_LEN: usize = 14;

/// Session bytes of the vectors: byte i = (i*7+k) & 0xff.
fn pattern(len: usize, k: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + k) & 0xff) as u8).collect()
}

// ---------------------------------------------------------------------------
// Vector parsing with connection boundaries and API results
// ---------------------------------------------------------------------------

/// One `# result: API DC_CTX_xxx(...) returned V[, result_used=U]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiResult {
    func: String,
    value: String,
    used: Option<String>,
}

struct Recording {
    /// Client bytes per connection, in the order the client opened them.
    client_conns: Vec<Vec<u8>>,
    /// Server answers, one per request message: consecutive `S>` writes.
    replies: Vec<Vec<u8>>,
    /// API results, without DC_CTX_new.
    results: Vec<ApiResult>,
    /// The flags DC_CTX_new was called with.
    ctx_flags: Option<u32>,
}

fn load_recording(name: &str) -> Recording {
    let path = vectors_dir().join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rec = Recording {
        client_conns: Vec::new(),
        replies: Vec::new(),
        results: Vec::new(),
        ctx_flags: None,
    };
    let mut last_was_server = false;
    for line in text.lines() {
        if line.starts_with("# --- client opened connection") {
            rec.client_conns.push(Vec::new());
        } else if let Some(h) = line.strip_prefix("C> ") {
            rec.client_conns
                .last_mut()
                .expect("C> before any connection")
                .extend_from_slice(&hex(h));
            last_was_server = false;
        } else if let Some(h) = line.strip_prefix("S> ") {
            if !last_was_server {
                rec.replies.push(Vec::new());
            }
            rec.replies
                .last_mut()
                .expect("reply")
                .extend_from_slice(&hex(h));
            last_was_server = true;
        } else if let Some(r) = line.strip_prefix("# result: API ") {
            let (func, rest) = r.split_once('(').expect("API call");
            let (args, outcome) = rest.rsplit_once(") returned ").expect("returned");
            if func == "DC_CTX_new" {
                let flags = args
                    .split("flags=")
                    .nth(1)
                    .expect("flags")
                    .trim_end_matches(')');
                rec.ctx_flags = Some(flags.parse().expect("flags value"));
            } else {
                let (value, used) = match outcome.split_once(", result_used=") {
                    Some((v, u)) => (v.to_string(), Some(u.to_string())),
                    None => (outcome.to_string(), None),
                };
                rec.results.push(ApiResult {
                    func: func.to_string(),
                    value,
                    used,
                });
            }
        }
    }
    rec
}

/// Frames as (offset, uid, complete, total frame length).
type FrameList = Vec<(usize, u32, bool, usize)>;

/// Splits a byte stream into frames: (offset, uid, complete, total frame len).
/// None when the bytes are not a whole number of frames.
fn frames(bytes: &[u8]) -> Option<FrameList> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let h = bytes.get(off..off + HEADER_LEN)?;
        let len = usize::from(u16::from_be_bytes([h[12], h[13]]));
        let uid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let total = HEADER_LEN + len;
        if off + total > bytes.len() {
            return None;
        }
        out.push((off, uid, h[11] == 1, total));
        off += total;
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Fake server
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ConnRecord {
    bytes: Vec<u8>,
    eof: bool,
    errors: Vec<String>,
}

type Conns = Arc<Mutex<Vec<ConnRecord>>>;

struct FakeServer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    conns: Conns,
    acceptor: Option<JoinHandle<()>>,
}

/// If `pending` starts with a whole request message, its length and uid.
fn take_message(pending: &[u8]) -> Option<(usize, u32)> {
    let mut off = 0;
    loop {
        let h = pending.get(off..off + HEADER_LEN)?;
        let len = usize::from(u16::from_be_bytes([h[12], h[13]]));
        if pending.len() < off + HEADER_LEN + len {
            return None;
        }
        off += HEADER_LEN + len;
        if h[11] == 1 {
            return Some((off, u32::from_be_bytes([h[5], h[6], h[7], h[8]])));
        }
    }
}

/// The recorded reply with every frame's uid replaced by `uid`.
fn with_uid(reply: &[u8], uid: u32) -> Vec<u8> {
    let mut out = reply.to_vec();
    if let Some(fs) = frames(reply) {
        for (off, _, _, _) in fs {
            out[off + 5..off + 9].copy_from_slice(&uid.to_be_bytes());
        }
    }
    out
}

fn serve_conn(
    mut s: UnixStream,
    idx: usize,
    conns: Conns,
    replies: Arc<Mutex<VecDeque<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
) {
    let note = |msg: String| conns.lock().unwrap()[idx].errors.push(msg);
    if let Err(e) = s.set_read_timeout(Some(Duration::from_millis(20))) {
        note(format!("set_read_timeout: {e}"));
    }
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => {
                conns.lock().unwrap()[idx].eof = true;
                return;
            }
            Ok(n) => {
                conns.lock().unwrap()[idx]
                    .bytes
                    .extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                note(format!("read: {e}"));
                conns.lock().unwrap()[idx].eof = true;
                return;
            }
        }
        while let Some((used, uid)) = take_message(&pending) {
            pending.drain(..used);
            let reply = replies.lock().unwrap().pop_front();
            match reply {
                Some(r) => {
                    if let Err(e) = s.write_all(&with_uid(&r, uid)) {
                        note(format!("write: {e}"));
                    }
                }
                None => note(format!("request uid {uid} has no recorded reply")),
            }
        }
    }
    conns.lock().unwrap()[idx].eof = true;
}

impl FakeServer {
    fn start(replies: Vec<Vec<u8>>) -> FakeServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).expect("bind fake server");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::default();
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let acceptor = {
            let (stop, conns) = (stop.clone(), conns.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let idx = {
                                let mut c = conns.lock().unwrap();
                                c.push(ConnRecord::default());
                                c.len() - 1
                            };
                            let (conns, replies, stop) =
                                (conns.clone(), replies.clone(), stop.clone());
                            handlers.push(std::thread::spawn(move || {
                                serve_conn(s, idx, conns, replies, stop)
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        FakeServer {
            _dir: dir,
            path,
            stop,
            conns,
            acceptor: Some(acceptor),
        }
    }

    fn address(&self) -> String {
        format!("UNIX:{}", self.path.display())
    }

    /// Waits (bounded) until every connection the client made is closed,
    /// stops the server and returns what each connection received.
    fn finish(mut self) -> Vec<ConnRecord> {
        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if self.conns.lock().unwrap().iter().all(|c| c.eof) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.conns.lock().unwrap())
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios: the API calls each vector's C program made
// ---------------------------------------------------------------------------

/// What our calls returned, in DC_CTX terms, plus extra checks.
#[derive(Default)]
struct Calls {
    results: Vec<ApiResult>,
    problems: Vec<String>,
}

impl Calls {
    fn push(&mut self, func: &str, value: i32, used: Option<String>) {
        self.results.push(ApiResult {
            func: func.to_string(),
            value: value.to_string(),
            used,
        });
    }

    fn add(&mut self, c: &Client, id: &[u8], data: &[u8], timeout: u32) -> Result<(), ClientError> {
        let r = c.add(id, data, timeout);
        self.push("DC_CTX_add_session", i32::from(r.is_ok()), None);
        r
    }

    fn add_ok(&mut self, c: &Client, id: &[u8], data: &[u8], timeout: u32) {
        if let Err(e) = self.add(c, id, data, timeout) {
            self.problems
                .push(format!("add: expected Ok, got Err({e:?})"));
        }
    }

    fn add_refused(&mut self, c: &Client, id: &[u8], data: &[u8], timeout: u32, want: Status) {
        match self.add(c, id, data, timeout) {
            Err(ClientError::Refused(s)) if s == want => {}
            other => self.problems.push(format!(
                "add: expected Err(Refused({want:?})), got {other:?}"
            )),
        }
    }

    fn get(&mut self, c: &Client, id: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        let r = c.get(id);
        match &r {
            Ok(Some(d)) => self.push("DC_CTX_get_session", 1, Some(d.len().to_string())),
            _ => self.push("DC_CTX_get_session", 0, Some("<untouched>".into())),
        }
        r
    }

    fn get_expect(&mut self, c: &Client, id: &[u8], want: &[u8]) {
        match self.get(c, id) {
            Ok(Some(d)) if d == want => {}
            Ok(Some(d)) => self
                .problems
                .push(format!("get: wrong data: {}", describe(want, &d))),
            other => self.problems.push(format!(
                "get: expected Ok(Some({} bytes)), got {other:?}",
                want.len()
            )),
        }
    }

    fn reget(&mut self, c: &Client, id: &[u8], want: &[u8]) {
        match c.reget(id) {
            Some(d) => {
                self.push("DC_CTX_reget_session", 1, Some(d.len().to_string()));
                if d != want {
                    self.problems
                        .push(format!("reget: wrong data: {}", describe(want, &d)));
                }
            }
            None => self.push("DC_CTX_reget_session", 0, Some("<untouched>".into())),
        }
    }

    fn have(&mut self, c: &Client, id: &[u8]) -> Result<bool, ClientError> {
        let r = c.have(id);
        let v = match &r {
            Ok(true) => 1,
            Ok(false) => 0,
            Err(_) => -1,
        };
        self.push("DC_CTX_has_session", v, None);
        r
    }

    fn remove(&mut self, c: &Client, id: &[u8]) -> Result<bool, ClientError> {
        let r = c.remove(id);
        self.push(
            "DC_CTX_remove_session",
            i32::from(matches!(r, Ok(true))),
            None,
        );
        r
    }
}

const SID: &[u8] = b"session-id-0001";
const MISSING: &[u8] = b"no-such-session";

fn id_0_31() -> Vec<u8> {
    (0u8..32).collect()
}

fn id_a0_a7() -> Vec<u8> {
    (0xa0u8..0xa8).collect()
}

/// Runs the calls of vector `name` on `c`, recording the results.
fn scenario(name: &str, c: &Client, calls: &mut Calls) {
    match name {
        "add_small" => calls.add_ok(c, SID, &pattern(32, 1), 60_000),
        "add_multiframe" => calls.add_ok(c, &id_0_31(), &pattern(5000, 2), 300_000),
        "add_max_payload" => {
            let data = pattern(32752, 14);
            calls.add_ok(c, &id_a0_a7(), &data, 60_000);
            calls.get_expect(c, &id_a0_a7(), &data);
        }
        "add_existing" => {
            calls.add_ok(c, SID, &pattern(16, 3), 60_000);
            calls.add_refused(c, SID, &pattern(16, 4), 60_000, Status::AddMatchingSession);
        }
        "add_idlen65" => {
            let id: Vec<u8> = (0..65).map(|i| b'A' + (i % 26) as u8).collect();
            calls.add_refused(c, &id, &pattern(16, 13), 60_000, Status::AddIdRange);
        }
        "add_timeout_max" => calls.add_ok(c, SID, &pattern(16, 12), 604_800_000),
        "add_timeout_range" => calls.add_refused(
            c,
            SID,
            &pattern(16, 11),
            604_800_001,
            Status::AddTimeoutRange,
        ),
        "add_too_big" => match calls.add(c, &id_a0_a7(), &pattern(32753, 15), 60_000) {
            Err(ClientError::TooLarge) => {}
            other => calls
                .problems
                .push(format!("add: expected Err(TooLarge), got {other:?}")),
        },
        "get_hit" => {
            let data = pattern(64, 5);
            calls.add_ok(c, SID, &data, 60_000);
            calls.get_expect(c, SID, &data);
        }
        "get_hit_large" => {
            let data = pattern(10000, 6);
            calls.add_ok(c, &id_0_31(), &data, 60_000);
            calls.get_expect(c, &id_0_31(), &data);
        }
        "get_hit_short_buffer" => {
            // The C program asked with a 10-byte buffer; the Rust API returns
            // the whole session (result_used = 100 either way).
            let data = pattern(100, 7);
            calls.add_ok(c, SID, &data, 60_000);
            calls.get_expect(c, SID, &data);
            calls.reget(c, SID, &data);
        }
        "get_hit_tiny" => {
            calls.add_ok(c, SID, &pattern(4, 8), 60_000);
            // A 4-byte reply is not session data: a miss or an error.
            if let Ok(Some(d)) = calls.get(c, SID) {
                calls.problems.push(format!(
                    "get of a 4-byte session: expected a miss/failure, got data {}",
                    to_hex(&d)
                ));
            }
            if !matches!(calls.have(c, SID), Ok(true)) {
                calls
                    .problems
                    .push("have after tiny add: expected Ok(true)".into());
            }
        }
        "get_miss" => {
            if !matches!(calls.get(c, MISSING), Ok(None)) {
                calls.problems.push("get miss: expected Ok(None)".into());
            }
        }
        "have_hit" => {
            calls.add_ok(c, SID, &pattern(16, 10), 60_000);
            if !matches!(calls.have(c, SID), Ok(true)) {
                calls.problems.push("have: expected Ok(true)".into());
            }
        }
        "have_miss" => {
            if !matches!(calls.have(c, MISSING), Ok(false)) {
                calls.problems.push("have: expected Ok(false)".into());
            }
        }
        "remove_hit" => {
            calls.add_ok(c, SID, &pattern(16, 9), 60_000);
            if !matches!(calls.remove(c, SID), Ok(true)) {
                calls.problems.push("remove: expected Ok(true)".into());
            }
        }
        "remove_miss" => {
            if !matches!(calls.remove(c, MISSING), Ok(false)) {
                calls.problems.push("remove: expected Ok(false)".into());
            }
        }
        "nonpersistent_two_ops" => {
            calls.add_ok(c, SID, &pattern(16, 16), 60_000);
            if !matches!(calls.have(c, SID), Ok(true)) {
                calls.problems.push("have: expected Ok(true)".into());
            }
        }
        other => panic!("no scenario for vector {other}"),
    }
}

const SCENARIOS: &[&str] = &[
    "add_small",
    "add_multiframe",
    "add_max_payload",
    "add_existing",
    "add_idlen65",
    "add_timeout_max",
    "add_timeout_range",
    "add_too_big",
    "get_hit",
    "get_hit_large",
    "get_hit_short_buffer",
    "get_hit_tiny",
    "get_miss",
    "have_hit",
    "have_miss",
    "remove_hit",
    "remove_miss",
    "nonpersistent_two_ops",
];

/// Runs one scenario. `next_uid` is the uid the process-wide counter must
/// hand out next (continuity across scenarios); updated on return.
fn run(name: &str, next_uid: &mut u32) -> Result<String, String> {
    let rec = load_recording(name);
    let mut problems = Vec::new();
    let flags = match rec.ctx_flags {
        Some(1) => Flags::PERSISTENT,
        Some(0) => Flags::empty(),
        other => return Err(format!("unexpected DC_CTX_new flags {other:?}")),
    };

    let fake = FakeServer::start(rec.replies.clone());
    let mut calls = Calls::default();
    match Client::new(&fake.address(), flags) {
        Ok(client) => {
            client.set_timeout(Duration::from_secs(5));
            scenario(name, &client, &mut calls);
        }
        Err(e) => problems.push(format!("Client::new failed: {e:?}")),
    }
    let conns = fake.finish();
    problems.append(&mut calls.problems);

    // API results against the `# result: API` lines.
    if calls.results != rec.results {
        let show = |r: &[ApiResult]| {
            r.iter()
                .map(|a| match &a.used {
                    Some(u) => format!("{}={} used={u}", a.func, a.value),
                    None => format!("{}={}", a.func, a.value),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        problems.push(format!(
            "API results: expected [{}] got [{}]",
            show(&rec.results),
            show(&calls.results)
        ));
    }

    for (i, c) in conns.iter().enumerate() {
        for e in &c.errors {
            problems.push(format!("fake server connection #{}: {e}", i + 1));
        }
    }

    // Connection count.
    if conns.len() != rec.client_conns.len() {
        problems.push(format!(
            "connections: expected {} got {} (flags {flags:?})",
            rec.client_conns.len(),
            conns.len()
        ));
    }

    // Uids: the first one we sent maps to the vector's first one.
    let ours_frames: Vec<Option<FrameList>> = conns.iter().map(|c| frames(&c.bytes)).collect();
    let their_first = rec
        .client_conns
        .iter()
        .find_map(|b| frames(b).and_then(|f| f.first().map(|x| x.1)));
    let our_uids: Vec<u32> = ours_frames
        .iter()
        .flatten()
        .flat_map(|f| f.iter().map(|x| x.1))
        .collect();
    let offset = match (our_uids.first(), their_first) {
        (Some(o), Some(t)) => o.wrapping_sub(t),
        _ => 0,
    };
    if let Some(&first) = our_uids.first() {
        if first != *next_uid {
            problems.push(format!(
                "first request uid {first}, but the process-wide counter should be at {next_uid}"
            ));
        }
        // Every frame of one message shares the uid, and messages count up.
        let mut last_msg = first;
        for f in ours_frames.iter().flatten() {
            for &(_, uid, complete, _) in f {
                if uid != last_msg && uid != last_msg.wrapping_add(1) {
                    problems.push(format!("uid {uid} does not follow {last_msg}"));
                }
                last_msg = uid;
                if complete {
                    *next_uid = uid.wrapping_add(1);
                }
            }
        }
    }

    // The bytes, uids normalised.
    for (i, want) in rec.client_conns.iter().enumerate() {
        let Some(c) = conns.get(i) else { break };
        let mut ours = c.bytes.clone();
        if let Some(Some(fs)) = ours_frames.get(i) {
            for &(off, uid, _, _) in fs {
                ours[off + 5..off + 9].copy_from_slice(&uid.wrapping_sub(offset).to_be_bytes());
            }
        }
        if &ours != want {
            problems.push(format!(
                "client bytes on connection #{} (uids shifted by -{offset}): {}",
                i + 1,
                describe(want, &ours)
            ));
        }
    }

    if problems.is_empty() {
        let total: usize = conns.iter().map(|c| c.bytes.len()).sum();
        Ok(format!(
            "{} connection(s), {total} bytes match, uids {:?}, results {}",
            conns.len(),
            {
                let mut u = our_uids.clone();
                u.dedup();
                u
            },
            calls
                .results
                .iter()
                .map(|r| r.value.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ))
    } else {
        Err(problems.join(" | "))
    }
}

#[test]
fn client_request_bytes_match_dc_ctx_vectors() {
    // Nothing else in this process takes uids, so the counter starts at 1.
    let mut next_uid = 1u32;
    let mut table = String::new();
    let mut failed = 0;
    for name in SCENARIOS {
        let started = Instant::now();
        let outcome = run(name, &mut next_uid);
        let ms = started.elapsed().as_millis();
        let (tag, detail) = match outcome {
            Ok(d) => ("PASS", d),
            Err(d) => {
                failed += 1;
                ("FAIL", d)
            }
        };
        let _ = writeln!(table, "{tag} {name:<22} {ms:>5}ms  {detail}");
    }
    eprintln!("client request bytes per vector:\n{table}");
    assert!(
        failed == 0,
        "{failed} of {} scenarios failed:\n{table}",
        SCENARIOS.len()
    );
}
