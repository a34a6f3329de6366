//! dc_client in front of a dc_server that goes silent (SIGSTOP) and comes
//! back, with the client library behind it: the proxy gives up on the
//! stalled server at its own timeout, shorter than the library's, marks it
//! down and answers every request at once for the back-off, probes it with
//! one request, and logs each transition.

use super::common;
use super::dc_server::{DcServer, Net};
use distcache::{Client, ClientError, Flags};
use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The library's timeout here: its default.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1000);
/// dc_client's stall timeout: its default.
const PROXY_TIMEOUT: Duration = Duration::from_millis(500);

struct DcClient {
    _child: common::Reaped,
    dir: tempfile::TempDir,
}

impl DcClient {
    fn start(server: &str) -> DcClient {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = File::create(dir.path().join("stderr")).expect("stderr file");
        let socket = dir.path().join("p.sock");
        let child = common::spawn_listening(
            Command::new(env!("CARGO_BIN_EXE_dc_client"))
                .arg("-listen")
                .arg(format!("UNIX:{}", socket.display()))
                .arg("-server")
                .arg(server)
                .env("DISTCACHE_DOWN_MS", "1000:2000")
                .stdout(Stdio::null())
                .stderr(stderr),
            &socket,
        );
        DcClient { _child: child, dir }
    }

    fn address(&self) -> String {
        format!("UNIX:{}", self.dir.path().join("p.sock").display())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

/// One GET: whether it succeeded (a hit or a miss), and how long it took.
fn get(client: &Client) -> (Result<(), ClientError>, Duration) {
    let start = Instant::now();
    let r = client.get(b"dc-client-breaker").map(|_| ());
    (r, start.elapsed())
}

#[test]
fn silent_server_behind_dc_client() {
    let server = DcServer::builder().net(Net::Unix).start();
    let proxy = DcClient::start(&server.address());
    let client = Client::new(
        &proxy.address(),
        Flags::PERSISTENT | Flags::PERSISTENT_RETRY,
    )
    .expect("client");
    client.set_timeout(CLIENT_TIMEOUT);
    let start = Instant::now();
    while get(&client).0.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dc_client never reached the server"
        );
        thread::sleep(Duration::from_millis(20));
    }

    server.pause();
    // The request in flight fails at the proxy's timeout, with the proxy's
    // failure reply: the library's own timeout never runs out, so it never
    // marks the (healthy) proxy down.
    let (r, took) = get(&client);
    assert!(
        matches!(r, Err(ClientError::UnexpectedReply(_))),
        "the call in flight: {r:?} after {took:?}"
    );
    assert!(took >= PROXY_TIMEOUT && took < CLIENT_TIMEOUT, "{took:?}");
    // Marked down: the proxy answers at once, for a second and more
    // (through the first probe, which times out, and the 2 s after it).
    let silent = Instant::now();
    let mut at_once = 0;
    let mut slow = Vec::new();
    while silent.elapsed() < Duration::from_millis(2500) {
        let (r, took) = get(&client);
        assert!(r.is_err(), "a call to a silent server succeeded");
        assert!(
            !matches!(r, Err(ClientError::Down { .. } | ClientError::Network(_))),
            "the library gave up on the proxy: {r:?}"
        );
        if took < PROXY_TIMEOUT / 2 {
            at_once += 1;
        } else {
            slow.push(took);
        }
        thread::sleep(Duration::from_millis(10));
    }
    println!("silent: {at_once} calls answered at once, slow ones {slow:?}");
    // At most the one probe after the first back-off waits.
    assert!(slow.len() <= 1, "slow calls: {slow:?}");
    assert!(at_once >= 50, "{at_once}");

    server.resume();
    let back = Instant::now();
    // The back-off is 2 s after the failed probe: a call succeeds within
    // that and a second.
    loop {
        let (r, _) = get(&client);
        if r.is_ok() {
            break;
        }
        assert!(
            back.elapsed() <= Duration::from_secs(3),
            "no call succeeded within 3 s of the server's return: {r:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    println!("back after {:?}", back.elapsed());
    // The proxy answers the probe's client before it logs the change.
    let up_after_down = |log: &str| {
        log.rfind("connected to the cache server")
            .zip(log.rfind("marked down"))
            .is_some_and(|(up, down)| up > down)
    };
    let logged = Instant::now();
    while !up_after_down(&proxy.stderr()) && logged.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(20));
    }
    let log = proxy.stderr();
    println!("{log}");
    assert!(log.contains("no reply for 500 ms"), "{log}");
    assert!(
        log.contains("is marked down: answering requests with failures for 1000 ms"),
        "{log}"
    );
    assert!(log.contains("for 2000 ms"), "{log}");
    assert!(
        up_after_down(&log),
        "no up line after the last down line: {log}"
    );
}
