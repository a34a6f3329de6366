//! dc_server against clients that misbehave at the socket: ones that leave
//! in the middle of a request, ones that leave while the server writes a
//! long reply (closing, or resetting a TCP connection), and ones that
//! pipeline GETs of 32 KiB sessions and never read the replies. Through
//! each, the server stays up, serves a well-behaved client meanwhile within
//! its timeout, closes every connection the clients left (its open
//! descriptors return to where they were), and, with 50 clients that never
//! read connected at once, its resident memory stays under a fixed bound.

mod common;
mod dc_server;

use dc_server::{DcServer, Endpoint, Net};
use distcache::{Client, Flags};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The well-behaved client's timeout.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Sessions of 32 KiB: the largest an ADD can carry with a 10-byte id.
const SESSION: usize = 32_768 - 8 - 10;
/// Sessions stored for the GETs.
const STORED: u32 = 8;

fn get_frame(uid: u32, id: &[u8]) -> Vec<u8> {
    common::raw_frame(false, 1, uid, id)
}

fn big_id(i: u32) -> Vec<u8> {
    format!("big-{i:06}").into_bytes()
}

fn big_session(i: u32) -> Vec<u8> {
    (0..SESSION).map(|b| (b as u32 * 13 + i) as u8).collect()
}

/// A raw client connection, UNIX or TCP.
enum Raw {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Raw {
    fn connect(to: &Endpoint) -> Raw {
        let raw = match to {
            Endpoint::Unix(p) => Raw::Unix(UnixStream::connect(p).expect("connect")),
            Endpoint::Tcp(addr) => Raw::Tcp(TcpStream::connect(addr).expect("connect")),
        };
        let t = Some(Duration::from_secs(10));
        match &raw {
            Raw::Unix(s) => s.set_write_timeout(t).and_then(|()| s.set_read_timeout(t)),
            Raw::Tcp(s) => s.set_write_timeout(t).and_then(|()| s.set_read_timeout(t)),
        }
        .expect("socket timeouts");
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        match self {
            Raw::Unix(s) => s.write_all(bytes),
            Raw::Tcp(s) => s.write_all(bytes),
        }
        .expect("send to dc_server");
    }

    fn read_exact(&mut self, buf: &mut [u8]) {
        match self {
            Raw::Unix(s) => s.read_exact(buf),
            Raw::Tcp(s) => s.read_exact(buf),
        }
        .expect("read from dc_server");
    }

    /// Closes; a TCP connection with `reset` is reset (RST) rather than
    /// closed, dropping whatever is unread.
    fn close(self, reset: bool) {
        if let Raw::Tcp(s) = &self {
            if reset {
                socket2::SockRef::from(s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0");
            }
        }
    }
}

/// Descriptors the process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Waits (at most 10 s) until the server has at most `want` descriptors
/// open: every connection the clients left has been closed.
fn wait_fds_back(server: &DcServer, want: usize) -> usize {
    let start = Instant::now();
    loop {
        let n = open_fds(server.pid());
        if n <= want {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dc_server still has {n} descriptors open, {want} before the clients came"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A server holding [`STORED`] sessions of 32 KiB, and its descriptor count
/// at rest.
fn server_with_sessions(net: Net) -> (usize, DcServer) {
    let server = DcServer::builder()
        .net(net)
        .args(&["-sessions", "1000"])
        .start();
    let client = Client::new(&server.address(), Flags::empty()).expect("client");
    client.set_timeout(TIMEOUT);
    for i in 0..STORED {
        client
            .add(&big_id(i), &big_session(i), 600_000)
            .expect("store a session");
    }
    drop(client);
    (fds_at_rest(&server), server)
}

/// The server's descriptor count once the connections that the start-up
/// check and the loading client left are closed: the count when it has
/// not changed for 300 ms (within 10 s). Each of those connections was
/// closed by its client, so the server closes its side within
/// milliseconds; the count only falls meanwhile.
fn fds_at_rest(server: &DcServer) -> usize {
    let start = Instant::now();
    let (mut last, mut since) = (open_fds(server.pid()), Instant::now());
    while since.elapsed() < Duration::from_millis(300) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dc_server's descriptors did not settle: {last}"
        );
        thread::sleep(Duration::from_millis(20));
        let n = open_fds(server.pid());
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
    last
}

/// Round trips each checker makes at least while the misbehaving clients
/// are at work.
const CHECKS: u32 = 20;

/// A well-behaved client running round trips, each bounded and checked,
/// until stopped (and at least [`CHECKS`] of them); `done` counts them.
fn checker<'s>(
    s: &'s thread::Scope<'s, '_>,
    address: String,
    flags: Flags,
    stop: &'s AtomicBool,
    done: &'s AtomicU32,
) -> thread::ScopedJoinHandle<'s, u32> {
    s.spawn(move || {
        let client = Client::new(&address, flags).expect("client");
        client.set_timeout(TIMEOUT);
        let mut n = 0u32;
        while n < CHECKS || !stop.load(Ordering::Relaxed) {
            let id = format!("checker-{flags:?}-{n}").into_bytes();
            let data = big_session(n)[..100 + (n as usize % 4000)].to_vec();
            let start = Instant::now();
            client.add(&id, &data, 60_000).expect("checker add");
            assert_eq!(client.get(&id).expect("checker get"), Some(data));
            assert!(client.remove(&id).expect("checker remove"));
            let took = start.elapsed();
            assert!(
                took <= 3 * TIMEOUT,
                "three calls took {took:?} (timeout {TIMEOUT:?} each)"
            );
            n += 1;
            done.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(5));
        }
        n
    })
}

/// How a client leaves a request half-sent.
fn partial_requests() -> Vec<Vec<u8>> {
    let get = get_frame(7, &big_id(0));
    // The first of the frames of a 5000-byte ADD: complete = 0.
    let mut add = Vec::new();
    add.extend_from_slice(&60_000u32.to_be_bytes());
    add.extend_from_slice(&4u32.to_be_bytes());
    add.extend_from_slice(b"half");
    add.extend(std::iter::repeat_n(0x5a, 5000));
    let mut first = common::raw_frame(false, 0, 8, &add[..2048]);
    first[11] = 0;
    vec![
        get[..5].to_vec(),
        get[..14].to_vec(),
        get[..get.len() - 1].to_vec(),
        first.clone(),
        [first, add[2048..3000].to_vec()].concat(),
    ]
}

fn leave_mid_request(net: Net) {
    let (fds, server) = server_with_sessions(net);
    let (stop, done) = (AtomicBool::new(false), AtomicU32::new(0));
    let mut rounds = 0;
    let checked = thread::scope(|s| {
        let check = checker(s, server.address(), Flags::PERSISTENT, &stop, &done);
        // At least 40 rounds, and on until the checker has made its calls.
        while rounds < 40 || done.load(Ordering::Relaxed) < CHECKS {
            for (i, partial) in partial_requests().iter().enumerate() {
                let mut c = Raw::connect(server.endpoint());
                c.send(partial);
                c.close((rounds + i) % 2 == 0);
            }
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        check.join().expect("checker")
    });
    let mut server = server;
    assert!(server.is_running(), "dc_server died");
    let left = wait_fds_back(&server, fds);
    println!(
        "{net:?}: {} clients left mid-request; the checker made {checked} round trips \
         meanwhile; descriptors {fds} before, {left} after",
        rounds * partial_requests().len()
    );
}

#[test]
fn clients_leaving_mid_request_unix() {
    leave_mid_request(Net::Unix);
}

#[test]
fn clients_leaving_mid_request_tcp() {
    leave_mid_request(Net::Tcp);
}

/// Waves of 50 clients that each pipeline 200 GETs of 32 KiB sessions
/// (6.4 MB of replies), read the first 10 KB, and leave (a TCP one half the
/// time with a reset).
fn leave_mid_reply(net: Net) {
    let (fds, server) = server_with_sessions(net);
    let (stop, done) = (AtomicBool::new(false), AtomicU32::new(0));
    let clients = 50u32;
    let mut waves = 0;
    let checked = thread::scope(|s| {
        let check = checker(s, server.address(), Flags::empty(), &stop, &done);
        // Waves of 50, on until the checker has made its calls.
        while waves == 0 || done.load(Ordering::Relaxed) < CHECKS {
            let leavers: Vec<_> = (0..clients)
                .map(|c| {
                    let endpoint = server.endpoint().clone();
                    s.spawn(move || {
                        let mut raw = Raw::connect(&endpoint);
                        let burst: Vec<u8> = (0..200u32)
                            .flat_map(|uid| get_frame(uid, &big_id(uid % STORED)))
                            .collect();
                        raw.send(&burst);
                        let mut some = vec![0u8; 10_000];
                        raw.read_exact(&mut some);
                        // The first reply's first frame, for session 0.
                        assert_eq!(&some[14..14 + 100], &big_session(0)[..100]);
                        raw.close(c % 2 == 0);
                    })
                })
                .collect();
            for l in leavers {
                l.join().expect("a client leaving mid-reply");
            }
            waves += 1;
        }
        stop.store(true, Ordering::Relaxed);
        check.join().expect("checker")
    });
    let mut server = server;
    assert!(server.is_running(), "dc_server died");
    let left = wait_fds_back(&server, fds);
    println!(
        "{net:?}: {} clients left mid-reply; the checker made {checked} round trips \
         meanwhile; descriptors {fds} before, {left} after",
        waves * clients
    );
}

#[test]
fn clients_leaving_mid_reply_unix() {
    leave_mid_reply(Net::Unix);
}

#[test]
fn clients_leaving_mid_reply_tcp() {
    leave_mid_reply(Net::Tcp);
}

/// 50 clients each pipeline 1000 GETs of 32 KiB sessions (32 MB of
/// replies each, 1.6 GB in all) and never read. While they stay connected
/// the server's resident memory stays under [`RSS_BOUND_KIB`] and other
/// clients are served; once they leave, every descriptor is closed.
#[test]
fn clients_that_never_read() {
    /// A fixed bound, generous next to what the server needs (it keeps at
    /// most 64 KiB of replies plus one reply, and a 64 KiB read buffer, per
    /// connection) and tiny next to the 1.6 GB the replies add up to.
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let (fds, server) = server_with_sessions(Net::Unix);
    let rss_before = server.rss_kib();
    let (stop, done) = (AtomicBool::new(false), AtomicU32::new(0));
    let clients = 50u32;
    let burst: Vec<u8> = (0..1000u32)
        .flat_map(|uid| get_frame(uid, &big_id(uid % STORED)))
        .collect();
    let mut idle = Vec::new();
    for _ in 0..clients {
        let mut raw = Raw::connect(server.endpoint());
        raw.send(&burst);
        idle.push(raw);
    }
    let (checked, rss_max, fds_connected) = thread::scope(|s| {
        let persistent = checker(s, server.address(), Flags::PERSISTENT, &stop, &done);
        let per_op = checker(s, server.address(), Flags::empty(), &stop, &done);
        let mut rss_max = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            rss_max = rss_max.max(server.rss_kib());
            thread::sleep(Duration::from_millis(100));
        }
        let fds_connected = open_fds(server.pid());
        stop.store(true, Ordering::Relaxed);
        let checked = persistent.join().expect("checker") + per_op.join().expect("checker");
        (checked, rss_max, fds_connected)
    });
    println!(
        "50 clients that never read: dc_server VmRSS {rss_before} KiB before, at most \
         {rss_max} KiB while connected (bound {RSS_BOUND_KIB} KiB); {fds_connected} \
         descriptors open; the checkers made {checked} round trips meanwhile"
    );
    assert!(
        fds_connected >= fds + clients as usize,
        "the clients are not all connected: {fds_connected} descriptors, {fds} at rest"
    );
    assert!(
        rss_max < RSS_BOUND_KIB,
        "dc_server VmRSS reached {rss_max} KiB with {clients} clients not reading"
    );
    for raw in idle {
        raw.close(false);
    }
    let mut server = server;
    assert!(server.is_running(), "dc_server died");
    let left = wait_fds_back(&server, fds);
    println!(
        "after they left: {left} descriptors, VmRSS {} KiB",
        server.rss_kib()
    );
}
