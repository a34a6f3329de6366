//! dc_server as a gateway to a real Redis Cluster of three masters and
//! three replicas (`redis-cli --cluster create`, on loopback ports, in
//! temporary directories): every operation, the golden vectors, two
//! gateways, a restart. The cluster is started once and used by one test
//! function, so that every node is stopped by its PID at the end.
//!
//! Needs `redis-server` and `redis-cli` (`apt-get install -y redis-server
//! redis-tools`); without them the test fails, naming the package.

mod common;
mod dc_server;
mod redis_support;
mod replay;

use common::{all_vectors, Vector};
use dc_server::DcServer;
use distcache::{Client, ClientError, Flags};
use redis_support::{admin_figure, gateway, Cluster};
use replay::{assert_all_passed, replay_all, replayable, Target};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A bound that a loaded test machine keeps for sure.
const PATIENT_MS: &str = "5000";

fn client(gw: &DcServer) -> Client {
    let c = Client::new(&gw.address(), Flags::PERSISTENT).expect("client");
    c.set_timeout(Duration::from_secs(8));
    c
}

/// A gateway given one seed only: it finds the other nodes itself.
fn gateway_on(cluster: &Cluster, prefix: &str) -> DcServer {
    let seed = format!("redis://{}", cluster.nodes[0].node());
    gateway(
        &seed,
        &["-store-prefix", prefix, "-store-timeout", PATIENT_MS],
    )
}

#[test]
fn a_gateway_on_a_three_master_cluster() {
    let cluster = Cluster::start();
    operations(&cluster);
    two_gateways_and_a_restart(&cluster);
    golden_vectors(&cluster);
}

fn operations(cluster: &Cluster) {
    let gw = gateway_on(cluster, "ops:");
    let c = client(&gw);
    let data: Vec<u8> = (0..32_000u32).map(|i| (i % 251) as u8).collect();
    // Ids that land on every master.
    for i in 0..300u32 {
        let id = [&b"\x00id-"[..], &i.to_be_bytes()].concat();
        c.add(&id, &data[..(i as usize * 97) % 31_990 + 5], 60_000)
            .expect("ADD");
    }
    for i in 0..300u32 {
        let id = [&b"\x00id-"[..], &i.to_be_bytes()].concat();
        let got = c.get(&id).expect("GET");
        assert_eq!(
            got.as_deref(),
            Some(&data[..(i as usize * 97) % 31_990 + 5])
        );
        assert!(c.have(&id).expect("HAVE"));
    }
    // dc_admin ls lists them from every master.
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("UNIX:{}", dir.path().join("admin.sock").display());
    let seed = format!("redis://{}", cluster.nodes[0].node());
    let lister = gateway(
        &seed,
        &[
            "-store-prefix",
            "ops:",
            "-store-timeout",
            PATIENT_MS,
            "-admin",
            &admin,
        ],
    );
    let ls = common::run_tool(
        std::process::Command::new(env!("CARGO_BIN_EXE_dc_admin")).args(["-connect", &admin, "ls"]),
        Duration::from_secs(60),
    );
    drop(lister);
    assert_eq!(ls.code, Some(0), "{}", ls.stderr);
    let mut ids: Vec<&str> = ls
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "every session listed once at least");
    let masters: Vec<_> = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["info", "replication"]).contains("role:master"))
        .collect();
    assert_eq!(masters.len(), 3);
    for m in &masters {
        let keys: u64 = m.cli(&["dbsize"]).trim().parse().expect("DBSIZE");
        assert!(keys > 50, "{} holds {keys} keys", m.node());
    }
    let id = [&b"\x00id-"[..], &7u32.to_be_bytes()].concat();
    assert!(
        matches!(c.add(&id, b"again", 60_000), Err(ClientError::Refused(s)) if s.wire() == 0x65)
    );
    // REMOVE waits for the master's replica, which is there.
    assert!(c.remove(&id).expect("REMOVE"));
    assert!(!c.remove(&id).expect("REMOVE again"));
    assert_eq!(c.get(&id).unwrap(), None);
    assert!(!c.have(&id).unwrap());
    c.add(b"zero", b"expires at once", 0).expect("ADD 0 ms");
    assert_eq!(c.get(b"zero").unwrap(), None);
    c.add(b"short", b"for 300 ms", 300).unwrap();
    assert!(c.have(b"short").unwrap());
    std::thread::sleep(Duration::from_millis(600));
    assert!(!c.have(b"short").unwrap());
}

fn two_gateways_and_a_restart(cluster: &Cluster) {
    let mut a = gateway_on(cluster, "farm:");
    let b = gateway(
        &cluster.seeds(),
        &["-store-prefix", "farm:", "-store-timeout", PATIENT_MS],
    );
    let (ca, cb) = (client(&a), client(&b));
    for i in 0..100u32 {
        ca.add(&i.to_be_bytes(), format!("session {i}").as_bytes(), 60_000)
            .unwrap();
    }
    for i in 0..100u32 {
        let got = cb.get(&i.to_be_bytes()).unwrap();
        assert_eq!(got, Some(format!("session {i}").into_bytes()));
    }
    assert!(cb.remove(&7u32.to_be_bytes()).unwrap());
    assert!(!ca.have(&7u32.to_be_bytes()).unwrap());
    a.restart();
    let ca = client(&a);
    for i in (0..100u32).filter(|&i| i != 7) {
        assert!(
            ca.have(&i.to_be_bytes()).unwrap(),
            "session {i} after restart"
        );
    }
}

fn golden_vectors(cluster: &Cluster) {
    let vectors: Vec<Vector> = all_vectors().into_iter().filter(replayable).collect();
    let n = AtomicUsize::new(0);
    let start = || -> Box<dyn Target> {
        let prefix = format!("v{}:", n.fetch_add(1, Ordering::Relaxed));
        Box::new(gateway_on(cluster, &prefix))
    };
    let outcomes = replay_all(&vectors, &start);
    assert_all_passed("a Redis Cluster gateway", &outcomes);
}

/// What a client thread saw while a master was killed.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: u64,
    wrong: u64,
    /// The longest a request took.
    slowest: Duration,
}

/// What session `i` of a loaded cluster holds.
fn session(i: u32) -> Vec<u8> {
    format!("session number {i}").into_bytes()
}

/// The admin socket of a gateway from [`loaded_cluster`].
fn admin_of(gw: &DcServer) -> String {
    format!("UNIX:{}", gw.dir().join("admin.sock").display())
}

/// A cluster and a gateway to it (`-store-timeout 2000`, its admin socket
/// at [`admin_of`]) holding sessions 0..400 under `prefix`, and a client
/// of the gateway.
fn loaded_cluster(prefix: &str) -> (Cluster, DcServer, Client) {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = format!("UNIX:{}", dir.path().join("admin.sock").display());
    let gw = DcServer::builder()
        .dir(dir)
        .args(&["-store", &cluster.seeds()])
        .args(&["-store-prefix", prefix, "-store-timeout", "2000"])
        .args(&["-admin", &admin])
        .start();
    let c = client(&gw);
    for i in 0..400u32 {
        c.add(&i.to_be_bytes(), &session(i), 600_000).unwrap();
    }
    (cluster, gw, c)
}

/// Four clients of `gw`, each calling `each(thread, round, client, tally)`
/// for round 1, 2, ... until 300 ms after `during` returned (which starts
/// 300 ms after them); their tallies and what `during` returned.
fn under_load<R>(
    gw: &DcServer,
    each: impl Fn(u32, u32, &Client, &mut Tally) + Sync,
    during: impl FnOnce() -> R,
) -> (Vec<Tally>, R) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let load: Vec<_> = (0..4u32)
            .map(|t| {
                let (stop, each) = (&stop, &each);
                scope.spawn(move || {
                    let c = client(gw);
                    let mut tally = Tally::default();
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        each(t, n, &c, &mut tally);
                    }
                    tally
                })
            })
            .collect();
        // Stops the load when `during` panics too, so that the scope's
        // joins end and the panic is reported.
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stopper = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        let done = during();
        std::thread::sleep(Duration::from_millis(300));
        drop(stopper);
        let tallies = load.into_iter().map(|h| h.join().unwrap()).collect();
        (tallies, done)
    })
}

/// Killing a master under a load of 4 clients: failed operations are
/// counted, wrong answers must be none, no request waits much past
/// `-store-timeout`; every session stored at least a
/// second before the kill is served again once a replica took over, and
/// every session removed (REMOVE answered OK) just before the kill stays
/// removed.
#[test]
fn master_killed_under_load() {
    let (mut cluster, gw, c) = loaded_cluster("fo:");
    std::thread::sleep(Duration::from_millis(1100));
    // Removed just before the kill: answered OK, so a replica has it.
    for i in 300..400u32 {
        assert!(c.remove(&i.to_be_bytes()).unwrap(), "REMOVE {i}");
    }
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.cli(&["info", "replication"]).contains("role:master"))
        .expect("a master");
    let each = |t: u32, n: u32, c: &Client, tally: &mut Tally| {
        let i = n % 300;
        let began = std::time::Instant::now();
        let got = c.get(&i.to_be_bytes());
        tally.slowest = tally.slowest.max(began.elapsed());
        match got {
            Ok(Some(d)) if d == session(i) => tally.ok += 1,
            Ok(_) => tally.wrong += 1,
            Err(_) => tally.failed += 1,
        }
        let id = [t.to_be_bytes(), n.to_be_bytes()].concat();
        let began = std::time::Instant::now();
        let added = c.add(&id, b"added under load", 60_000);
        tally.slowest = tally.slowest.max(began.elapsed());
        match added {
            Ok(()) => tally.ok += 1,
            Err(_) => tally.failed += 1,
        }
    };
    let (tallies, served_again) = under_load(&gw, each, || {
        cluster.nodes[victim].kill();
        let killed = std::time::Instant::now();
        let checker = client(&gw);
        loop {
            let all = (0..300u32)
                .all(|i| matches!(checker.get(&i.to_be_bytes()), Ok(Some(d)) if d == session(i)));
            if all {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "sessions not served again within 60 s of the kill"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    eprintln!("served again {served_again:?} after the kill; load: {tallies:?}");
    for t in &tallies {
        assert_eq!(t.wrong, 0, "a wrong answer: {tallies:?}");
        assert!(t.ok > 0, "{tallies:?}");
        // -store-timeout, and a margin for a loaded test machine.
        assert!(
            t.slowest < Duration::from_millis(2000 + 1500),
            "{tallies:?}"
        );
    }
    for i in 300..400u32 {
        assert!(
            !c.have(&i.to_be_bytes()).expect("HAVE after the failover"),
            "session {i} came back after the failover"
        );
    }
}

/// A fourth master added, and slots (with their sessions) moved to it by
/// `redis-cli --cluster reshard` under a load of 4 clients: the gateway
/// follows `MOVED` and `ASK`, and no answer is wrong.
#[test]
fn resharding_under_load() {
    let (mut cluster, gw, c) = loaded_cluster("rs:");
    let new_master = cluster.add_master();
    let each = |t: u32, n: u32, c: &Client, tally: &mut Tally| {
        let i = n % 400;
        match c.get(&i.to_be_bytes()) {
            Ok(Some(d)) if d == session(i) => tally.ok += 1,
            Ok(other) => {
                eprintln!("wrong answer: GET {i}: {other:?}");
                tally.wrong += 1
            }
            Err(_) => tally.failed += 1,
        }
        // A session of this client's own: added, read,
        // removed, gone.
        let id = [t.to_be_bytes(), n.to_be_bytes(), [1; 4]].concat();
        let mut step = |what: &str, r: Result<bool, ClientError>| match r {
            Ok(true) => tally.ok += 1,
            Ok(false) => {
                eprintln!("wrong answer: {what}");
                tally.wrong += 1
            }
            Err(_) => tally.failed += 1,
        };
        let added = c.add(&id, b"added under load", 60_000);
        let was_added = added.is_ok();
        step("ADD", added.map(|()| true));
        if was_added {
            let got = c
                .get(&id)
                .map(|d| d.as_deref() == Some(b"added under load"));
            step("GET", got);
            let removed = c.remove(&id);
            let was_removed = matches!(removed, Ok(true));
            step("REMOVE", removed);
            if was_removed {
                step("HAVE", c.have(&id).map(|found| !found));
            }
        }
    };
    let (tallies, ()) = under_load(&gw, each, || {
        let first = cluster.nodes[0].node();
        redis_support::cli(
            cluster.nodes[0].port,
            &[
                "--cluster",
                "reshard",
                &first,
                "--cluster-from",
                "all",
                "--cluster-to",
                &new_master,
                "--cluster-slots",
                "2000",
                "--cluster-yes",
            ],
        );
    });
    eprintln!("load during the resharding: {tallies:?}");
    for t in &tallies {
        assert_eq!(t.wrong, 0, "a wrong answer: {tallies:?}");
        assert!(t.ok > 0, "{tallies:?}");
    }
    let moved: u64 = cluster.nodes[6].cli(&["dbsize"]).trim().parse().unwrap();
    assert!(moved > 0, "the new master holds no session");
    // The workers' own links met the moves, and handed those requests on.
    let redirects = admin_figure(&admin_of(&gw), "backend.redirects");
    assert!(redirects.is_some_and(|n| n > 0), "redirects: {redirects:?}");
    for i in 0..400u32 {
        assert_eq!(c.get(&i.to_be_bytes()).unwrap(), Some(session(i)), "{i}");
    }
}
