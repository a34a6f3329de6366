//! dc_server and the Server engine under hostile or awkward clients: memory
//! per connection stays bounded, stopping completes, listeners coexist.

mod common;
mod dc_server;

use common::connect_unix;
use dc_server::DcServer;
use distcache::{Address, Client, Flags};
use distcache::{Server, ServerConfig};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

fn frame(op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    common::raw_frame(false, op, uid, payload)
}

/// Thousands of tiny pipelined GETs for a 32 KiB session, left unread: the
/// server must not build all the replies (144 MB) in memory, and must still
/// deliver every one of them in order once the client reads.
#[test]
fn pipelined_gets_do_not_amplify_memory() {
    let srv = DcServer::start(&[]);
    let client = Client::new(&srv.address(), Flags::empty()).unwrap();
    let data: Vec<u8> = (0..32_768u32 - 8 - 11).map(|i| (i % 251) as u8).collect();
    client.add(b"big-session", &data, 60_000).unwrap();

    let mut conn = connect_unix(srv.socket(), Duration::from_secs(10));
    let count = 4000u32;
    let mut burst = Vec::new();
    for uid in 0..count {
        burst.extend(frame(1, uid, b"big-session"));
    }
    conn.write_all(&burst).unwrap();
    thread::sleep(Duration::from_millis(500));
    let rss = srv.rss_kib();
    assert!(
        rss < 64 * 1024,
        "server RSS {rss} KiB with {count} unread 32 KiB replies"
    );

    let reply_len = 14 * 16 + data.len(); // 16 frames per reply
    let mut got = vec![0u8; reply_len];
    for uid in 0..count {
        conn.read_exact(&mut got).unwrap();
        assert_eq!(u32::from_be_bytes([got[5], got[6], got[7], got[8]]), uid);
    }
}

/// Stopping returns promptly even with a client that keeps sending and one
/// that sent half a request and went quiet.
#[test]
fn stop_completes_with_busy_and_half_sent_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let config = ServerConfig {
        listen: vec![Address::Unix(path.clone())],
        sessions: 100,
    };
    let server = Server::bind(&config).unwrap();
    let stop = server.stop_handle();
    let running = thread::spawn(move || server.run());

    let busy_path = path.clone();
    let busy = thread::spawn(move || {
        let mut c = connect_unix(&busy_path, Duration::from_secs(5));
        let mut reply = [0u8; 15];
        for uid in 0..100 {
            if c.write_all(&frame(3, uid, b"id")).is_err() || c.read_exact(&mut reply).is_err() {
                return uid; // the server hung up: it is stopping
            }
            thread::sleep(Duration::from_millis(50));
        }
        100
    });
    let mut half = connect_unix(&path, Duration::from_secs(5));
    half.write_all(&frame(3, 1, b"id")[..5]).unwrap();
    thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    stop.stop();
    while !running.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "run() did not return after stop()"
        );
        thread::sleep(Duration::from_millis(20));
    }
    running.join().unwrap().unwrap();
    assert!(
        busy.join().unwrap() < 100,
        "the busy client was not disconnected"
    );
}

/// `IP:port` and `IPv6:port` listen side by side on the same port.
#[test]
fn ipv4_and_ipv6_on_one_port() {
    // A port free a moment ago may be taken before the server binds it (by
    // another test's connection): then try another, a few times.
    let mut attempt = 0;
    let (mut server, v4, v6, ready) = loop {
        attempt += 1;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = DcServer::builder()
            .listen(format!("IP:{port}"))
            .arg("-listen")
            .arg(format!("IPv6:{port}"))
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        let v4 = format!("IP:127.0.0.1:{port}");
        let v6 = format!("IPv6:[::1]:{port}");
        let mut ready = false;
        let mut exited = None;
        while Instant::now() < deadline && !ready {
            if !server.is_running() {
                let status = server.wait_exit();
                exited = Some((status, server.stderr()));
                break;
            }
            ready = Client::new(&v4, Flags::empty()).unwrap().have(b"x").is_ok()
                && Client::new(&v6, Flags::empty()).unwrap().have(b"x").is_ok();
            thread::sleep(Duration::from_millis(20));
        }
        match exited {
            Some((_, err)) if err.contains("in use") && attempt < 5 => continue,
            Some((status, err)) => panic!("dc_server exited ({status}): {err}"),
            None => break (server, v4, v6, ready),
        }
    };
    let result = ready.then(|| {
        let a = Client::new(&v4, Flags::empty()).unwrap();
        let b = Client::new(&v6, Flags::empty()).unwrap();
        a.add(b"shared", b"one store", 60_000).unwrap();
        b.get(b"shared").unwrap()
    });
    server.kill();
    assert!(ready, "dc_server did not answer on both addresses");
    assert_eq!(result.flatten().as_deref(), Some(&b"one store"[..]));
}
