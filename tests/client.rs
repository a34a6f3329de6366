//! The blocking client against real and misbehaving servers: every call is
//! bounded by its timeout, wrong replies are failures, persistent
//! connections recover, and one client serves many threads.

mod common;
mod dc_server;

use dc_server::DcServer;
use distcache::{Client, ClientError, Flags};
use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A listener in a thread that accepts connections and hands each to `f`.
fn fake_server(
    f: impl Fn(std::os::unix::net::UnixStream) + Send + Sync + 'static,
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let f = Arc::new(f);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let f = f.clone();
            thread::spawn(move || f(conn));
        }
    });
    (dir, format!("UNIX:{}", path.display()))
}

/// Reads one 14-byte header and its payload; returns (uid, op).
fn read_request(conn: &mut std::os::unix::net::UnixStream) -> Option<(u32, u8)> {
    let mut h = [0u8; 14];
    conn.read_exact(&mut h).ok()?;
    let len = u16::from_be_bytes([h[12], h[13]]) as usize;
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).ok()?;
    Some((u32::from_be_bytes([h[5], h[6], h[7], h[8]]), h[10]))
}

fn reply(uid: u32, op: u8, payload: &[u8]) -> Vec<u8> {
    common::raw_frame(true, op, uid, payload)
}

fn assert_bounded(start: Instant, timeout: Duration) {
    let took = start.elapsed();
    assert!(took >= timeout, "failed before the timeout: {took:?}");
    // A loaded machine may run the test late; the bound proves the call ends.
    assert!(
        took <= timeout + Duration::from_secs(1),
        "failed too late: {took:?}"
    );
}

/// The first call to a silent server fails at its timeout; the next one,
/// with the address marked down, fails at once (tests/breaker.rs has the
/// rest of that rule).
#[test]
fn silent_server_fails_at_the_timeout() {
    let timeout = Duration::from_millis(400);
    for flags in [Flags::empty(), Flags::PERSISTENT] {
        let (_dir, addr) = fake_server(|mut c| {
            let mut sink = [0u8; 1024];
            while c.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
        });
        let client = Client::new(&addr, flags).unwrap();
        client.set_timeout(timeout);
        let start = Instant::now();
        assert!(matches!(client.have(b"id"), Err(ClientError::Network(_))));
        assert_bounded(start, timeout);
        let start = Instant::now();
        let err = client.get(b"id").unwrap_err();
        assert!(matches!(err, ClientError::Down { .. }), "{err:?}");
        assert!(start.elapsed() < timeout, "{:?}", start.elapsed());
    }
}

#[test]
fn half_a_reply_then_silence_fails_at_the_timeout() {
    let (_dir, addr) = fake_server(|mut c| {
        if let Some((uid, op)) = read_request(&mut c) {
            let r = reply(uid, op, &[0]);
            let _ = c.write_all(&r[..7]);
            thread::sleep(Duration::from_secs(5));
        }
    });
    let client = Client::new(&addr, Flags::empty()).unwrap();
    let timeout = Duration::from_millis(300);
    client.set_timeout(timeout);
    let start = Instant::now();
    assert!(client.have(b"id").is_err());
    assert_bounded(start, timeout);
}

#[test]
fn wrong_uid_or_operation_is_a_failure() {
    let (_d1, wrong_uid) = fake_server(|mut c| {
        while let Some((uid, op)) = read_request(&mut c) {
            let _ = c.write_all(&reply(uid.wrapping_add(1), op, &[0]));
        }
    });
    let (_d2, wrong_op) = fake_server(|mut c| {
        while let Some((uid, op)) = read_request(&mut c) {
            let _ = c.write_all(&reply(uid, (op + 1) % 4, &[0]));
        }
    });
    let (_d3, wrong_version) = fake_server(|mut c| {
        while let Some((uid, op)) = read_request(&mut c) {
            let mut r = reply(uid, op, &[0]);
            r[1] = 0x12;
            let _ = c.write_all(&r);
        }
    });
    for addr in [wrong_uid, wrong_op, wrong_version] {
        let client = Client::new(&addr, Flags::PERSISTENT).unwrap();
        client.set_timeout(Duration::from_secs(2));
        let err = client.have(b"id").unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::UnexpectedReply(_) | ClientError::Protocol(_)
            ),
            "{addr}: {err:?}"
        );
    }
}

#[test]
fn server_down_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("UNIX:{}", dir.path().join("none.sock").display());
    assert!(
        Client::new(&addr, Flags::PERSISTENT).is_err(),
        "persistent connects at once"
    );
    for flags in [Flags::empty(), Flags::PERSISTENT | Flags::PERSISTENT_LATE] {
        let client = Client::new(&addr, flags).expect("no network touched");
        let start = Instant::now();
        assert!(client.have(b"id").is_err());
        assert!(client.add(b"id", b"data", 1000).is_err());
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "{:?}",
            start.elapsed()
        );
    }
    // A TCP port nothing listens on (bound then released) is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("IP:127.0.0.1:{port}"), Flags::empty()).unwrap();
    let start = Instant::now();
    assert!(client.have(b"id").is_err());
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn persistent_connection_recovers_after_restart() {
    let mut srv = DcServer::start(&[]);
    let addr = srv.address();
    let retry = Client::new(&addr, Flags::PERSISTENT | Flags::PERSISTENT_RETRY).unwrap();
    let plain = Client::new(&addr, Flags::PERSISTENT).unwrap();
    retry.add(b"before", b"restart", 60_000).unwrap();
    assert!(plain.have(b"before").unwrap());

    srv.restart();
    // RETRY: the broken connection is replaced within the same call.
    assert!(
        !retry.have(b"before").unwrap(),
        "the new server starts empty"
    );
    // Without RETRY: this call fails, the next one reconnects.
    assert!(plain.have(b"before").is_err());
    assert!(!plain.have(b"before").unwrap());
}

#[test]
fn one_client_many_threads() {
    let srv = DcServer::start(&["-sessions", "100000"]);
    for flags in [Flags::empty(), Flags::PERSISTENT] {
        let client = Arc::new(Client::new(&srv.address(), flags).unwrap());
        let workers: Vec<_> = (0..8u32)
            .map(|t| {
                let client = client.clone();
                thread::spawn(move || {
                    for i in 0..500u32 {
                        let id = format!("{flags:?}-{t}-{i}").into_bytes();
                        let data: Vec<u8> = (0..64 + (i % 300)).map(|b| (b ^ t) as u8).collect();
                        client.add(&id, &data, 60_000).unwrap();
                        assert_eq!(client.get(&id).unwrap(), Some(data.clone()));
                        assert_eq!(client.reget(&id), Some(data));
                        assert!(client.have(&id).unwrap());
                        assert!(client.remove(&id).unwrap());
                        assert!(!client.have(&id).unwrap());
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
    }
}

#[test]
fn bad_arguments_fail_without_traffic() {
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = connections.clone();
    let (_dir, addr) = fake_server(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let client = Client::new(&addr, Flags::empty()).unwrap();
    assert!(matches!(
        client.add(b"", b"d", 1),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.add(b"i", b"", 1),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(matches!(
        client.have(b""),
        Err(ClientError::InvalidArgument(_))
    ));
    let big = vec![0u8; 32768 - 8 - 2 + 1];
    assert!(matches!(
        client.add(b"id", &big, 1),
        Err(ClientError::TooLarge)
    ));
    assert!(client.reget(b"id").is_none());
    thread::sleep(Duration::from_millis(50));
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was sent"
    );
}

extern "C" fn on_signal(_: libc::c_int) {}

/// A signal that interrupts a call's wait (as a host's timers, profilers or
/// Apache's restarts do) neither fails the call nor stretches its deadline.
#[test]
#[allow(unsafe_code)] // installing a signal handler
fn signals_do_not_fail_a_call() {
    let (_dir, addr) = fake_server(|mut c| {
        while let Some((uid, op)) = read_request(&mut c) {
            thread::sleep(Duration::from_millis(300));
            let _ = c.write_all(&reply(uid, op, &[0]));
        }
    });
    // A handler that does nothing, without SA_RESTART, so that the signal
    // interrupts the client's poll(2) with EINTR.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR2, &action) }.expect("sigaction");
    let me = pthread_self();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let pinger = thread::spawn(move || {
        let mut sent = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            // `me` is the test thread, alive until `done` is set.
            pthread_kill(me, Signal::SIGUSR2).expect("pthread_kill");
            sent += 1;
            thread::sleep(Duration::from_millis(20));
        }
        sent
    });
    let client = Client::new(&addr, Flags::empty()).unwrap();
    client.set_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let found = client.have(b"id");
    let took = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = pinger.join().unwrap();
    assert!(sent >= 5, "only {sent} signals were sent");
    assert!(found.unwrap(), "interrupted call failed");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

/// `reget` remembers the last session fetched per client, per thread: a get
/// on another client in between does not lose it; any other operation on the
/// same client does.
#[test]
fn reget_is_per_client_and_per_thread() {
    let srv = DcServer::start(&[]);
    let a = Client::new(&srv.address(), Flags::PERSISTENT).unwrap();
    let b = Client::new(&srv.address(), Flags::empty()).unwrap();
    a.add(b"id-a", b"data for a", 60_000).unwrap();
    a.add(b"id-b", b"data for b", 60_000).unwrap();
    assert_eq!(a.get(b"id-a").unwrap().as_deref(), Some(&b"data for a"[..]));
    assert_eq!(b.get(b"id-b").unwrap().as_deref(), Some(&b"data for b"[..]));
    assert_eq!(a.reget(b"id-a").as_deref(), Some(&b"data for a"[..]));
    assert_eq!(b.reget(b"id-b").as_deref(), Some(&b"data for b"[..]));
    assert_eq!(a.reget(b"id-b"), None, "another id");
    let a = Arc::new(a);
    let other = a.clone();
    let from_other_thread = thread::spawn(move || other.reget(b"id-a")).join().unwrap();
    assert_eq!(from_other_thread, None, "another thread");
    assert!(a.have(b"id-a").unwrap());
    assert_eq!(
        a.reget(b"id-a"),
        None,
        "after another operation on the same client"
    );
}
