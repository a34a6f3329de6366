//! A gateway to a single real `redis-server` when things go wrong: REMOVE
//! without a replica, a wrong or missing password, nothing listening, a
//! node that never answers, Redis killed and restarted under a gateway and
//! under dc_client, the outage log, an ACL user, and options that do not
//! apply to Redis. Every answer comes within `-store-timeout`, as a
//! failure, never a miss or "stored".
//!
//! Needs `redis-server` and `redis-cli` (`apt-get install -y redis-server
//! redis-tools`); without them every test here fails, naming the package.

mod common;
mod dc_server;
mod redis_support;

use common::run_tool;
use dc_server::DcServer;
use distcache::{Client, ClientError, Flags};
use redis_support::{
    bounded_gateway, client, dc_server, failed_start, file_with, gateway, spec, RedisProc,
    CLIENT_TIMEOUT, PATIENT_MS, STORE_TIMEOUT_MS,
};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn remove_waits_for_a_replica() {
    let r = RedisProc::start(&[]);
    let timeout = STORE_TIMEOUT_MS.to_string();
    let synced = gateway(&spec(&r), &["-store-timeout", &timeout]);
    let c = client(&synced);
    c.add(b"lonely", b"no replica to wait for", 60_000).unwrap();
    let began = Instant::now();
    let got = c.remove(b"lonely");
    let took = began.elapsed();
    assert!(
        matches!(got, Err(ClientError::UnexpectedReply(_))),
        "with no replica a REMOVE reports failure, got {got:?}"
    );
    assert!(
        took < Duration::from_millis(STORE_TIMEOUT_MS + 1000),
        "answered within the bound: {took:?}"
    );
    // With a replica, the same REMOVE succeeds.
    let replica = RedisProc::start(&["--replicaof", "127.0.0.1", &r.port.to_string()]);
    let start = Instant::now();
    while !r
        .cli(&["info", "replication"])
        .contains("connected_slaves:1")
    {
        assert!(start.elapsed() < Duration::from_secs(20), "replica in sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A bound that a loaded test machine keeps for sure.
    let patient = gateway(&spec(&r), &["-store-timeout", &PATIENT_MS.to_string()]);
    let c = client(&patient);
    c.add(b"kept", b"replicated", 60_000).unwrap();
    assert!(c.remove(b"kept").expect("REMOVE with a replica"));
    assert!(!c.remove(b"kept").unwrap());
    let replica_keys = replica.cli(&["exists", "dc:kept"]);
    assert_eq!(replica_keys.trim(), "0", "the replica has the removal");
}

#[test]
fn start_faults_are_clear_and_bounded() {
    let bound = Duration::from_millis(3 * 500 + 2000);
    // Nothing listens.
    let closed = redis_support::free_port();
    let (err, took) = failed_start(&format!("redis://127.0.0.1:{closed}"), &[]);
    assert!(err.contains("no Redis seed answered"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert!(took < bound, "{took:?}");

    // A node that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        silent.set_nonblocking(true).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            if let Ok((s, _)) = silent.accept() {
                conns.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (err, took) = failed_start(&format!("redis://127.0.0.1:{port}"), &[]);
    assert!(err.contains("no answer within 500 ms"), "{err}");
    assert!(took < bound, "{took:?}");

    // A wrong password; then the right one works.
    let r = RedisProc::start(&["--requirepass", "right-one"]);
    let dir = tempfile::tempdir().unwrap();
    let wrong = file_with(&dir, "wrong", "wrong-one\n");
    let (err, took) = failed_start(&spec(&r), &["-store-auth", wrong.to_str().unwrap()]);
    assert!(err.to_lowercase().contains("password"), "{err}");
    assert!(took < bound, "{took:?}");
    let (err, _) = failed_start(&spec(&r), &[]);
    assert!(
        err.contains("NOAUTH") || err.contains("uthentication"),
        "{err}"
    );
    let right = file_with(&dir, "right", "right-one\n");
    let gw = gateway(
        &spec(&r),
        &[
            "-store-auth",
            right.to_str().unwrap(),
            "-store-remove-sync",
            "off",
        ],
    );
    let c = client(&gw);
    c.add(b"auth", b"logged in", 60_000).unwrap();
    assert!(c.have(b"auth").unwrap());
    let _ = held.join();
}

#[test]
fn redis_down_is_a_failure_within_the_bound_then_the_gateway_reconnects() {
    let mut r = RedisProc::start(&[]);
    let gw = bounded_gateway(&r, "outage:", STORE_TIMEOUT_MS);
    let c = client(&gw);
    c.add(b"before", b"stored before the outage", 60_000)
        .unwrap();
    r.kill();
    for _ in 0..3 {
        let began = Instant::now();
        let get = c.get(b"before");
        let add = c.add(b"during", b"not stored", 60_000);
        let have = c.have(b"before");
        let took = began.elapsed();
        assert!(get.is_err(), "a failure, never a miss or a hit: {get:?}");
        assert!(add.is_err(), "never a false 'stored': {add:?}");
        assert!(have.is_err(), "{have:?}");
        assert!(
            took < Duration::from_millis(3 * STORE_TIMEOUT_MS + 1500),
            "three answers within the bound: {took:?}"
        );
    }
    // The same port again (the data is gone: no persistence here).
    r.restart();
    let start = Instant::now();
    loop {
        match c.add(b"after", b"stored after the outage", 60_000) {
            Ok(()) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "the gateway did not reconnect: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        c.get(b"after").unwrap().as_deref(),
        Some(&b"stored after the outage"[..])
    );
}

/// Redis stopped (SIGSTOP: its connections stay open and nothing is
/// answered) while a gateway serves: every request, whichever way the
/// gateway sends it, is a failure within the bound; once Redis runs again,
/// the gateway answers again by itself.
#[test]
fn a_silent_redis_is_a_failure_within_the_bound_then_answers_again() {
    use nix::sys::signal::{kill, Signal};
    let r = RedisProc::start(&[]);
    let gw = bounded_gateway(&r, "silent:", STORE_TIMEOUT_MS);
    let c = client(&gw);
    c.add(b"before", b"stored before the silence", 60_000)
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(r.child.id() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP redis-server");
    // Let it run again even if an assertion below fails.
    struct Resume(nix::unistd::Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let resume = Resume(pid);
    for round in 0..4 {
        let began = Instant::now();
        let get = c.get(b"before");
        let took = began.elapsed();
        assert!(
            get.is_err(),
            "round {round}: a failure, never a miss: {get:?}"
        );
        assert!(
            took < Duration::from_millis(STORE_TIMEOUT_MS + 1500),
            "round {round}: answered within the bound: {took:?}"
        );
        let add = c.add(b"during", b"not stored", 60_000);
        assert!(
            add.is_err(),
            "round {round}: never a false 'stored': {add:?}"
        );
    }
    drop(resume);
    let start = Instant::now();
    loop {
        match c.get(b"before") {
            Ok(found) => {
                assert_eq!(found.as_deref(), Some(&b"stored before the silence"[..]));
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "the gateway did not answer again: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn options_that_do_not_apply_are_refused() {
    for extra in [
        &["-sessions", "100"][..],
        &["-maxbytes", "1M"],
        &["-sync", "always"],
    ] {
        let run = run_tool(
            dc_server()
                .args([
                    "-listen",
                    "UNIX:/nonexistent/x.sock",
                    "-store",
                    "redis://127.0.0.1:1",
                ])
                .args(extra),
            Duration::from_secs(10),
        );
        assert_eq!(run.code, Some(1), "{extra:?}");
        assert!(run.stderr.contains("Redis"), "{extra:?}: {}", run.stderr);
    }
    let run = run_tool(
        dc_server().args(["-listen", "UNIX:/nonexistent/x.sock", "-store-prefix", "x:"]),
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("need -store redis://"),
        "{}",
        run.stderr
    );
    let run = run_tool(
        dc_server().args(["-listen", "UNIX:/x.sock", "-store", "redis://u:pw@h:1"]),
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("-store-auth"), "{}", run.stderr);
}

/// An outage (failures for over a second) is logged once when it begins
/// and once when it ends, however many requests fail meanwhile.
#[test]
fn an_outage_is_logged_once_with_its_start_and_end() {
    let mut r = RedisProc::start(&[]);
    let timeout = STORE_TIMEOUT_MS.to_string();
    let mut gw = DcServer::builder()
        .args(&["-store", &spec(&r), "-store-remove-sync", "off"])
        .args(&["-store-timeout", &timeout])
        .start();
    let c = Client::new(&gw.address(), Flags::PERSISTENT).unwrap();
    c.set_timeout(CLIENT_TIMEOUT);
    c.add(b"a", b"before the outage", 60_000).unwrap();
    r.kill();
    // Failures for over a second make an outage.
    let killed = Instant::now();
    while killed.elapsed() < Duration::from_millis(1500) {
        assert!(c.get(b"a").is_err());
        std::thread::sleep(Duration::from_millis(50));
    }
    r.restart();
    let start = Instant::now();
    while c.add(b"b", b"after the outage", 60_000).is_err() {
        assert!(start.elapsed() < Duration::from_secs(15), "reconnected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.wait_for_log("Redis answers again", Duration::from_secs(5)),
        "{}",
        gw.stderr()
    );
    gw.kill();
    let text = gw.stderr();
    assert_eq!(text.matches("Redis is failing").count(), 1, "{text}");
    assert_eq!(text.matches("Redis answers again").count(), 1, "{text}");
}

/// The farm's path: a client, dc_client, a gateway, Redis. A Redis outage
/// reaches the client as failed operations, answered by the gateway, so
/// dc_client does not take the gateway for dead; once Redis is back the
/// same path serves again.
#[test]
fn through_dc_client_to_a_gateway() {
    let mut r = RedisProc::start(&[]);
    let gw = bounded_gateway(&r, "proxied:", 300);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let mut proxy = common::spawn_listening(
        Command::new(common::dc_client_bin())
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .args(["-server", &gw.address(), "-timeout", "2000"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
        &socket,
    );
    let c = Client::new(&format!("UNIX:{}", socket.display()), Flags::PERSISTENT).unwrap();
    c.set_timeout(CLIENT_TIMEOUT);
    let direct = client(&gw);
    c.add(b"via proxy", b"stored through dc_client", 60_000)
        .unwrap();
    assert_eq!(
        direct.get(b"via proxy").unwrap().as_deref(),
        Some(&b"stored through dc_client"[..])
    );
    assert!(c.remove(b"via proxy").unwrap());
    r.kill();
    for _ in 0..3 {
        let began = Instant::now();
        let got = c.get(b"via proxy");
        assert!(
            matches!(got, Err(ClientError::UnexpectedReply(_))),
            "the gateway's failure, passed on: {got:?}"
        );
        assert!(began.elapsed() < Duration::from_millis(300 + 1500));
    }
    r.restart();
    let start = Instant::now();
    while c.add(b"again", b"after the outage", 60_000).is_err() {
        assert!(start.elapsed() < Duration::from_secs(15), "served again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.have(b"again").unwrap());
    proxy.kill();
}

/// `redis://USER@HOST:PORT` with the password from `-store-auth`: an ACL
/// user of Redis 6 and later.
#[test]
fn an_acl_user_with_its_password_from_a_file() {
    let r = RedisProc::start(&[
        "--user",
        "gateway",
        "on",
        ">its-secret",
        "~*",
        "&*",
        "+@all",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = file_with(&dir, "secret", "its-secret\n");
    let store = format!("redis://gateway@{}", r.node());
    let gw = gateway(
        &store,
        &[
            "-store-auth",
            secret.to_str().unwrap(),
            "-store-remove-sync",
            "off",
        ],
    );
    let c = client(&gw);
    c.add(b"acl", b"stored as an ACL user", 60_000).unwrap();
    assert!(c.have(b"acl").unwrap());
    // The worker's own connection logged in and carried the HAVE.
    let clients = r.cli(&["client", "list"]);
    assert!(
        clients.lines().any(|l| l.contains("name=distcache-worker")
            && l.contains("user=gateway")
            && l.contains("cmd=exists")),
        "{clients}"
    );
    assert!(
        gw.log_lines("worker's connection").is_empty(),
        "{}",
        gw.stderr()
    );
    let wrong = format!("redis://someone-else@{}", r.node());
    let (err, _) = failed_start(&wrong, &["-store-auth", secret.to_str().unwrap()]);
    assert!(err.to_lowercase().contains("password"), "{err}");
}
