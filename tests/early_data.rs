//! Why TAKE exists: TLS 1.3 early data replayed to two servers of a farm.
//!
//! examples/c/tls_server.c (built against the staged install, OpenSSL and
//! our libdistcache) keeps its sessions in one real dc_server through
//! OpenSSL's external cache callbacks, with stateful tickets, early data
//! and anti-replay on. Two instances of it run on the same cache. Every
//! round:
//! 1. a full handshake with the first instance (`openssl s_client
//!    -sess_out`) makes a fresh session, stored in the cache (a ticket is
//!    single-use, so each round needs its own);
//! 2. `openssl s_client -sess_in ... -early_data FILE` sends its first
//!    flight (the ClientHello and the early data) to a relay in this test,
//!    which records it: what an attacker on the path would record;
//! 3. the relay sends those same bytes to both instances at the same
//!    moment, and each instance says (a line on its standard output)
//!    whether it accepted the early data, as soon as it has read it.
//!
//! With take in the get callback, at most one instance accepts the early
//! data in any round: asserted. With a plain get (and the remove OpenSSL
//! makes afterwards), the rounds in which both accepted the same early
//! data are counted and printed: the window that take closes. That count
//! depends on timing and is not asserted.

#[allow(dead_code)] // shared with the C harness; a part is used here
mod c_support;
mod dc_server;
mod require;

use c_support::{compile_with, staged_dc_server, Link, Proc};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Rounds per mode: enough to see the window, short enough for the test
/// to stay well under a minute.
const ROUNDS: usize = 50;
const LIMIT: Duration = Duration::from_secs(10);
/// Once the first flight has started to arrive, this much quiet ends it.
const QUIET: Duration = Duration::from_millis(100);

struct Setup {
    dir: tempfile::TempDir,
    prog: PathBuf,
    openssl: PathBuf,
}

fn setup() -> Setup {
    let openssl = require::tool("openssl", "openssl");
    assert!(
        Path::new("/usr/include/openssl/ssl.h").exists(),
        "OpenSSL's headers are missing, and this test builds a program against \
         them: run `apt-get install -y libssl-dev` as root"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_with(
        "examples/c/tls_server.c",
        dir.path(),
        "tls_server",
        Link::Distcache,
        &["-lssl".into(), "-lcrypto".into()],
    );
    // A certificate of our own for the servers.
    let mut req = Command::new(&openssl);
    req.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"));
    Proc::spawn("openssl req", &mut req, false)
        .finish(LIMIT)
        .assert_ok();
    std::fs::write(dir.path().join("early.txt"), "GET /transfer?amount=100\n")
        .expect("early data file");
    Setup { dir, prog, openssl }
}

/// One instance of the example server, and its port.
fn instance(s: &Setup, cache: &str, mode: &str, name: &str) -> (Proc, u16) {
    let mut cmd = Command::new(&s.prog);
    cmd.arg(cache)
        .arg(s.dir.path().join("cert.pem"))
        .arg(s.dir.path().join("key.pem"))
        .args(["0", mode]);
    let mut p = Proc::spawn(name, &mut cmd, false);
    let ready = p.wait_line_prefix("READY ", LIMIT);
    let port = ready["READY ".len()..].parse().expect("a port number");
    (p, port)
}

/// The TLS records in `bytes` that are whole: their content types.
fn record_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while let [kind, _, _, hi, lo, body @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        if body.len() < len {
            break;
        }
        types.push(*kind);
        rest = &body[len..];
    }
    types
}

/// Runs `s_client` against the relay and records its first flight: the
/// ClientHello and the early data that follows it, unanswered.
fn record_first_flight(s: &Setup, session: &Path) -> Vec<u8> {
    let relay = TcpListener::bind("127.0.0.1:0").expect("relay");
    let port = relay.local_addr().expect("relay address").port();
    relay.set_nonblocking(true).expect("nonblocking");
    let mut cmd = Command::new(&s.openssl);
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-sess_in")
        .arg(session)
        .arg("-early_data")
        .arg(s.dir.path().join("early.txt"))
        .arg("-ign_eof");
    let mut client = Proc::spawn("openssl s_client (recorded)", &mut cmd, false);
    let start = Instant::now();
    let mut conn = loop {
        match relay.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < LIMIT, "s_client did not connect");
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("relay accept: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    let mut flight = Vec::new();
    let mut buf = [0u8; 16384];
    // Read until the early data is in (a record of type 23 after the
    // ClientHello) and the client has gone quiet.
    loop {
        let wait = if record_types(&flight).contains(&23) {
            QUIET
        } else {
            LIMIT
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(1))
        };
        conn.set_read_timeout(Some(wait)).expect("timeout");
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => flight.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("relay read: {e}"),
        }
    }
    drop(conn);
    client.kill();
    let types = record_types(&flight);
    assert!(
        types.first() == Some(&22) && types.contains(&23),
        "the first flight holds no ClientHello followed by early data: record types {types:?}"
    );
    flight
}

/// What one round came to: how many instances accepted the early data.
fn replay_to_both(flight: &[u8], a: (&mut Proc, u16), b: (&mut Proc, u16)) -> usize {
    let barrier = Arc::new(Barrier::new(2));
    let conns: Vec<TcpStream> = thread::scope(|s| {
        let sends: Vec<_> = [a.1, b.1]
            .into_iter()
            .map(|port| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    c.set_nodelay(true).expect("nodelay");
                    barrier.wait();
                    c.write_all(flight).expect("replay");
                    c
                })
            })
            .collect();
        sends
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect()
    });
    let verdicts = [
        a.0.wait_line_prefix("EARLY ", LIMIT),
        b.0.wait_line_prefix("EARLY ", LIMIT),
    ];
    // The replayed handshakes cannot complete: end them.
    drop(conns);
    a.0.wait_line_prefix("DONE ", LIMIT);
    b.0.wait_line_prefix("DONE ", LIMIT);
    verdicts
        .iter()
        .filter(|v| v.starts_with("EARLY accepted"))
        .count()
}

/// A full handshake with the instance on `port`, its session saved.
fn fresh_session(s: &Setup, server: &mut Proc, port: u16, session: &Path) {
    let _ = std::fs::remove_file(session);
    let mut cmd = Command::new(&s.openssl);
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-sess_out")
        .arg(session)
        .arg("-ign_eof");
    let done = Proc::spawn("openssl s_client (full handshake)", &mut cmd, false).finish(LIMIT);
    done.assert_ok();
    assert!(done.stdout.contains("New, TLSv1.3"), "{}", done.stdout);
    assert_eq!(server.wait_line_prefix("EARLY ", LIMIT), "EARLY none");
    assert_eq!(server.wait_line_prefix("DONE ", LIMIT), "DONE full");
    assert!(session.exists(), "s_client saved no session");
}

/// Runs `ROUNDS` rounds with both instances in `mode`; the number of
/// instances that accepted the early data, round by round.
fn rounds(s: &Setup, mode: &str) -> Vec<usize> {
    let cache = staged_dc_server()
        .unix_at(&s.dir.path().join(format!("{mode}.sock")))
        .sessions(4096)
        .start();
    let (mut a, pa) = instance(s, &cache.address(), mode, "tls_server A");
    let (mut b, pb) = instance(s, &cache.address(), mode, "tls_server B");
    let session = s.dir.path().join(format!("{mode}.pem"));
    let counts = (0..ROUNDS)
        .map(|_| {
            fresh_session(s, &mut a, pa, &session);
            let flight = record_first_flight(s, &session);
            replay_to_both(&flight, (&mut a, pa), (&mut b, pb))
        })
        .collect();
    a.kill();
    b.kill();
    counts
}

#[test]
fn early_data_replayed_to_two_servers() {
    let s = setup();
    let started = Instant::now();

    let take = rounds(&s, "take");
    let take_once = take.iter().filter(|&&n| n == 1).count();
    println!(
        "take: {ROUNDS} rounds, early data accepted by exactly one server in {take_once}, \
         by none in {}, by both in {}",
        take.iter().filter(|&&n| n == 0).count(),
        take.iter().filter(|&&n| n == 2).count()
    );
    for (round, &n) in take.iter().enumerate() {
        assert!(
            n <= 1,
            "round {round}: both servers accepted the same early data with take"
        );
    }
    // The replay reached a server that could resume: without that the
    // check above would hold for nothing.
    assert!(
        take_once * 2 >= ROUNDS,
        "early data was accepted in only {take_once} of {ROUNDS} rounds: {take:?}"
    );

    let get = rounds(&s, "get");
    let both = get.iter().filter(|&&n| n == 2).count();
    println!(
        "get + remove: {ROUNDS} rounds, the same early data accepted by both servers in \
         {both}, by one in {}, by none in {}",
        get.iter().filter(|&&n| n == 1).count(),
        get.iter().filter(|&&n| n == 0).count()
    );
    assert!(
        get.iter().filter(|&&n| n >= 1).count() * 2 >= ROUNDS,
        "early data was rarely accepted with get: {get:?}"
    );
    println!("both modes in {:.1} s", started.elapsed().as_secs_f64());
}
