//! dc_server as a gateway to a single real `redis-server` (`-store
//! redis://...`): every operation and status through the Rust client, the
//! golden vectors, two gateways and a restart, requests pipelined on one
//! connection, the store interface itself, and dc_admin and the metrics
//! page on a gateway. The faults are in tests/redis_faults.rs.
//!
//! Needs `redis-server` and `redis-cli` (`apt-get install -y redis-server
//! redis-tools`); without them every test here fails, naming the package.

mod common;
mod dc_server;
mod redis_support;
mod replay;

use common::{all_vectors, raw_frame, run_tool, Vector};
use dc_server::DcServer;
use distcache::internals::cache::redis::Kind;
use distcache::ClientError;
use distcache::{Answer, Op, Started, Store};
use distcache::{RedisOptions, RedisStore};
use redis_support::{client, gateway, plain_gateway, spec, RedisProc, CLIENT_TIMEOUT, PATIENT_MS};
use replay::{add_payload as add_payload_bytes, assert_all_passed, replay_all, replayable, Target};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One raw request on a fresh connection; the reply's payload.
fn raw(gw: &DcServer, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(gw.socket()).expect("connect");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.write_all(&raw_frame(false, op, 77, payload)).unwrap();
    let mut header = [0u8; 14];
    s.read_exact(&mut header).expect("reply header");
    let len = u16::from_be_bytes([header[12], header[13]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("reply payload");
    body
}

#[test]
fn every_operation_and_status() {
    let r = RedisProc::start(&[]);
    let gw = plain_gateway(&r, "ops:");
    let c = client(&gw);
    // Binary ids, of every length the protocol allows.
    let id: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
    let data: Vec<u8> = (0..32_000u32).map(|i| (i % 251) as u8).collect();
    c.add(&id, &data, 60_000).expect("ADD");
    assert_eq!(c.get(&id).expect("GET").as_deref(), Some(&data[..]));
    assert!(c.have(&id).expect("HAVE"));
    assert!(
        matches!(c.add(&id, b"other data", 60_000), Err(ClientError::Refused(s)) if s.wire() == 0x65),
        "an id already stored gives 0x65"
    );
    assert!(c.remove(&id).expect("REMOVE"));
    assert!(!c.remove(&id).expect("REMOVE again"));
    assert_eq!(c.get(&id).expect("GET after REMOVE"), None);
    assert!(!c.have(&id).expect("HAVE after REMOVE"));
    c.add(b"\0", b"one byte id", 60_000).expect("one-byte id");
    assert_eq!(c.get(b"\0").unwrap().as_deref(), Some(&b"one byte id"[..]));

    // The key is the prefix and the raw id, with the lifetime asked.
    let mut key = b"ops:".to_vec();
    key.extend_from_slice(b"\0");
    let mut conn = redis::Client::open(("127.0.0.1", r.port))
        .unwrap()
        .get_connection()
        .expect("connect to redis");
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!((50_000..=60_000).contains(&pttl), "PTTL {pttl}");

    // A lifetime of 0: stored as far as the client knows, absent at once.
    c.add(b"zero", b"expires at once", 0)
        .expect("ADD with 0 ms");
    assert_eq!(c.get(b"zero").unwrap(), None);
    // Expiry.
    c.add(b"short", b"for 300 ms", 300).unwrap();
    assert!(c.have(b"short").unwrap());
    std::thread::sleep(Duration::from_millis(600));
    assert!(!c.have(b"short").unwrap());
    assert_eq!(c.get(b"short").unwrap(), None);

    // Limits, checked before Redis is asked: raw requests, since the
    // client library checks some itself.
    let before: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(
        raw(&gw, 0, &add_payload_bytes(1000, &[7; 65], b"d")),
        [0x67]
    );
    assert_eq!(raw(&gw, 0, &add_payload_bytes(1000, b"", b"d")), [0x67]);
    assert_eq!(
        raw(&gw, 0, &add_payload_bytes(604_800_001, b"long", b"d")),
        [0x66]
    );
    assert_eq!(
        raw(&gw, 0, &add_payload_bytes(604_800_000, b"week", b"d")),
        [0x00]
    );
    assert_eq!(raw(&gw, 1, &[9; 65]), [0x01], "GET of a 65-byte id");
    assert_eq!(raw(&gw, 1, b""), [0x01], "GET of an empty id");
    assert_eq!(raw(&gw, 3, &[9; 65]), [0x01], "HAVE of a 65-byte id");
    assert_eq!(raw(&gw, 2, &[9; 65]), [0x01], "REMOVE of a 65-byte id");
    let after: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(after, before + 1, "only the 7-day session was stored");
}

/// The vectors replayed through a fresh gateway each (a prefix of its
/// own on one Redis server) give the replies recorded from the original.
#[test]
fn golden_vectors_through_a_gateway() {
    let r = RedisProc::start(&[]);
    let vectors: Vec<Vector> = all_vectors().into_iter().filter(replayable).collect();
    assert!(vectors.len() >= 28, "found {} vectors", vectors.len());
    let n = AtomicUsize::new(0);
    let start = || -> Box<dyn Target> {
        let prefix = format!("v{}:", n.fetch_add(1, Ordering::Relaxed));
        Box::new(plain_gateway(&r, &prefix))
    };
    let outcomes = replay_all(&vectors, &start);
    assert_all_passed("a Redis gateway", &outcomes);
}

#[test]
fn two_gateways_share_sessions_and_a_restart_loses_nothing() {
    let r = RedisProc::start(&[]);
    let mut a = plain_gateway(&r, "farm:");
    let b = plain_gateway(&r, "farm:");
    let other = plain_gateway(&r, "other-farm:");
    let (ca, cb) = (client(&a), client(&b));
    for i in 0..50u32 {
        ca.add(&i.to_be_bytes(), format!("session {i}").as_bytes(), 60_000)
            .unwrap();
    }
    for i in 0..50u32 {
        let got = cb.get(&i.to_be_bytes()).unwrap();
        assert_eq!(got, Some(format!("session {i}").into_bytes()));
    }
    assert!(cb.remove(&7u32.to_be_bytes()).unwrap());
    assert!(
        !ca.have(&7u32.to_be_bytes()).unwrap(),
        "removed through the other"
    );
    assert!(
        !client(&other).have(&1u32.to_be_bytes()).unwrap(),
        "another prefix is another farm"
    );
    a.restart();
    let ca = client(&a);
    for i in (0..50u32).filter(|&i| i != 7) {
        assert!(
            ca.have(&i.to_be_bytes()).unwrap(),
            "session {i} after restart"
        );
    }
}

/// Waits (bounded) for the answer to `started`, as a worker does: after
/// each call of the progress callback.
fn answer_of(
    store: &RedisStore,
    started: Started,
    progress: &std::sync::mpsc::Receiver<()>,
    data: &mut Vec<u8>,
) -> Answer {
    let receipt = match started {
        Started::Done(answer) => return answer,
        Started::Waiting(receipt) => receipt,
    };
    let start = Instant::now();
    loop {
        if let Some(answer) = store.finish(&receipt, data) {
            return answer;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no answer");
        let _ = progress.recv_timeout(Duration::from_millis(100));
    }
}

/// The store interface itself: every operation begun and finished later,
/// TAKE (fetch and delete at once) included, and the limits answered
/// without asking Redis.
#[test]
fn the_store_interface_begins_and_finishes_every_operation() {
    let r = RedisProc::start(&[]);
    let connect = |remove_sync: bool| {
        let mut options = RedisOptions::parse(&spec(&r)).unwrap();
        options.prefix = b"api:".to_vec();
        options.timeout = Duration::from_millis(PATIENT_MS);
        options.remove_sync = remove_sync;
        RedisStore::connect(options).expect("connect")
    };
    let store = connect(false);
    assert_eq!(store.kind(), Kind::Single);
    let (tx, progress) = std::sync::mpsc::channel();
    store.on_progress(std::sync::Arc::new(move || {
        let _ = tx.send(());
    }));
    let mut data = Vec::new();
    let run = |op: Op<'_>, data: &mut Vec<u8>| {
        data.clear();
        let started = store.begin(0, op, data);
        answer_of(&store, started, &progress, data)
    };
    let add = Op::Add {
        timeout_msecs: 60_000,
        id: b"t",
        data: b"session data",
    };
    assert_eq!(run(add, &mut data), Answer::Ok);
    assert_eq!(run(add, &mut data), Answer::Exists);
    assert_eq!(run(Op::Get(b"t"), &mut data), Answer::Hit);
    assert_eq!(data, b"session data");
    assert_eq!(run(Op::Have(b"t"), &mut data), Answer::Ok);
    assert_eq!(run(Op::Take(b"t"), &mut data), Answer::Hit);
    assert_eq!(data, b"session data");
    assert_eq!(run(Op::Take(b"t"), &mut data), Answer::Miss);
    assert_eq!(run(Op::Have(b"t"), &mut data), Answer::Miss);
    assert_eq!(run(add, &mut data), Answer::Ok);
    assert_eq!(run(Op::Remove(b"t"), &mut data), Answer::Ok);
    assert_eq!(run(Op::Remove(b"t"), &mut data), Answer::Miss);
    // Limits: answered at once.
    for op in [
        Op::Get(&[1; 65]),
        Op::Have(b""),
        Op::Remove(&[1; 65]),
        Op::Take(b""),
    ] {
        assert_eq!(
            store.begin(0, op, &mut data),
            Started::Done(Answer::Miss),
            "{op:?}"
        );
    }
    let too_long = Op::Add {
        timeout_msecs: 604_800_001,
        id: b"x",
        data: b"d",
    };
    assert_eq!(
        store.begin(0, too_long, &mut data),
        Started::Done(Answer::Refused)
    );

    // Waiting for a replica that is not there: a TAKE or REMOVE is a
    // failure, never a hit.
    let synced = connect(true);
    assert!(synced.add(0, 60_000, b"u", b"session data").is_ok());
    data.clear();
    let started = synced.begin(0, Op::Take(b"u"), &mut data);
    let Started::Waiting(receipt) = started else {
        panic!("{started:?}");
    };
    let start = Instant::now();
    let answer = loop {
        if let Some(answer) = synced.finish(&receipt, &mut data) {
            break answer;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no answer");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answer, Answer::Failed);
    assert!(data.is_empty());
}

/// dc_admin's `get`, `rm` and `stats` on a gateway, and the backend's
/// counters on its metrics page.
#[test]
fn admin_and_metrics_on_a_gateway() {
    let r = RedisProc::start(&[]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("UNIX:{}", dir.path().join("admin.sock").display());
    let metrics = format!("IP:127.0.0.1:{port}");
    let gw = gateway(
        &spec(&r),
        &[
            "-store-remove-sync",
            "off",
            "-store-timeout",
            &PATIENT_MS.to_string(),
            "-admin",
            &admin,
            "-metrics",
            &metrics,
        ],
    );
    let c = client(&gw);
    c.add(b"abc", b"hello world", 60_000).unwrap();
    let dc_admin = |args: &[&str]| {
        run_tool(
            Command::new(env!("CARGO_BIN_EXE_dc_admin"))
                .args(["-connect", &admin])
                .args(args),
            Duration::from_secs(20),
        )
    };
    let got = dc_admin(&["get", "616263"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(got.stdout, "hello world");
    let stats = dc_admin(&["stats"]);
    assert_eq!(stats.code, Some(0), "{}", stats.stderr);
    let figure = |name: &str| {
        stats.stdout.lines().find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim().parse::<u64>().unwrap())
        })
    };
    assert!(figure("backend.requests").unwrap() >= 2, "{}", stats.stdout);
    assert_eq!(figure("backend.errors"), Some(0), "{}", stats.stdout);
    let rm = dc_admin(&["rm", "616263"]);
    assert_eq!(rm.code, Some(0), "{}", rm.stderr);
    assert!(!c.have(b"abc").unwrap(), "removed through dc_admin");

    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    let value = |name: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert!(
        value("distcache_backend_requests_total").unwrap() >= 4.0,
        "{page}"
    );
    assert_eq!(value("distcache_backend_errors_total"), Some(0.0), "{page}");
    assert!(value("distcache_backend_latency_seconds_sum").unwrap() > 0.0);
}

/// dc_admin ls on a gateway: the sessions under its prefix, by SCAN.
#[test]
fn admin_ls_on_a_gateway() {
    let r = RedisProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("UNIX:{}", dir.path().join("admin.sock").display());
    let ls_gw = |prefix: &str| {
        gateway(
            &spec(&r),
            &[
                "-store-prefix",
                prefix,
                "-store-remove-sync",
                "off",
                "-store-timeout",
                &PATIENT_MS.to_string(),
                "-admin",
                &admin,
            ],
        )
    };
    let other = ls_gw("oth*r:");
    client(&other)
        .add(b"elsewhere", b"another farm", 60_000)
        .unwrap();
    drop(other);
    let gw = ls_gw("ls:");
    let c = client(&gw);
    for i in 0..250u32 {
        c.add(
            &i.to_be_bytes(),
            format!("session {i:05}").as_bytes(),
            60_000,
        )
        .unwrap();
    }
    let ls = run_tool(
        Command::new(env!("CARGO_BIN_EXE_dc_admin")).args(["-connect", &admin, "ls"]),
        Duration::from_secs(30),
    );
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    let mut ids: Vec<String> = ls
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let listed = ids.len();
    ids.sort();
    ids.dedup();
    let mut want: Vec<String> = (0..250u32)
        .map(|i| i.to_be_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    want.sort();
    assert_eq!(ids, want, "every session of the prefix, no other");
    assert!(listed >= 250);
    let line = ls.stdout.lines().next().unwrap();
    assert!(line.split_whitespace().nth(1) == Some("13"), "size: {line}");
}

/// Reads `n` replies from `s` (bounded): (uid, op, payload) each.
fn replies(s: &mut UnixStream, n: usize) -> Vec<(u32, u8, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut header = [0u8; 14];
        s.read_exact(&mut header).expect("reply header");
        let uid = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let len = u16::from_be_bytes([header[12], header[13]]) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).expect("reply payload");
        out.push((uid, header[10], body));
    }
    out
}

/// Requests pipelined on one connection: those for different sessions
/// are in flight at once (a GET goes to Redis while a REMOVE before it
/// waits for a replica), those for the same session are carried out in
/// the order they came, and every reply comes back in request order.
#[test]
fn pipelined_requests_overlap_and_stay_in_order() {
    let r = RedisProc::start(&[]);
    let gw = gateway(
        &spec(&r),
        &["-store-prefix", "pipe:", "-store-timeout", "3000"],
    );
    let c = client(&gw);
    c.add(b"a", b"session a data", 60_000).unwrap();
    c.add(b"b", b"session b data", 60_000).unwrap();
    let gets_before: u64 = r
        .cli(&["info", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|v| v.split(',').next()?.parse().ok())
        .unwrap_or(0);
    let mut s = UnixStream::connect(gw.socket()).unwrap();
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    // REMOVE a waits (WAIT 1) for a replica that is not there.
    let mut burst = raw_frame(false, 2, 1, b"a");
    burst.extend(raw_frame(false, 1, 2, b"b"));
    s.write_all(&burst).unwrap();
    let start = Instant::now();
    loop {
        let gets: u64 = r
            .cli(&["info", "commandstats"])
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
            .and_then(|v| v.split(',').next()?.parse().ok())
            .unwrap_or(0);
        if gets > gets_before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "the GET did not reach Redis while the REMOVE before it waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = replies(&mut s, 2);
    assert_eq!((got[0].0, got[0].1, &got[0].2[..]), (1, 2, &[0x02][..]));
    assert_eq!(
        (got[1].0, got[1].1, &got[1].2[..]),
        (2, 1, &b"session b data"[..])
    );

    // The same session, pipelined: in order.
    let mut add = Vec::new();
    add.extend_from_slice(&60_000u32.to_be_bytes());
    add.extend_from_slice(&1u32.to_be_bytes());
    add.extend_from_slice(b"x");
    add.extend_from_slice(b"session x data");
    let quick = gateway(
        &spec(&r),
        &["-store-prefix", "pipe:", "-store-remove-sync", "off"],
    );
    let mut s = UnixStream::connect(quick.socket()).unwrap();
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let mut burst = Vec::new();
    for (uid, op, payload) in [
        (10, 0, &add[..]),
        (11, 1, b"x"),
        (12, 1, b"b"),
        (13, 2, b"x"),
        (14, 3, b"x"),
        (15, 1, b"x"),
        (16, 0, &add[..]),
        (17, 0, &add[..]),
        (18, 3, b"x"),
    ] {
        burst.extend(raw_frame(false, op, uid, payload));
    }
    s.write_all(&burst).unwrap();
    let got = replies(&mut s, 9);
    let want: [(u32, u8, &[u8]); 9] = [
        (10, 0, &[0x00]),
        (11, 1, b"session x data"),
        (12, 1, b"session b data"),
        (13, 2, &[0x00]),
        (14, 3, &[0x01]),
        (15, 1, &[0x01]),
        (16, 0, &[0x00]),
        (17, 0, &[0x65]),
        (18, 3, &[0x00]),
    ];
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1, &g.2[..]), w);
    }
}

/// A client that sends its requests and closes its sending side at once
/// still gets every reply, though each waits for Redis while the server
/// reads on to the end of the stream. The gateway is stopped while the
/// client sends, so that it reads the requests and the end together.
#[test]
fn replies_reach_a_client_that_closed_its_side() {
    let r = RedisProc::start(&[]);
    let gw = plain_gateway(&r, "halfclose:");
    client(&gw)
        .add(b"sid", b"the session", 60_000)
        .expect("ADD");
    let mut s = UnixStream::connect(gw.socket()).expect("connect");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    // Accepted and registered before the pause.
    s.write_all(&raw_frame(false, 3, 1, b"sid")).unwrap();
    let mut first = [0u8; 15];
    s.read_exact(&mut first).expect("the HAVE's reply");
    gw.pause();
    let mut pipelined = raw_frame(false, 1, 2, b"sid");
    pipelined.extend(raw_frame(false, 3, 3, b"sid"));
    s.write_all(&pipelined).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    gw.resume();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the replies, then the end");
    let (msgs, partial) =
        distcache::internals::proto::decode_all(distcache::internals::proto::Role::Client, &rest)
            .expect("valid replies");
    assert!(!partial, "a reply cut short");
    let got: Vec<(u32, Vec<u8>)> = msgs.iter().map(|m| (m.uid, m.payload.clone())).collect();
    assert_eq!(got, [(2, b"the session".to_vec()), (3, vec![0x00])]);
}

/// Stops (SIGSTOP) the process `pid` for `stopped` and lets it run for
/// `running`, in turn, until dropped; then lets it run.
struct Lagging {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: nix::unistd::Pid,
}

impl Lagging {
    fn start(pid: u32, stopped: Duration, running: Duration) -> Lagging {
        use nix::sys::signal::{kill, Signal};
        use std::sync::mpsc::RecvTimeoutError::Timeout;
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let (done, wait) = std::sync::mpsc::channel::<()>();
        // Stopped before this returns, for what the caller does next.
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP the replica");
        let stat = format!("/proc/{pid}/stat");
        let began = Instant::now();
        while !std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        }) {
            assert!(began.elapsed() < Duration::from_secs(5), "{pid} stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        let thread = std::thread::spawn(move || loop {
            let stop = wait.recv_timeout(stopped) != Err(Timeout);
            kill(pid, Signal::SIGCONT).expect("SIGCONT the replica");
            if stop || wait.recv_timeout(running) != Err(Timeout) {
                return;
            }
            kill(pid, Signal::SIGSTOP).expect("SIGSTOP the replica");
        });
        Lagging {
            done: Some(done),
            thread: Some(thread),
            pid,
        }
    }
}

impl Drop for Lagging {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread.
        self.done.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGCONT);
    }
}

/// REMOVEs and TAKEs that wait for a replica (`WAIT 1`) do not queue
/// behind each other's wait: begun together, with the replica stalled
/// each is answered failure by the store's bound, and each one's DEL or
/// GETDEL was carried out meanwhile rather than held behind another's
/// WAIT to run after its answer; with the replica lagging (stopped most
/// of the time, acknowledging in between) or well, each succeeds.
#[test]
fn removals_waiting_for_a_replica_do_not_wait_for_each_other() {
    const EACH: usize = 6;
    let r = RedisProc::start(&[]);
    let replica = RedisProc::start(&["--replicaof", "127.0.0.1", &r.port.to_string()]);
    let start = Instant::now();
    while !(r
        .cli(&["info", "replication"])
        .contains("connected_slaves:1")
        && replica
            .cli(&["info", "replication"])
            .contains("master_link_status:up"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "replica in sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut options = RedisOptions::parse(&spec(&r)).unwrap();
    options.prefix = b"lanes:".to_vec();
    options.timeout = Duration::from_millis(2000);
    options.remove_sync = true;
    let store = RedisStore::connect(options).expect("connect");
    let (tx, progress) = std::sync::mpsc::channel();
    store.on_progress(std::sync::Arc::new(move || {
        let _ = tx.send(());
    }));
    // Adds EACH sessions, begins a REMOVE or a TAKE of each (in turn), all
    // before any answer is collected; then the answers, counted.
    let round = |name: &str| -> (usize, usize, usize) {
        let ids: Vec<Vec<u8>> = (0..EACH).map(|i| format!("{name}-{i}").into()).collect();
        for id in &ids {
            assert!(store.add(0, 60_000, id, b"session data").is_ok());
        }
        let mut data = Vec::new();
        let begun: Vec<Started> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let op = if i % 2 == 0 {
                    Op::Remove(id)
                } else {
                    Op::Take(id)
                };
                store.begin(0, op, &mut data)
            })
            .collect();
        let (mut ok, mut failed, mut other) = (0, 0, 0);
        for (i, started) in begun.into_iter().enumerate() {
            data.clear();
            match answer_of(&store, started, &progress, &mut data) {
                Answer::Ok if i % 2 == 0 => ok += 1,
                Answer::Hit if data == b"session data" => ok += 1,
                Answer::Failed if data.is_empty() => failed += 1,
                _ => other += 1,
            }
        }
        (ok, failed, other)
    };

    assert_eq!(round("well"), (EACH, 0, 0), "replica well");
    {
        let _lagging = Lagging::start(
            replica.child.id(),
            Duration::from_millis(400),
            // Long enough to be scheduled and to answer within a WAIT
            // (1.5 s) even on a loaded machine.
            Duration::from_millis(150),
        );
        assert_eq!(round("lagging"), (EACH, 0, 0), "replica lagging");
    }
    {
        let _stalled = Lagging::start(
            replica.child.id(),
            Duration::from_secs(3600),
            Duration::ZERO,
        );
        assert_eq!(round("stalled"), (0, EACH, 0), "replica stalled");
        let left: Vec<String> = (0..EACH).map(|i| format!("lanes:stalled-{i}")).collect();
        let mut exists = vec!["exists"];
        exists.extend(left.iter().map(String::as_str));
        assert_eq!(
            r.cli(&exists).trim(),
            "0",
            "every removal reached Redis before its answer"
        );
    }
    assert_eq!(round("again"), (EACH, 0, 0), "replica well again");
}
