//! TAKE, a session fetched and deleted in one step: through the Rust
//! client against real dc_server processes (memory store, durable store
//! killed with SIGKILL and started again), through a dc_client proxy, from
//! many threads at once, and against a server that closes the connection
//! on the operation, as the original's does. Every wait is bounded; every
//! process is stopped by its PID.

mod common;
mod dc_server;

use common::{dc_client_bin, spawn_listening};
use dc_server::DcServer;
use distcache::{Client, Flags};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);
const SESSION: &[u8] = b"a TLS session, serialised";

fn client(address: &str) -> Client {
    Client::new(address, Flags::PERSISTENT).expect("client")
}

/// Take gives the session once; after it, take and get both miss.
fn take_once_through(address: &str) {
    let c = client(address);
    c.add(b"sid-1", SESSION, 60_000).expect("add");
    assert_eq!(c.take(b"sid-1").expect("take"), Some(SESSION.to_vec()));
    assert_eq!(c.take(b"sid-1").expect("second take"), None);
    assert_eq!(c.get(b"sid-1").expect("get after take"), None);
    assert!(!c.have(b"sid-1").expect("have after take"));
    assert_eq!(c.take(b"never-stored").expect("take of a missing id"), None);
    // The id is free again: a new session may be stored under it.
    c.add(b"sid-1", b"the next session", 60_000)
        .expect("add again");
    assert_eq!(
        c.take(b"sid-1").expect("take"),
        Some(b"the next session".to_vec())
    );
}

#[test]
fn take_returns_the_session_once() {
    let server = DcServer::start(&[]);
    take_once_through(&server.address());
}

#[test]
fn reget_returns_what_take_fetched() {
    let server = DcServer::start(&[]);
    let c = client(&server.address());
    c.add(b"sid", SESSION, 60_000).expect("add");
    assert_eq!(c.take(b"sid").expect("take"), Some(SESSION.to_vec()));
    assert_eq!(c.reget(b"sid"), Some(SESSION.to_vec()));
    assert_eq!(c.reget(b"other"), None);
    assert_eq!(c.take(b"sid").expect("take"), None);
    assert_eq!(c.reget(b"sid"), None, "a miss forgets the last fetch");
}

#[test]
fn take_through_the_dc_client_proxy() {
    let server = DcServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("p.sock");
    let _proxy = spawn_listening(
        Command::new(dc_client_bin())
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .arg("-server")
            .arg(server.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &socket,
    );
    let proxied = format!("UNIX:{}", socket.display());
    take_once_through(&proxied);
    // What was taken through the proxy is gone from the server itself.
    let direct = client(&server.address());
    let via = client(&proxied);
    via.add(b"sid-2", SESSION, 60_000).expect("add");
    assert!(direct.have(b"sid-2").expect("have"));
    assert_eq!(via.take(b"sid-2").expect("take"), Some(SESSION.to_vec()));
    assert!(!direct.have(b"sid-2").expect("have"));
}

/// N threads, each with its own connection, take the same id at the same
/// moment, over many rounds: every round exactly one gets the session.
fn exactly_one_wins(address: &str, threads: usize, rounds: usize) {
    let seeder = client(address);
    let clients: Vec<Client> = (0..threads).map(|_| client(address)).collect();
    let barrier = Arc::new(Barrier::new(threads));
    for round in 0..rounds {
        let id = format!("round-{round}");
        let data = format!("session of round {round}");
        seeder
            .add(id.as_bytes(), data.as_bytes(), 60_000)
            .expect("add");
        let winners: Vec<Vec<u8>> = thread::scope(|s| {
            let handles: Vec<_> = clients
                .iter()
                .map(|c| {
                    let (barrier, id) = (barrier.clone(), id.clone());
                    s.spawn(move || {
                        barrier.wait();
                        c.take(id.as_bytes()).expect("take")
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("taker"))
                .collect()
        });
        assert_eq!(
            winners,
            vec![data.into_bytes()],
            "round {round}: {} of {threads} takes got the session",
            winners.len()
        );
    }
}

#[test]
fn concurrent_takes_of_one_id_have_one_winner() {
    let server = DcServer::start(&["-threads", "2"]);
    exactly_one_wins(&server.address(), 8, 200);
}

/// A dc_server with a store directory, started on `socket`.
fn durable_server(socket: &Path, store: &Path) -> DcServer {
    DcServer::builder()
        .unix_at(socket)
        .store(store)
        .args(&["-sync", "always"])
        .start()
}

#[test]
fn a_taken_session_stays_gone_after_sigkill_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("s.sock");
    let store = dir.path().join("store");
    let address = format!("UNIX:{}", socket.display());
    let mut server = durable_server(&socket, &store);
    let c = client(&address);
    for i in 0..50 {
        c.add(format!("sid-{i}").as_bytes(), SESSION, 600_000)
            .expect("add");
    }
    for i in (0..50).step_by(2) {
        assert_eq!(
            c.take(format!("sid-{i}").as_bytes()).expect("take"),
            Some(SESSION.to_vec())
        );
    }
    // The takes were answered: under -sync always their removals are on
    // disk. Kill the server without letting it write anything more.
    server.kill();
    drop(c);
    let _ = std::fs::remove_file(&socket);
    let _server = durable_server(&socket, &store);
    let c = client(&address);
    for i in 0..50 {
        let id = format!("sid-{i}");
        let expect = (i % 2 == 1).then(|| SESSION.to_vec());
        assert_eq!(c.get(id.as_bytes()).expect("get"), expect, "{id}");
    }
}

#[test]
fn concurrent_takes_on_a_durable_store_have_one_winner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let _server = durable_server(&socket, &dir.path().join("store"));
    exactly_one_wins(&format!("UNIX:{}", socket.display()), 6, 50);
}

/// The original's server closes the connection on an operation it does
/// not know: a take sent to such a server fails, and never reads as a
/// session or as a miss.
#[test]
fn a_server_that_closes_on_take_makes_it_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("closer.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let closer = thread::spawn(move || {
        // Reads one request header, then closes, as the original does.
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut header = [0u8; 14];
        s.read_exact(&mut header).expect("request header");
        header[10]
    });
    let c = Client::new(&format!("UNIX:{}", socket.display()), Flags::empty()).expect("client");
    let got = c.take(b"sid");
    assert!(got.is_err(), "a closed connection must fail, got {got:?}");
    assert_eq!(closer.join().expect("closer"), 4, "sent as operation 4");
}

/// TAKE has its own counters, as the other operations do: hits and misses
/// in the metrics exposition, and its latency histogram.
#[test]
fn takes_are_counted_in_the_metrics() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let mut server = DcServer::builder()
        .unix_at(&socket)
        .args(&["-metrics", "IP:127.0.0.1:0"])
        .start();
    let start = Instant::now();
    let port: u16 = loop {
        let text = server.stderr();
        let port = text
            .split("metrics at http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok());
        if let Some(port) = port {
            break port;
        }
        assert!(start.elapsed() < LIMIT, "no metrics address: {text}");
        thread::sleep(Duration::from_millis(10));
    };
    let c = client(&format!("UNIX:{}", socket.display()));
    for id in [&b"one"[..], b"two"] {
        c.add(id, SESSION, 60_000).expect("add");
        assert!(c.take(id).expect("take").is_some());
    }
    for id in [&b"one"[..], b"two", b"three"] {
        assert!(c.take(id).expect("take").is_none());
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("metrics page");
    for line in [
        "distcache_operations_total{op=\"take\",result=\"ok\"} 2",
        "distcache_operations_total{op=\"take\",result=\"miss\"} 3",
        "distcache_request_duration_seconds_count{op=\"take\"} 5",
        "distcache_operations_total{op=\"get\",result=\"ok\"} 0",
    ] {
        assert!(page.lines().any(|l| l == line), "no {line:?} in:\n{page}");
    }
    server.kill();
}

/// dc_snoop, between a client and dc_server, names TAKE requests and
/// their replies, hits and misses.
#[test]
fn dc_snoop_decodes_takes() {
    let server = DcServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("snoop.sock");
    let log = dir.path().join("log");
    let mut snoop = spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_dc_snoop"))
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .arg("-server")
            .arg(server.address())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::null()),
        &socket,
    );
    let c = client(&format!("UNIX:{}", socket.display()));
    c.add(b"\x01\xab", SESSION, 60_000).expect("add");
    assert_eq!(c.take(b"\x01\xab").expect("take"), Some(SESSION.to_vec()));
    assert_eq!(c.take(b"\x01\xab").expect("take"), None);
    drop(c);
    let want = [
        "TAKE id=01ab".to_string(),
        format!("TAKE hit data_len={}", SESSION.len()),
        "TAKE miss".to_string(),
    ];
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if want.iter().all(|w| text.contains(w.as_str())) {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "dc_snoop's log lacks {want:?}:\n{text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    snoop.kill();
}
