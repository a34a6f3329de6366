//! TLS on the TCP links, against a real `dc_server` with certificates made
//! by the `openssl` command: round trips over IPv4, IPv6 and a name with the
//! Rust client and with a C program; session resumption for clients that
//! connect per operation; bad peers cut within their bounds while a good
//! client goes on being served, and not one session read or added by a
//! peer without a certificate from the CA; certificates reloaded on SIGHUP.

#[allow(dead_code)]
mod c_support;
mod common;
mod dc_server;
mod require;
mod tls_support;

use common::{raw_frame, run_tool};
use dc_server::dc_server_bin;
use distcache::ClientError;
use distcache::{Client, Flags};
use nix::sys::signal::Signal;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls_support::{Pair, Pki, TlsServer};

/// The client's credentials come from the environment, which is the
/// process's: clients are made one at a time.
static ENV: Mutex<()> = Mutex::new(());

/// How long a client waits for the server in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a bad peer may take to be turned away: the client's timeout,
/// with room for a loaded machine.
const REFUSAL_BOUND: Duration = Duration::from_secs(4);
/// The server's idle limit in the bad-peer test, which also bounds a
/// handshake that stalls.
const IDLE_MS: u64 = 1500;
/// How long a stalled peer may be kept: the idle limit, the sweep, slack.
const STALL_BOUND: Duration = Duration::from_secs(5);

fn client_with(
    addr: &str,
    flags: Flags,
    ca: Option<&Path>,
    pair: Option<&Pair>,
) -> Result<Client, ClientError> {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    let set = |name: &str, v: Option<&Path>| match v {
        Some(p) => std::env::set_var(name, p),
        None => std::env::remove_var(name),
    };
    set("DISTCACHE_TLS_CA", ca);
    set("DISTCACHE_TLS_CERT", pair.map(|p| p.cert.as_path()));
    set("DISTCACHE_TLS_KEY", pair.map(|p| p.key.as_path()));
    let client = Client::new(addr, flags);
    for name in [
        "DISTCACHE_TLS_CA",
        "DISTCACHE_TLS_CERT",
        "DISTCACHE_TLS_KEY",
    ] {
        std::env::remove_var(name);
    }
    let client = client?;
    client.set_timeout(TIMEOUT);
    Ok(client)
}

fn good_client(pki: &Pki, addr: &str, flags: Flags) -> Client {
    client_with(addr, flags, Some(&pki.ca()), Some(&pki.pair("client")))
        .unwrap_or_else(|e| panic!("client for {addr}: {e}"))
}

fn round_trip(client: &Client, tag: &str) {
    let id = format!("rt-{tag}").into_bytes();
    let data = format!("session bytes for {tag}").into_bytes();
    client.add(&id, &data, 60_000).expect("add");
    assert!(client.have(&id).expect("have"), "{tag}");
    assert_eq!(client.get(&id).expect("get").as_deref(), Some(&data[..]));
    assert!(client.remove(&id).expect("remove"));
    assert_eq!(client.get(&id).expect("get after remove"), None);
}

#[test]
fn round_trips_over_ipv4_ipv6_and_a_name() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &[]);
    for addr in [
        format!("TLS:127.0.0.1:{}", server.tls_port),
        format!("TLS:[::1]:{}", server.tls6_port),
        format!("TLS:localhost:{}", server.tls_port),
    ] {
        for flags in [Flags::PERSISTENT, Flags::empty()] {
            let client = good_client(&pki, &addr, flags);
            round_trip(&client, &format!("{addr}-{}", flags.bits()));
        }
    }
    let log = server.stop();
    let (_, _, failed) = TlsServer::handshakes(&log);
    assert_eq!(failed, 0, "{log}");
}

#[test]
fn the_server_name_or_address_is_verified() {
    let pki = Pki::new();
    let elsewhere = pki.pair("elsewhere");
    let server = TlsServer::start_with(&[
        "-tls-cert".into(),
        elsewhere.cert.display().to_string(),
        "-tls-key".into(),
        elsewhere.key.display().to_string(),
        "-tls-ca".into(),
        pki.ca().display().to_string(),
    ]);
    // The certificate names cache.invalid only: neither the address nor
    // localhost matches it.
    for addr in [
        format!("TLS:127.0.0.1:{}", server.tls_port),
        format!("TLS:localhost:{}", server.tls_port),
        format!("TLS:[::1]:{}", server.tls6_port),
    ] {
        let client = good_client(&pki, &addr, Flags::empty());
        match client.add(b"mismatch", b"data", 1000) {
            Err(ClientError::Tls(e)) => {
                let text = e.to_string();
                assert!(text.contains("handshake"), "{addr}: {text}");
            }
            other => panic!("{addr}: expected a TLS handshake failure, got {other:?}"),
        }
    }
}

#[test]
fn connecting_per_operation_resumes_the_session() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &[]);
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let client = good_client(&pki, &addr, Flags::empty());
    for i in 0..10 {
        round_trip(&client, &format!("resume-{i}"));
    }
    // 50 connections from one context, 20 from another.
    let other = good_client(&pki, &addr, Flags::empty());
    for i in 0..4 {
        round_trip(&other, &format!("resume-other-{i}"));
    }
    let log = server.stop();
    let (full, resumed, failed) = TlsServer::handshakes(&log);
    assert_eq!(
        (full, resumed, failed),
        (2, 68, 0),
        "one full handshake per client, every other connection resumed:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// The C library

/// Compiles `tests/c_harness/<name>.c` against the staged install
/// (`make stage`), as a DC_CTX user's build would.
fn compile_c(name: &str, dir: &Path) -> PathBuf {
    c_support::compile_with(
        &format!("tests/c_harness/{name}.c"),
        dir,
        name,
        c_support::Link::Distcache,
        &[
            "-std=c99".into(),
            "-D_POSIX_C_SOURCE=200809L".into(),
            format!(
                "-I{}",
                c_support::manifest_dir().join("tests/c_harness").display()
            ),
        ],
    )
}

/// Runs a compiled C program with the given TLS files in its environment.
fn run_c(prog: &Path, args: &[&str], tls: [Option<&Path>; 3]) -> common::ToolRun {
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args).env("DISTCACHE_TIMEOUT_MS", "2000");
    for (name, v) in [
        "DISTCACHE_TLS_CA",
        "DISTCACHE_TLS_CERT",
        "DISTCACHE_TLS_KEY",
    ]
    .into_iter()
    .zip(tls)
    {
        match v {
            Some(p) => cmd.env(name, p),
            None => cmd.env_remove(name),
        };
    }
    run_tool(&mut cmd, Duration::from_secs(60))
}

#[test]
fn the_c_library_speaks_tls_and_resumes() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_c("tls_ctx", dir.path());
    let basic = compile_c("basic", dir.path());
    let server = TlsServer::start(&pki, &[]);
    let client = pki.pair("client");
    let good = [
        Some(pki.ca()),
        Some(client.cert.clone()),
        Some(client.key.clone()),
    ];
    let good = [good[0].as_deref(), good[1].as_deref(), good[2].as_deref()];
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let addr6 = format!("TLS:[::1]:{}", server.tls6_port);

    // Every operation on a connection of its own: 30 connections.
    let run = run_c(&prog, &[&addr, "0", "10"], good);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ok 10"), "{}", run.stdout);
    // One persistent connection.
    let run = run_c(&prog, &[&addr6, "1", "50"], good);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    // A child forked with a persistent context never writes into its
    // parent's TLS connection, with or without PIDCHECK.
    for flags in ["1", "3"] {
        let run = run_c(&prog, &[&addr, flags, "fork"], good);
        assert_eq!(
            run.code,
            Some(0),
            "fork, flags {flags}: {}{}",
            run.stdout,
            run.stderr
        );
        assert!(run.stdout.contains("ok fork"), "{}", run.stdout);
    }
    // The whole DC_CTX API, as over plain TCP.
    let run = run_c(&basic, &[&addr, "1"], good);
    assert_eq!(
        run.code,
        Some(0),
        "basic over TLS: {}{}",
        run.stdout,
        run.stderr
    );

    // Missing, unreadable or bad files: DC_CTX_new fails, with or without
    // PERSISTENT, and nothing aborts.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let missing = dir.path().join("missing.pem");
    let cases: [[Option<&Path>; 3]; 5] = [
        [None, good[1], good[2]],
        [Some(&missing), good[1], good[2]],
        [good[0], Some(&missing), good[2]],
        [good[0], good[1], Some(&garbage)],
        [Some(&garbage), good[1], good[2]],
    ];
    for (i, files) in cases.into_iter().enumerate() {
        for flags in ["0", "1"] {
            let run = run_c(&prog, &[&addr, flags, "refused"], files);
            assert_eq!(
                run.code,
                Some(0),
                "case {i}, flags {flags}: {}{}",
                run.stdout,
                run.stderr
            );
        }
    }
    let log = server.stop();
    let (full, resumed, failed) = TlsServer::handshakes(&log);
    // 30 connections from the first context: one full handshake.
    assert!(full >= 2 && resumed >= 29 && failed == 0, "{log}");
}

// ---------------------------------------------------------------------------
// Bad peers

/// A good client that keeps working in a thread of its own, counting what
/// succeeded and what failed, until told to stop.
struct Bystander {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(client: Client) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let id = format!("bystander-{i}").into_bytes();
                let r = client
                    .add(&id, b"bystander session", 60_000)
                    .and_then(|()| client.get(&id))
                    .and_then(|got| client.remove(&id).map(|_| got));
                match r {
                    Ok(Some(_)) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => f.lock().unwrap().push(format!("{other:?}")),
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Bystander {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("bystander thread");
        }
        let failed = std::mem::take(&mut *self.failed.lock().unwrap());
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

/// A client without a usable certificate: it must neither read the secret
/// session nor add one, and must be turned away within the bound.
fn assert_turned_away(what: &str, client: Result<Client, ClientError>, secret: &[u8]) {
    let Ok(client) = client else {
        return;
    };
    let start = Instant::now();
    let add = client.add(
        format!("intruder-{what}").as_bytes(),
        b"forged session",
        60_000,
    );
    assert!(add.is_err(), "{what}: the add was accepted");
    let get = client.get(secret);
    assert!(get.is_err(), "{what}: the get was answered: {get:?}");
    let took = start.elapsed();
    assert!(
        took < REFUSAL_BOUND * 2,
        "{what}: two refusals took {took:?}"
    );
    for e in [add.unwrap_err(), get.unwrap_err()] {
        assert!(
            !matches!(&e, ClientError::Network(distcache::NalError::TimedOut)),
            "{what}: timed out rather than being refused: {e}"
        );
    }
}

/// Reads until the server closes the connection; how long it took and what
/// came back. Panics if it is still open after `bound`.
fn read_until_closed(mut s: impl Read, bound: Duration, what: &str) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("{what}: still open after {:?}", start.elapsed())
            }
            Err(_) => break,
        }
        assert!(
            start.elapsed() < bound,
            "{what}: still open after {bound:?}"
        );
    }
    let took = start.elapsed();
    assert!(took < bound, "{what}: closed only after {took:?}");
    (took, got)
}

fn tcp(port: u16, bound: Duration) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(bound)).expect("read timeout");
    s.set_write_timeout(Some(bound)).expect("write timeout");
    s
}

/// A TLS connection made by hand with the good client certificate.
fn handshake_by_hand(pki: &Pki, port: u16) -> SslStream<TcpStream> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    b.set_ca_file(pki.ca()).expect("ca");
    let pair = pki.pair("client");
    b.set_certificate_chain_file(&pair.cert).expect("cert");
    b.set_private_key_file(&pair.key, SslFiletype::PEM)
        .expect("key");
    let sock = tcp(port, STALL_BOUND);
    let mut s = b
        .build()
        .connect("localhost", sock)
        .expect("handshake by hand");
    // A first exchange, so that the server has verified the certificate.
    s.write_all(&raw_frame(false, 3, 7, b"nothing"))
        .expect("write HAVE");
    let mut reply = [0u8; 64];
    let n = s.read(&mut reply).expect("HAVE reply");
    assert!(n > 0, "no reply to a good request");
    s
}

#[test]
fn bad_peers_fail_within_their_bounds_and_good_clients_are_served_meanwhile() {
    let pki = Pki::new();
    let idle = IDLE_MS.to_string();
    let server = TlsServer::start(&pki, &["-idle", &idle]);
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    // Its connection is closed at the idle limit while the bad peers try.
    let owner = good_client(&pki, &addr, Flags::PERSISTENT | Flags::PERSISTENT_RETRY);
    let secret = b"secret-session-id";
    owner
        .add(secret, b"master secret", 600_000)
        .expect("add the secret");
    let bystander = Bystander::start(good_client(&pki, &addr, Flags::empty()));

    // No certificate; another CA's; an expired one from the right CA.
    let ca = pki.ca();
    let (rogue, expired) = (pki.pair("rogue"), pki.pair("expired"));
    let refused = [
        ("no-cert", Flags::empty(), None),
        (
            "no-cert-persistent",
            Flags::PERSISTENT_LATE | Flags::PERSISTENT,
            None,
        ),
        ("other-ca", Flags::empty(), Some(&rogue)),
        ("expired", Flags::empty(), Some(&expired)),
    ];
    for (what, flags, pair) in refused {
        assert_turned_away(what, client_with(&addr, flags, Some(&ca), pair), secret);
    }

    // A plaintext client on the TLS port: its requests are never read as
    // requests, and it is closed at once.
    let mut plain = tcp(server.tls_port, STALL_BOUND);
    let mut add = Vec::new();
    add.extend_from_slice(&60_000u32.to_be_bytes());
    add.extend_from_slice(&(b"intruder-plain".len() as u32).to_be_bytes());
    add.extend_from_slice(b"intruder-plain");
    add.extend_from_slice(b"forged session");
    let _ = plain.write_all(&raw_frame(false, 0, 1, &add));
    let _ = plain.write_all(&raw_frame(false, 1, 2, secret));
    let (_, got) = read_until_closed(&mut plain, REFUSAL_BOUND, "plaintext on the TLS port");
    assert!(
        !got.windows(b"master secret".len())
            .any(|w| w == b"master secret"),
        "the plaintext client read the secret"
    );

    // A TLS client on the plaintext port.
    let start = Instant::now();
    let wrong_port = format!("TLS:127.0.0.1:{}", server.plain_port);
    let c = good_client(&pki, &wrong_port, Flags::empty());
    let r = c.get(secret);
    assert!(r.is_err(), "TLS on the plaintext port: {r:?}");
    assert!(
        start.elapsed() < REFUSAL_BOUND,
        "took {:?}",
        start.elapsed()
    );

    // A handshake that never starts, and one that stops half-way.
    let silent = tcp(server.tls_port, STALL_BOUND);
    let mut half = tcp(server.tls_port, STALL_BOUND);
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("half a hello");
    let (took, _) = read_until_closed(silent, STALL_BOUND, "a silent handshake");
    assert!(
        took >= Duration::from_millis(IDLE_MS / 2),
        "a silent connection was closed after {took:?}, before the idle limit"
    );
    read_until_closed(half, STALL_BOUND, "a half-sent handshake");

    // Garbage after a good handshake: raw bytes under TLS, and records
    // that carry no valid request.
    let mut s = handshake_by_hand(&pki, server.tls_port);
    s.get_mut().write_all(&[0x42; 64]).expect("raw garbage");
    let (_, _) = read_until_closed(s.get_mut(), STALL_BOUND, "raw garbage after the handshake");
    let mut s = handshake_by_hand(&pki, server.tls_port);
    s.write_all(&[0xff; 64]).expect("garbage record");
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let r = s.read(&mut buf);
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "garbage in a record was answered: {r:?}"
    );
    assert!(start.elapsed() < STALL_BOUND);

    let (ok, failed) = bystander.finish();
    assert!(
        failed.is_empty(),
        "the good client failed meanwhile: {failed:?}"
    );
    assert!(ok > 0, "the good client made no round trip");

    // Not one session added, and the secret still there.
    for what in refused.map(|(what, ..)| what).into_iter().chain(["plain"]) {
        let id = format!("intruder-{what}");
        assert!(!owner.have(id.as_bytes()).expect("have"), "{id} was added");
    }
    assert_eq!(
        owner.get(secret).expect("get").as_deref(),
        Some(&b"master secret"[..])
    );
    let log = server.stop();
    let (_, _, failed) = TlsServer::handshakes(&log);
    assert!(failed >= 6, "bad handshakes counted: {failed}\n{log}");
}

// ---------------------------------------------------------------------------
// Options and reloading

#[test]
fn without_client_certificates_only_when_asked_and_with_a_warning() {
    let pki = Pki::new();
    let mut server = TlsServer::start(&pki, &["-tls-no-client-cert"]);
    server.wait_log("-tls-no-client-cert", Duration::from_secs(5));
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let client = client_with(&addr, Flags::empty(), Some(&pki.ca()), None).expect("client");
    round_trip(&client, "no-client-cert");
    drop(server);

    // Without the option, a CA is required.
    let pair = pki.pair("server");
    let run = run_tool(
        std::process::Command::new(dc_server_bin()).args([
            "-listen",
            "TLS:127.0.0.1:0",
            "-tls-cert",
            &pair.cert.display().to_string(),
            "-tls-key",
            &pair.key.display().to_string(),
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("-tls-ca"), "{}", run.stderr);
}

/// The serial number of the certificate the server presents now.
fn served_serial(pki: &Pki, port: u16) -> Vec<u8> {
    let s = handshake_by_hand(pki, port);
    let cert = s.ssl().peer_certificate().expect("peer certificate");
    cert.serial_number().to_bn().expect("serial").to_vec()
}

fn serial_of(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("read certificate");
    let cert = openssl::x509::X509::from_pem(&pem).expect("certificate");
    cert.serial_number().to_bn().expect("serial").to_vec()
}

#[test]
fn sighup_reloads_the_certificates_and_keeps_them_when_the_new_ones_are_bad() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server_pair = pki.pair("server");
    std::fs::copy(&server_pair.cert, &cert).expect("copy");
    std::fs::copy(&server_pair.key, &key).expect("copy");
    let mut server = TlsServer::start_with(&[
        "-tls-cert".into(),
        cert.display().to_string(),
        "-tls-key".into(),
        key.display().to_string(),
        "-tls-ca".into(),
        pki.ca().display().to_string(),
    ]);
    let first = serial_of(&server_pair.cert);
    assert_eq!(served_serial(&pki, server.tls_port), first);

    // A bad file: the old certificate stays in use, and the log says why.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").expect("write");
    server.signal(Signal::SIGHUP);
    let line = server.wait_log("not reloaded", Duration::from_secs(5));
    assert!(line.contains("cert.pem"), "{line}");
    assert_eq!(served_serial(&pki, server.tls_port), first);
    let client = good_client(
        &pki,
        &format!("TLS:127.0.0.1:{}", server.tls_port),
        Flags::empty(),
    );
    round_trip(&client, "after-bad-reload");

    // A good new pair: new connections get it.
    let next = pki.pair("server2");
    std::fs::copy(&next.cert, &cert).expect("copy");
    std::fs::copy(&next.key, &key).expect("copy");
    server.signal(Signal::SIGHUP);
    server.wait_log("reloaded", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = serial_of(&next.cert);
    assert_ne!(first, second);
    while served_serial(&pki, server.tls_port) != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    round_trip(&client, "after-reload");
    let log = server.stop();
    assert!(
        log.contains("SIGHUP: TLS certificates and keys reloaded"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------
// dc_client: local clients on a UNIX socket, the upstream over TLS

struct Proxy {
    _child: common::Reaped,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(server: &str, tls: &[(&str, &Path)]) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("proxy.sock");
        let mut cmd = std::process::Command::new(common::dc_client_bin());
        cmd.args(["-listen", &format!("UNIX:{}", socket.display())])
            .args(["-server", server]);
        for (opt, path) in tls {
            cmd.arg(opt).arg(path);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = common::spawn_listening(&mut cmd, &socket);
        Proxy {
            _child: child,
            socket,
            _dir: dir,
        }
    }

    /// A proxy to `server` that presents the good client certificate.
    fn with_good_certificate(pki: &Pki, server: &str) -> Proxy {
        let pair = pki.pair("client");
        let ca = pki.ca();
        Proxy::start(
            server,
            &[
                ("-tls-ca", &ca),
                ("-tls-cert", &pair.cert),
                ("-tls-key", &pair.key),
            ],
        )
    }

    fn client(&self) -> Client {
        let c = Client::new(&format!("UNIX:{}", self.socket.display()), Flags::empty())
            .expect("client of the proxy");
        c.set_timeout(TIMEOUT);
        c
    }
}

/// Adds through `client` until the proxy has its upstream (bounded).
fn add_when_up(client: &Client, id: &[u8], data: &[u8]) -> Result<(), ClientError> {
    let start = Instant::now();
    loop {
        match client.add(id, data, 60_000) {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(3) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn dc_client_keeps_its_upstream_encrypted() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &[]);
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let proxy = Proxy::with_good_certificate(&pki, &addr);
    let local = proxy.client();
    add_when_up(&local, b"via-proxy", b"proxied session").expect("add through dc_client");
    let direct = good_client(&pki, &addr, Flags::empty());
    assert_eq!(
        direct.get(b"via-proxy").expect("get").as_deref(),
        Some(&b"proxied session"[..])
    );
    for i in 0..20 {
        round_trip(&local, &format!("proxy-{i}"));
    }

    // A proxy without a client certificate: nothing it forwards is served.
    let bare = Proxy::start(&addr, &[("-tls-ca", &pki.ca())]);
    let intruder = bare.client();
    assert!(add_when_up(&intruder, b"intruder-proxy", b"forged").is_err());
    assert!(intruder.get(b"via-proxy").is_err());
    assert!(!direct.have(b"intruder-proxy").expect("have"));

    // Missing TLS files: dc_client says why and exits 1.
    let run = run_tool(
        std::process::Command::new(common::dc_client_bin()).args([
            "-server",
            &addr,
            "-tls-ca",
            "/nonexistent/ca.pem",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
    drop(proxy);
    drop(bare);
    let log = server.stop();
    let (full, _, failed) = TlsServer::handshakes(&log);
    // The good proxy's one connection, the direct client's first.
    assert_eq!(full, 2, "{log}");
    assert!(failed >= 1, "{log}");
}

#[test]
fn stalled_handshakes_give_way_to_a_good_client_at_the_connection_limit() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &["-maxconns", "3"]);
    // Three connections that never say hello fill the server.
    let silent: Vec<TcpStream> = (0..3).map(|_| tcp(server.tls_port, STALL_BOUND)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let client = good_client(&pki, &addr, Flags::empty());
    round_trip(&client, "displacing");
    // The good client took the place of one of them.
    let mut closed = 0;
    for mut s in silent {
        s.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        if matches!(s.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no stalled handshake was displaced");
    let log = server.stop();
    assert!(log.contains("TLS handshakes"), "{log}");
}

#[test]
fn a_client_that_reads_its_replies_late_gets_every_one_over_tls() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &[]);
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let client = good_client(&pki, &addr, Flags::PERSISTENT);
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 251) as u8).collect();
    client
        .add(b"big", &data, 60_000)
        .expect("add a large session");
    // 256 GETs of 30 kB sent at once, and nothing read for a while: the
    // replies (about 8 MB) wait in the server, which writes them through
    // TLS as the socket takes them.
    let mut s = handshake_by_hand(&pki, server.tls_port);
    let count = 256u32;
    let mut requests = Vec::new();
    for uid in 0..count {
        requests.extend(raw_frame(false, 1, 1000 + uid, b"big"));
    }
    s.write_all(&requests).expect("send the GETs");
    std::thread::sleep(Duration::from_millis(500));
    let mut decoder =
        distcache::internals::proto::Decoder::new(distcache::internals::proto::Role::Client);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u32;
    while got < count {
        let n = s.read(&mut buf).expect("read the replies");
        assert!(n > 0, "closed after {got} replies");
        let mut input = &buf[..n];
        while !input.is_empty() {
            let (used, msg) = decoder.decode(input).expect("a valid reply");
            input = &input[used..];
            if let Some(m) = msg {
                assert_eq!(m.uid, 1000 + got, "replies in order");
                assert!(m.payload == data, "reply {got} carries other bytes");
                got += 1;
            }
        }
    }
    let log = server.stop();
    let (_, _, failed) = TlsServer::handshakes(&log);
    assert_eq!(failed, 0, "{log}");
}

#[test]
fn many_local_clients_share_the_proxys_tls_upstream() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki, &[]);
    let addr = format!("TLS:127.0.0.1:{}", server.tls_port);
    let proxy = Proxy::with_good_certificate(&pki, &addr);
    add_when_up(&proxy.client(), b"warm-up", b"session").expect("proxy up");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (client, data) = (proxy.client(), &data);
            s.spawn(move || {
                for i in 0..40 {
                    let id = format!("many-{t}-{i}").into_bytes();
                    client.add(&id, data, 60_000).expect("add");
                    let got = client.get(&id).expect("get");
                    assert!(got.as_deref() == Some(&data[..]), "{t}/{i}: other bytes");
                }
            });
        }
    });
    drop(proxy);
    let log = server.stop();
    let (full, _, failed) = TlsServer::handshakes(&log);
    assert_eq!(
        (full, failed),
        (1, 0),
        "one TLS connection for them all:\n{log}"
    );
}

/// Whether a client limited to TLS 1.2, with the good certificate, gets
/// an answer from the server on `port`.
fn tls12_client_served(pki: &Pki, port: u16) -> bool {
    let mut b = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    b.set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_2))
        .expect("max version");
    b.set_ca_file(pki.ca()).expect("ca");
    let pair = pki.pair("client");
    b.set_certificate_chain_file(&pair.cert).expect("cert");
    b.set_private_key_file(&pair.key, SslFiletype::PEM)
        .expect("key");
    let Ok(mut s) = b.build().connect("localhost", tcp(port, STALL_BOUND)) else {
        return false;
    };
    if s.write_all(&raw_frame(false, 3, 9, b"x")).is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    matches!(s.read(&mut reply), Ok(n) if n > 0)
}

#[test]
fn tls_1_3_by_default_and_1_2_only_when_asked() {
    let pki = Pki::new();
    let strict = TlsServer::start(&pki, &[]);
    assert!(!tls12_client_served(&pki, strict.tls_port));
    let lenient = TlsServer::start(&pki, &["-tls12"]);
    assert!(tls12_client_served(&pki, lenient.tls_port));
}
