//! The breaker against a real dc_server that goes silent (SIGSTOP: the
//! kernel still accepts its connections, nothing answers) or down (SIGKILL),
//! and comes back: a silent address costs one timeout per back-off period,
//! not one per operation; it is found again within the back-off and a
//! second; many threads share it and only one probes at a time; a refused
//! connection fails at once. A forked child is in `breaker_fork.c`, run by
//! `forked_child_inherits_the_down_state` here.

#[allow(dead_code)] // shared with the C harness; a part is used here
#[path = "c_support/mod.rs"]
mod c_support;
mod dc_server;

use dc_server::{DcServer, Net};
use distcache::NalError;
use distcache::{Client, ClientError, Flags};
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(500);

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    TimedOut,
    Down,
    Other,
}

/// A handshake's calls: GET, then ADD of the session when it was missing.
fn handshake_call(client: &Client, n: usize) -> (End, Instant, Instant) {
    let id = format!("session-{n}").into_bytes();
    let start = Instant::now();
    let r = match client.get(&id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => client.add(&id, &[7u8; 300], 60_000),
        Err(e) => Err(e),
    };
    let end = match r {
        Ok(()) => End::Ok,
        Err(ClientError::Network(NalError::TimedOut)) => End::TimedOut,
        Err(ClientError::Down { .. }) => End::Down,
        Err(_) => End::Other,
    };
    (end, start, Instant::now())
}

fn client(address: &str, flags: Flags) -> Client {
    let client = Client::new(address, flags).expect("client");
    client.set_timeout(TIMEOUT);
    client.set_backoff(distcache::Backoff::default());
    client
}

fn fifty_calls_cost_at_most_two_timeouts(net: Net, flags: Flags) {
    let server = DcServer::builder().net(net).start();
    let client = client(&server.address(), flags);
    assert_eq!(handshake_call(&client, 0).0, End::Ok);
    server.pause();
    let start = Instant::now();
    let ends: Vec<End> = (1..=50).map(|n| handshake_call(&client, n).0).collect();
    let took = start.elapsed();
    server.resume();
    let timed_out = ends.iter().filter(|e| **e == End::TimedOut).count();
    let down = ends.iter().filter(|e| **e == End::Down).count();
    println!("{net:?} flags {flags:?}: 50 calls in {took:?}: {timed_out} timed out, {down} down");
    assert_eq!(ends[0], End::TimedOut, "{ends:?}");
    assert!(timed_out <= 2, "{ends:?}");
    assert_eq!(timed_out + down, 50, "{ends:?}");
    assert!(took <= TIMEOUT * 2, "50 calls took {took:?}");
}

#[test]
fn silent_server_50_calls_flags_0_unix() {
    fifty_calls_cost_at_most_two_timeouts(Net::Unix, Flags::empty());
}
#[test]
fn silent_server_50_calls_persistent_unix() {
    fifty_calls_cost_at_most_two_timeouts(Net::Unix, Flags::PERSISTENT);
}
#[test]
fn silent_server_50_calls_flags_0_tcp() {
    fifty_calls_cost_at_most_two_timeouts(Net::Tcp, Flags::empty());
}
#[test]
fn silent_server_50_calls_persistent_tcp() {
    fifty_calls_cost_at_most_two_timeouts(
        Net::Tcp,
        Flags::PERSISTENT | Flags::PERSISTENT_RETRY | Flags::PERSISTENT_LATE,
    );
}

/// After a failed probe the back-off is 2 s; once the server answers again
/// a call succeeds within that back-off and a second, and the calls before
/// it fail at once.
#[test]
fn server_comes_back_within_the_backoff_and_a_second() {
    let server = DcServer::builder().net(Net::Unix).start();
    let client = client(&server.address(), Flags::PERSISTENT);
    assert_eq!(handshake_call(&client, 0).0, End::Ok);
    server.pause();
    assert_eq!(handshake_call(&client, 1).0, End::TimedOut);
    assert_eq!(handshake_call(&client, 2).0, End::Down);
    // The probe after the first second times out too.
    thread::sleep(client.health().retry_in + Duration::from_millis(20));
    assert_eq!(handshake_call(&client, 3).0, End::TimedOut);
    let health = client.health();
    assert!(
        health.down && health.backoff == Duration::from_secs(2),
        "{health:?}"
    );

    server.resume();
    let back = Instant::now();
    let limit = health.backoff + Duration::from_secs(1);
    let mut n = 4;
    loop {
        let (end, start, done) = handshake_call(&client, n);
        n += 1;
        if end == End::Ok {
            break;
        }
        assert_eq!(end, End::Down, "call {n} after the server came back");
        assert!(
            done - start < TIMEOUT / 2,
            "a down call took {:?}",
            done - start
        );
        assert!(back.elapsed() <= limit, "still failing after {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
    println!("back after {:?} (limit {limit:?})", back.elapsed());
    assert!(!client.health().down);
    assert_eq!(handshake_call(&client, n).0, End::Ok);
}

/// 16 threads, half on one shared client and half on a client each, all to
/// one address, for three seconds against a silent server: the first calls
/// in flight time out together, then everything fails at once but for one
/// probe at a time, each after its back-off.
#[test]
fn sixteen_threads_share_the_breaker_and_probe_one_at_a_time() {
    const THREADS: usize = 16;
    let server = DcServer::builder().net(Net::Tcp).start();
    let address = server.address();
    let shared = client(&address, Flags::PERSISTENT | Flags::PERSISTENT_RETRY);
    assert_eq!(handshake_call(&shared, 0).0, End::Ok);
    let before = distcache::internals::client::breaker_stats();
    server.pause();
    let start = Instant::now();
    let calls: Vec<(End, Instant, Instant)> = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (shared, address) = (&shared, &address);
                s.spawn(move || {
                    let own = (t % 2 == 1).then(|| client(address, Flags::empty()));
                    let c = own.as_ref().unwrap_or(shared);
                    let mut calls = Vec::new();
                    let mut n = t * 10_000;
                    while start.elapsed() < Duration::from_secs(3) {
                        calls.push(handshake_call(c, n));
                        n += 1;
                        thread::sleep(Duration::from_millis(5));
                    }
                    calls
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    server.resume();
    let stats = distcache::internals::client::breaker_stats();

    let first_down = calls
        .iter()
        .filter(|c| c.0 == End::Down)
        .map(|c| c.1)
        .min()
        .expect("some call failed at once");
    let burst = calls
        .iter()
        .filter(|c| c.0 == End::TimedOut && c.1 < first_down)
        .count();
    let mut probes: Vec<(Instant, Instant)> = calls
        .iter()
        .filter(|c| c.0 == End::TimedOut && c.1 >= first_down)
        .map(|c| (c.1, c.2))
        .collect();
    probes.sort();
    let down = calls.iter().filter(|c| c.0 == End::Down).count();
    println!(
        "{} calls: {burst} timed out in the first burst, {} probes, {down} failed at once; \
         stats before {before:?} after {stats:?}",
        calls.len(),
        probes.len()
    );
    assert!(
        calls
            .iter()
            .all(|c| matches!(c.0, End::TimedOut | End::Down)),
        "a call ended otherwise against a silent server"
    );
    assert!(
        burst <= THREADS,
        "{burst} calls timed out in the first burst"
    );
    // Back-offs of 1 s then 2 s after the first timeout: one or two probes
    // within three seconds, never two at once.
    assert!(
        (1..=2).contains(&probes.len()),
        "{} probes in 3 s",
        probes.len()
    );
    for pair in probes.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two probes overlapped: {pair:?}");
    }
    assert!(
        stats.trips > before.trips && stats.fast_failures >= before.fast_failures + down as u64
    );
}

/// After its back-off an address is probed by one call, and every other
/// call made while that probe is under way fails at once with `Down`, told
/// to retry when the probe's lease (its timeout and a grace period) runs
/// out: however long ago the back-off ended, and although the server is up
/// (only slow to answer, as on a loaded machine). Once the probe has
/// reached the server, calls go through again.
#[test]
fn calls_while_the_address_is_probed_fail_at_once() {
    const LONG: Duration = Duration::from_secs(2);
    let backoff = distcache::Backoff {
        min: Duration::from_millis(200),
        max: Duration::from_millis(400),
    };
    let port = dc_server::free_tcp_port();
    let client = Client::new(&format!("IP:127.0.0.1:{port}"), Flags::empty()).expect("client");
    client.set_timeout(LONG);
    client.set_backoff(backoff);
    // Nothing listens yet: refused, and down for the first back-off.
    assert!(matches!(client.have(b"x"), Err(ClientError::Network(_))));
    assert!(client.health().down);
    let server = DcServer::builder().tcp_on(port).start();
    thread::sleep(backoff.max * 2);
    assert!(!client.health().down, "the back-off is over");
    server.pause();
    thread::scope(|s| {
        let probe = s.spawn(|| client.have(b"x"));
        let start = Instant::now();
        while client.health().retry_in <= backoff.max {
            assert!(start.elapsed() < LONG, "no probe under way");
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(100));
        match client.have(b"y") {
            Err(ClientError::Down { retry_in }) => assert!(
                retry_in > backoff.max && retry_in < LONG + Duration::from_secs(1),
                "{retry_in:?}"
            ),
            other => panic!("a call during the probe: {other:?}"),
        }
        server.resume();
        assert!(!probe.join().expect("probe").expect("the probe"));
    });
    assert!(!client.have(b"y").expect("after the probe"));
    assert!(!client.health().down);
}

/// A refused connection (the server is gone) fails at once, as it always
/// did; it marks the address down, so the next calls do not even try.
#[test]
fn refused_connection_fails_at_once() {
    for net in [Net::Unix, Net::Tcp] {
        let mut server = DcServer::builder().net(net).start();
        let client = client(&server.address(), Flags::empty());
        assert_eq!(handshake_call(&client, 0).0, End::Ok);
        server.kill();
        let (end, start, done) = handshake_call(&client, 1);
        assert_eq!(end, End::Other, "{net:?}: the refused call");
        assert!(
            done - start < TIMEOUT / 2,
            "{net:?}: took {:?}",
            done - start
        );
        let (end, start, done) = handshake_call(&client, 2);
        assert_eq!(end, End::Down, "{net:?}: the call after");
        assert!(
            done - start < TIMEOUT / 2,
            "{net:?}: took {:?}",
            done - start
        );
        assert!(client.health().down);
    }
}

/// The C program `breaker_fork.c`: threads and a child forked while the
/// address is down, with the breaker on (back-off 1 s to 2 s) and off.
#[test]
fn forked_child_inherits_the_down_state() {
    let server = DcServer::builder().net(Net::Unix).start();
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = c_support::compile_harness("breaker_fork", dir.path());
    for down_ms in ["1000:2000", "0"] {
        let mut cmd = std::process::Command::new(&prog);
        cmd.arg(server.address())
            .arg(TIMEOUT.as_millis().to_string())
            .env("DISTCACHE_DOWN_MS", down_ms);
        let what = format!(
            "breaker_fork {} (DISTCACHE_DOWN_MS={down_ms})",
            server.address()
        );
        let mut p = c_support::Proc::spawn(&what, &mut cmd, true);
        p.wait_line("READY silent", Duration::from_secs(60));
        server.pause();
        p.send_line("go");
        p.wait_line("READY back", Duration::from_secs(60));
        server.resume();
        p.send_line("go");
        p.finish_ok(Duration::from_secs(60));
    }
}

/// dc_test prints the breaker's counts: none after a healthy run; after a
/// run against a server that is gone, the address marked down once.
#[test]
fn dc_test_prints_the_breaker_counts() {
    let mut server = DcServer::builder()
        .net(Net::Unix)
        .args(&["-sessions", "1000"])
        .start();
    let address = server.address();
    let dc_test = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dc_test"))
            .args(["-connect", &address])
            .args(args)
            .env_remove("DISTCACHE_DOWN_MS")
            .output()
            .expect("run dc_test");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = dc_test(&["-sessions", "10", "-ops", "200"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "breaker     0 marked down, 0 failed probes, 0 marked up, 0 calls failed at once"
        ),
        "{stdout}"
    );
    server.kill();
    let (code, stdout, stderr) = dc_test(&["-sessions", "10", "-ops", "200", "-clients", "4"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("Info, breaker: 1 marked down, 0 failed probes, 0 marked up"),
        "{stderr}"
    );
}
