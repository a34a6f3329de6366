//! One live dc_server under abuse from many sides at once: random bytes,
//! every `raw_*` golden vector, truncated frames, oversized lengths, other
//! protocol versions, HTTP and TLS, thousands of connections that send
//! nothing, and a flood of valid pipelined requests from one client.
//! Meanwhile well-behaved clients (the library's `Client`, with a timeout)
//! keep getting correct answers within their timeout. Every bad connection
//! is closed by the server (EOF within a bound) without a reply; the silent
//! ones stay open and are still served when they speak; the server never
//! exits and still answers at the end.

mod common;
mod dc_server;
mod live;
mod replay;

use common::{all_vectors, Vector};
use dc_server::DcServer;
use distcache::{Client, Flags};
use live::{ask, connect, read_to_close, request, Answer};
use replay::{add_payload, encode_msg, Endpoint, Target, CLOSE_LIMIT};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Connections that connect and send nothing. Each costs the test and the
/// server one descriptor; fewer are used when the
/// open-file limit is too low for that many (see `silent_count`).
const SILENT: usize = 2000;
/// The well-behaved clients' timeout (the library's default).
const GOOD_TIMEOUT: Duration = Duration::from_secs(5);
/// The well-behaved clients go on at least this long.
const MIN_RUN: Duration = Duration::from_secs(3);
const IO_LIMIT: Duration = Duration::from_secs(5);
/// The one `raw_*` vector that leaves a session stored (`session-id-0001`).
const STORES_A_SESSION: &str = "raw_zero_len_final_frame";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The shared server as a replay target: replaying a vector must not stop
/// it, and "running" means its process is alive and not a zombie.
struct Shared {
    socket: PathBuf,
    pid: u32,
}

impl Target for Shared {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.socket.clone())
    }
    fn is_running(&mut self) -> bool {
        process_alive(self.pid)
    }
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s[s.rfind(')')? + 2..].chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// How many silent connections this process and the server can afford:
/// both get the same hard limit on open files; keep 400 for the rest.
fn silent_count() -> usize {
    let limit = distcache::internals::nal::raise_fd_limit().unwrap_or(1024);
    let affordable = usize::try_from(limit.saturating_sub(400)).unwrap_or(SILENT);
    SILENT.min(affordable)
}

/// Sends `bytes` on a fresh connection (optionally half-closing after),
/// then expects the server to close it without a byte of reply.
fn expect_closed(path: &Path, what: &str, bytes: &[u8], half_close: bool) -> Result<(), String> {
    let mut s = connect(path, IO_LIMIT).map_err(|e| format!("{what}: connect: {e}"))?;
    // The server may close before it has read everything: a failed write
    // is fine as long as the close follows.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    match read_to_close(&mut s, CLOSE_LIMIT) {
        Ok(got) if got.is_empty() => Ok(()),
        Ok(got) => Err(format!(
            "{what}: a reply of {} bytes: {got:02x?}",
            got.len()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn random_garbage(path: &Path, failures: &Mutex<Vec<String>>) {
    let mut rng = Rng(0x00ab_cdef_1234_5678);
    for i in 0..150 {
        let len = 14 + rng.below(4096);
        let mut bytes = rng.bytes(len);
        // A first byte other than 0 makes the protocol level wrong, so the
        // bytes cannot be (the start of) a valid request by chance.
        bytes[0] |= 0x80;
        if let Err(e) = expect_closed(path, &format!("random #{i}"), &bytes, i % 2 == 0) {
            failures.lock().unwrap().push(e);
        }
    }
}

fn truncated_frames(path: &Path, failures: &Mutex<Vec<String>>) {
    let add = encode_msg(
        false,
        9,
        0,
        &add_payload(60_000, b"truncated-add", &vec![0x5a; 3000]),
    );
    let have = request(3, 8, b"truncated-have");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [1, 4, 5, 9, 13, 14, 15, have.len() - 1] {
        cases.push((format!("HAVE cut at {cut}"), have[..cut].to_vec()));
    }
    for cut in [13, 14, 100, 2061, 2062, 2063, 2075, 2076, add.len() - 1] {
        cases.push((format!("2-frame ADD cut at {cut}"), add[..cut].to_vec()));
    }
    for (what, bytes) in cases {
        if let Err(e) = expect_closed(path, &what, &bytes, true) {
            failures.lock().unwrap().push(e);
        }
    }
}

/// A frame header, built by hand, with any fields.
fn header(
    level: u32,
    is_response: u8,
    uid: u32,
    class: u8,
    op: u8,
    complete: u8,
    len: u16,
) -> Vec<u8> {
    let mut h = level.to_be_bytes().to_vec();
    h.push(is_response);
    h.extend_from_slice(&uid.to_be_bytes());
    h.extend_from_slice(&[class, op, complete]);
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn bad_lengths_versions_and_protocols(path: &Path, failures: &Mutex<Vec<String>>) {
    let level = 0x0011_0000;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [2049u16, 4096, 0x7fff, 0xffff] {
        let mut f = header(level, 0, 1, 0, 1, 1, len);
        f.extend_from_slice(&vec![0; usize::from(len).min(2100)]);
        cases.push((format!("data_len {len}"), f));
    }
    // 17 frames of 2048 bytes: more than 16 frames and 32768 bytes.
    let mut long = Vec::new();
    for i in 0..17u8 {
        long.extend(header(level, 0, 2, 0, 0, u8::from(i == 16), 2048));
        long.extend_from_slice(&[i; 2048]);
    }
    cases.push(("17 frames".into(), long));
    for other in [0x0012_0000u32, 0x0010_0000, 0xffff_0000, 0x1100_0000] {
        let mut f = header(other, 0, 3, 0, 3, 1, 2);
        f.extend_from_slice(b"id");
        cases.push((format!("protocol level {other:08x}"), f));
    }
    cases.push((
        "HTTP GET".into(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: abuse\r\n\r\n".to_vec(),
    ));
    cases.push((
        "HTTP POST".into(),
        b"POST /cache HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
    ));
    // The start of a TLS ClientHello.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x42; 500]);
    cases.push(("TLS ClientHello".into(), hello));
    for (what, bytes) in cases {
        for half_close in [false, true] {
            if let Err(e) = expect_closed(path, &what, &bytes, half_close) {
                failures.lock().unwrap().push(e);
            }
        }
    }
    // An ADD whose id length is huge is answered (0x64, corrupt), not closed.
    let mut s = connect(path, IO_LIMIT).expect("connect");
    let mut payload = 60_000u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&u32::MAX.to_be_bytes());
    payload.extend_from_slice(b"rest");
    s.write_all(&request(0, 4, &payload)).unwrap();
    let want = encode_msg(true, 4, 0, &[0x64]);
    let mut got = vec![0u8; want.len()];
    match s.read_exact(&mut got) {
        Ok(()) if got == want => {}
        other => failures
            .lock()
            .unwrap()
            .push(format!("ADD with id_len 2^32-1: {other:?} {got:02x?}")),
    }
}

/// One client pipelining batches of valid requests on its own ids and
/// checking every reply, until `done`.
fn flood(path: &Path, done: &AtomicBool, count: &AtomicU64) -> Result<(), String> {
    let mut s = connect(path, IO_LIMIT).map_err(|e| e.to_string())?;
    let mut batch_no = 0u32;
    while !done.load(Ordering::Relaxed) {
        let mut out = Vec::new();
        let mut want = Vec::new();
        for i in 0..64u32 {
            let uid = batch_no.wrapping_mul(1000).wrapping_add(i * 4);
            let id = format!("flood-{batch_no}-{i}").into_bytes();
            let data = format!("flood data {batch_no} {i}").into_bytes();
            out.extend(request(0, uid, &add_payload(60_000, &id, &data)));
            want.extend(encode_msg(true, uid, 0, &[0]));
            out.extend(request(1, uid + 1, &id));
            want.extend(encode_msg(true, uid + 1, 1, &data));
            out.extend(request(2, uid + 2, &id));
            want.extend(encode_msg(true, uid + 2, 2, &[0]));
            out.extend(request(3, uid + 3, &id));
            want.extend(encode_msg(true, uid + 3, 3, &[1]));
        }
        s.write_all(&out).map_err(|e| format!("flood write: {e}"))?;
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got)
            .map_err(|e| format!("flood read, batch {batch_no}: {e}"))?;
        if got != want {
            return Err(format!("flood: wrong replies in batch {batch_no}"));
        }
        count.fetch_add(256, Ordering::Relaxed);
        batch_no += 1;
    }
    Ok(())
}

/// A well-behaved client: add, get, have, remove of its own sessions, every
/// answer right and within the timeout, until `done`.
fn good_client(address: &str, flags: Flags, name: &str, done: &AtomicBool) -> Result<u64, String> {
    let client = Client::new(address, flags).map_err(|e| format!("{name}: {e}"))?;
    client.set_timeout(GOOD_TIMEOUT);
    let bound = GOOD_TIMEOUT + Duration::from_secs(1);
    let mut ops = 0u64;
    let mut i = 0u32;
    while !done.load(Ordering::Relaxed) {
        let id = format!("{name}-{i}").into_bytes();
        let data = vec![(i % 251) as u8; 100 + (i as usize * 37) % 3000];
        let check = |what: &str, start: Instant, ok: bool| {
            let took = start.elapsed();
            if !ok || took > bound {
                Err(format!("{name} {what} #{i}: ok={ok} after {took:?}"))
            } else {
                Ok(())
            }
        };
        let t = Instant::now();
        let r = client.add(&id, &data, 60_000);
        check(&format!("add {r:?}"), t, r.is_ok())?;
        let t = Instant::now();
        let r = client.get(&id);
        check("get", t, matches!(&r, Ok(Some(d)) if *d == data))?;
        let t = Instant::now();
        let r = client.have(&id);
        check("have", t, matches!(r, Ok(true)))?;
        let t = Instant::now();
        let r = client.remove(&id);
        check("remove", t, matches!(r, Ok(true)))?;
        ops += 4;
        i += 1;
    }
    Ok(ops)
}

/// Starts two well-behaved clients in `scope`, a persistent one and one
/// that connects for each operation, named after `prefix`, until `done`.
fn good_clients<'s>(
    scope: &'s thread::Scope<'s, '_>,
    address: &'s str,
    prefix: &str,
    done: &'s AtomicBool,
) -> Vec<thread::ScopedJoinHandle<'s, Result<u64, String>>> {
    [
        (Flags::PERSISTENT | Flags::PERSISTENT_RETRY, "persistent"),
        (Flags::empty(), "per-op"),
    ]
    .into_iter()
    .map(|(flags, kind)| {
        let name = format!("{prefix}-{kind}");
        scope.spawn(move || good_client(address, flags, &name, done))
    })
    .collect()
}

#[test]
fn a_live_server_survives_abuse_and_keeps_serving() {
    let silent_n = silent_count();
    let maxconns = (silent_n + 600).to_string();
    let mut srv = DcServer::start(&["-sessions", "1000000", "-maxconns", &maxconns]);
    let path = srv.socket().to_path_buf();
    let address = srv.address();
    let target = Shared {
        socket: path.clone(),
        pid: srv.pid(),
    };
    let vectors: Vec<Vector> = all_vectors()
        .into_iter()
        .filter(|v| v.name.starts_with("raw_"))
        .collect();
    assert!(vectors.len() >= 25, "{} raw vectors", vectors.len());

    let failures = Mutex::new(Vec::<String>::new());
    let abusers_done = AtomicBool::new(false);
    let stop_good = AtomicBool::new(false);
    let flood_count = AtomicU64::new(0);
    let started = Instant::now();
    let mut silent: Vec<UnixStream> = Vec::new();
    let mut good_ops = Vec::new();
    let mut outcomes = Vec::new();
    thread::scope(|scope| {
        let good = good_clients(scope, &address, "good", &stop_good);
        let flooder = scope.spawn(|| flood(&path, &stop_good, &flood_count));
        let silent_opener = scope.spawn(|| {
            (0..silent_n)
                .map(|i| {
                    connect(&path, IO_LIMIT)
                        .unwrap_or_else(|e| panic!("silent connection {i}: {e}"))
                })
                .collect::<Vec<_>>()
        });
        let abusers = vec![
            scope.spawn(|| random_garbage(&path, &failures)),
            scope.spawn(|| truncated_frames(&path, &failures)),
            scope.spawn(|| bad_lengths_versions_and_protocols(&path, &failures)),
        ];
        // All at once, but the one vector that stores a session last: the
        // others ask for that id (or add it for 0 ms) and expect it absent.
        let start = || {
            Box::new(Shared {
                socket: target.socket.clone(),
                pid: target.pid,
            }) as Box<dyn Target>
        };
        let (last, first): (Vec<Vector>, Vec<Vector>) = vectors
            .iter()
            .cloned()
            .partition(|v| v.name == STORES_A_SESSION);
        assert_eq!(last.len(), 1, "vector {STORES_A_SESSION} is missing");
        outcomes = replay::replay_all(&first, &start);
        outcomes.extend(replay::replay_all(&last, &start));
        for a in abusers {
            if let Err(e) = a.join() {
                std::panic::resume_unwind(e);
            }
        }
        silent = silent_opener.join().expect("silent connections");
        abusers_done.store(true, Ordering::Relaxed);
        let rest = MIN_RUN.saturating_sub(started.elapsed());
        thread::sleep(rest);
        stop_good.store(true, Ordering::Relaxed);
        for g in good {
            match g.join().expect("good client thread") {
                Ok(ops) => good_ops.push(ops),
                Err(e) => failures.lock().unwrap().push(e),
            }
        }
        if let Err(e) = flooder.join().expect("flood thread") {
            failures.lock().unwrap().push(e);
        }
    });
    replay::assert_all_passed("dc_server under abuse", &outcomes);
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} silent connections; good clients: {good_ops:?} operations; flood: {} requests; \
         server: {} threads, VmRSS {} kB, VmHWM {} kB, in {:?}",
        silent.len(),
        flood_count.load(Ordering::Relaxed),
        srv.threads(),
        srv.status_kb("VmRSS"),
        srv.status_kb("VmHWM"),
        started.elapsed()
    );
    assert!(good_ops.iter().all(|&n| n >= 8), "{good_ops:?}");
    assert!(flood_count.load(Ordering::Relaxed) >= 256);
    // Connections are not threads: a few workers serve them all.
    assert!(srv.threads() <= 16, "{} threads", srv.threads());

    // The silent connections are still open, and served when they speak.
    assert_eq!(silent.len(), silent_n);
    for s in &silent {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        match (&*s).read(&mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a silent connection was closed or answered: {other:?}"),
        }
        s.set_nonblocking(false).unwrap();
    }
    for (i, s) in silent.iter_mut().step_by(97).enumerate() {
        assert_eq!(ask(s, i as u32), Answer::Served, "silent connection {i}");
    }
    drop(silent);
    assert!(srv.is_running(), "the server exited");
    let mut fresh = connect(srv.socket(), IO_LIMIT).unwrap();
    assert_eq!(ask(&mut fresh, 1), Answer::Served);
    assert!(srv.is_running(), "the server exited");
    assert!(
        srv.log_lines("connections refused").is_empty(),
        "{}",
        srv.stderr()
    );
}

/// Idle connections: each asks once, then stays silent.
const IDLE: usize = 400;
/// Connections that send half a frame header and stall.
const STALLED: usize = 4000;
/// Stalled connections opened between two checks that a new client is
/// served.
const STALLED_BATCH: usize = 250;
/// The connection limit of the lock-out test: the old default, far below
/// what the idle and stalled connections would hold.
const LOCKOUT_MAXCONNS: usize = 1024;

/// Garbage on fresh connections, over and over, until `done`; each must be
/// closed without a reply.
fn garbage_stream(path: &Path, done: &AtomicBool, failures: &Mutex<Vec<String>>) -> u64 {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut sent = 0;
    while !done.load(Ordering::Relaxed) {
        let len = 14 + rng.below(512);
        let mut bytes = rng.bytes(len);
        bytes[0] |= 0x80;
        if let Err(e) = expect_closed(path, &format!("garbage #{sent}"), &bytes, sent % 2 == 0) {
            failures.lock().unwrap().push(e);
        }
        sent += 1;
    }
    sent
}

/// A flood of idle and stalled connections, far beyond `-maxconns`, and a
/// stream of garbage cannot lock out clients that behave: each new
/// connection takes the place of the longest idle or stalled one, and the
/// persistent and the per-operation client get every answer right.
#[test]
fn idle_and_stalled_connections_cannot_lock_out_good_clients() {
    let limit = distcache::internals::nal::raise_fd_limit().unwrap_or(1024);
    // This process holds every connection it opens.
    let stalled_n = STALLED.min(
        usize::try_from(limit)
            .unwrap_or(0)
            .saturating_sub(IDLE + 200),
    );
    assert!(
        IDLE + stalled_n > 2 * LOCKOUT_MAXCONNS,
        "the open-file limit ({limit}) is too low for this test: raise it with \
         `ulimit -Hn 8192` (or as root) and run it again"
    );
    let maxconns = LOCKOUT_MAXCONNS.to_string();
    let mut srv = DcServer::start(&["-sessions", "100000", "-maxconns", &maxconns]);
    let path = srv.socket().to_path_buf();
    let address = srv.address();
    let failures = Mutex::new(Vec::<String>::new());
    let stop_good = AtomicBool::new(false);
    let started = Instant::now();
    let mut good_ops = Vec::new();
    let mut garbage_sent = 0;
    let mut held = Vec::new();
    thread::scope(|scope| {
        let good = good_clients(scope, &address, "lockout", &stop_good);
        let garbage = scope.spawn(|| garbage_stream(&path, &stop_good, &failures));
        // The idle ones first, then the stalled ones, as fast as they come.
        for i in 0..IDLE {
            let mut s = connect(&path, IO_LIMIT).unwrap_or_else(|e| panic!("idle {i}: {e}"));
            assert_eq!(ask(&mut s, i as u32), Answer::Served, "idle connection {i}");
            held.push(s);
        }
        let half = header(0x0011_0000, 0, 1, 0, 1, 1, 0);
        for i in 0..stalled_n {
            let mut s = connect(&path, IO_LIMIT).unwrap_or_else(|e| panic!("stalled {i}: {e}"));
            // A server that already displaced it may have closed it.
            let _ = s.write_all(&half[..7]);
            held.push(s);
            if i % STALLED_BATCH == STALLED_BATCH - 1 {
                // A new client is served in the middle of the flood. It is
                // accepted after every connection queued before it, so the
                // flood stays within the listen backlog (a full backlog
                // fails a UNIX connect at once, whoever makes it).
                let mut probe = connect(&path, IO_LIMIT).expect("a client during the flood");
                assert_eq!(
                    ask(&mut probe, i as u32),
                    Answer::Served,
                    "a client after {i}"
                );
            }
        }
        let rest = MIN_RUN.saturating_sub(started.elapsed());
        thread::sleep(rest.max(Duration::from_secs(1)));
        stop_good.store(true, Ordering::Relaxed);
        for g in good {
            match g.join().expect("good client thread") {
                Ok(ops) => good_ops.push(ops),
                Err(e) => failures.lock().unwrap().push(e),
            }
        }
        garbage_sent = garbage.join().expect("garbage thread");
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{IDLE} idle and {stalled_n} stalled connections at -maxconns {LOCKOUT_MAXCONNS}; \
         good clients: {good_ops:?} operations; {garbage_sent} garbage connections; \
         server: {} threads, VmRSS {} kB, in {:?}",
        srv.threads(),
        srv.status_kb("VmRSS"),
        started.elapsed()
    );
    assert_eq!(good_ops.len(), 2);
    assert!(good_ops.iter().all(|&n| n >= 8), "{good_ops:?}");
    assert!(garbage_sent >= 10, "{garbage_sent} garbage connections");
    // Most of the flood was displaced; the server says so once per
    // episode, and an episode lasts at least a second.
    let displacing = "connections displaced: at the -maxconns limit";
    assert!(srv.wait_for_log(displacing, IO_LIMIT), "{}", srv.stderr());
    let episodes = srv.log_lines(displacing).len();
    let most = 1 + started.elapsed().as_secs() as usize;
    assert!(episodes <= most, "{episodes} episodes: {}", srv.stderr());
    assert!(
        srv.log_lines("connections refused").is_empty(),
        "{}",
        srv.stderr()
    );
    drop(held);
    assert!(srv.is_running(), "the server exited");
}
