//! A soak test with a model: many clients run mixed ADD, GET, REMOVE and
//! HAVE against a real dc_server for minutes, and every answer is checked
//! against what the model knows.
//!
//! `DISTCACHE_SOAK_SECS` sets the run time (default 120 s, split between
//! two phases); `make soak DURATION=600` runs it longer, in release mode.
//!
//! Each worker thread owns its ids (so the model of each id is exact) and
//! its connection(s): a library client that keeps its connection, one that
//! connects for every operation, or a raw connection speaking the wire
//! format by hand (the only kind that can read back sessions of 1 to 4
//! bytes, which the library, like the original, does not take as session
//! data). Sessions are 1 byte to 32 KiB, with lifetimes from 300 ms (they
//! expire during the run) to 10 minutes; ids are reused after their session
//! is removed or gone.
//!
//! The model knows when each ADD was sent and acknowledged, so for any
//! later call it knows whether the session is certainly still live,
//! certainly expired, or either (within a few milliseconds of its expiry).
//! Every answer must fit: data returned must be exactly the data stored; a
//! session certainly expired or removed must not be found; a session
//! certainly live must be found, unless the server evicted it for room.
//! Phase 1 gives the server room for every session, so any loss fails the
//! test; phase 2 gives it room for two thirds of them, and the losses the model sees
//! must not exceed the evictions the server reports when stopped
//! (`Info, stopped: ... evicted N`). In both phases the server's count of
//! operations must equal the clients', and its resident memory, sampled
//! twice a second, must not grow by more than [`RSS_GROWTH_KIB`] after the
//! first third of the phase.

mod conn;
#[path = "../dc_server/mod.rs"]
mod dc_server;
mod model;
mod stop_line;
mod worker;

use dc_server::{free_tcp_port, rss_kib, DcServer};
use model::Tally;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use stop_line::stop_counts;
use worker::Worker;

/// Worker threads: a third of each client kind.
pub const WORKERS: usize = 12;
/// Ids each worker owns.
pub const SLOTS: usize = 256;
/// Every call's timeout.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Growth of the server's VmRSS allowed after warm-up.
pub const RSS_GROWTH_KIB: u64 = 16 * 1024;

struct PhaseResult {
    tally: Tally,
    evicted: u64,
    expired: u64,
    server_ops: u64,
    rss_first: u64,
    rss_warm: u64,
    rss_max_after: u64,
    rss_last: u64,
}

fn run_phase(phase: u32, sessions: u32, duration: Duration) -> PhaseResult {
    let port = free_tcp_port();
    let tcp = format!("IP:127.0.0.1:{port}");
    let mut server = DcServer::builder()
        .sessions(u64::from(sessions))
        .args(&["-listen", &tcp])
        .start();
    let addresses = [server.address(), tcp];
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let pid = server.pid();
    let start = Instant::now();
    let (tally, samples) = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let address = addresses[i / 3 % 2].clone();
                let (stop, failure) = (&stop, &failure);
                s.spawn(move || {
                    let mut w = Worker::new(i, phase, &address, sessions < 100_000);
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = w.step() {
                            failure.lock().unwrap().get_or_insert(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    w.tally
                })
            })
            .collect();
        let mut samples = Vec::new();
        while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            samples.push((start.elapsed(), rss_kib(pid)));
            thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for w in workers {
            tally += w.join().expect("worker");
        }
        (tally, samples)
    });
    if let Some(e) = failure.into_inner().unwrap() {
        panic!("phase {phase}: {e}");
    }
    let counts = stop_counts(&server.terminate());
    let warm = duration / 3;
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(_, r)| *r)
        .collect();
    PhaseResult {
        tally,
        evicted: counts.evicted,
        expired: counts.expired,
        server_ops: counts.operations,
        rss_first: samples.first().map_or(0, |s| s.1),
        rss_warm: after.first().copied().unwrap_or(0),
        rss_max_after: after.iter().copied().max().unwrap_or(0),
        rss_last: samples.last().map_or(0, |s| s.1),
    }
}

fn report(phase: u32, what: &str, r: &PhaseResult, took: Duration) {
    let t = &r.tally;
    println!(
        "soak phase {phase} ({what}), {:.0} s: {} operations ({} ADD of new sessions, {} of \
         them short-lived and {} of 1-4 bytes); checked: {} GETs byte for byte ({} MB), {} \
         HAVE/REMOVE found, {} misses; losses {}; server: {} operations, evicted {}, \
         expired {}; VmRSS {} KiB at start, {} KiB after warm-up, at most {} KiB after, {} KiB \
         at the end",
        took.as_secs_f64(),
        t.ops,
        t.adds,
        t.short_lived,
        t.tiny,
        t.gets_checked,
        t.bytes_checked / 1_000_000,
        t.found_checked,
        t.misses_checked,
        t.losses,
        r.server_ops,
        r.evicted,
        r.expired,
        r.rss_first,
        r.rss_warm,
        r.rss_max_after,
        r.rss_last
    );
}

fn check_common(phase: u32, r: &PhaseResult) {
    assert_eq!(
        r.server_ops, r.tally.ops,
        "phase {phase}: the server counted other operations than the clients made"
    );
    assert!(
        r.tally.gets_checked > 0 && r.tally.misses_checked > 0 && r.tally.short_lived > 0,
        "phase {phase}: the run checked too little: {:?}",
        r.tally
    );
    assert!(
        r.rss_max_after <= r.rss_warm + RSS_GROWTH_KIB,
        "phase {phase}: dc_server VmRSS grew from {} KiB to {} KiB after warm-up",
        r.rss_warm,
        r.rss_max_after
    );
}

#[test]
fn soak_against_a_model() {
    let total = std::env::var("DISTCACHE_SOAK_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 10)
        .unwrap_or(120);
    let half = Duration::from_secs(total / 2);

    // Phase 1: room for every session (12 x 256 ids): nothing may be lost.
    let started = Instant::now();
    let roomy = run_phase(1, 100_000, half);
    report(
        1,
        "-sessions 100000, no eviction",
        &roomy,
        started.elapsed(),
    );
    check_common(1, &roomy);
    assert_eq!(roomy.tally.losses, 0, "phase 1 lost sessions");
    assert_eq!(roomy.evicted, 0, "phase 1: the server evicted sessions");
    assert!(roomy.expired > 0, "phase 1: no session expired");

    // Phase 2: room for two thirds of them: evictions (of the sessions that
    // expire soonest, so few get to expire), each loss accounted for.
    let started = Instant::now();
    let tight = run_phase(2, 2000, half);
    report(2, "-sessions 2000, evicting", &tight, started.elapsed());
    check_common(2, &tight);
    assert!(tight.evicted > 0, "phase 2: the server evicted nothing");
    assert!(
        tight.tally.losses <= tight.evicted,
        "phase 2: {} sessions lost, only {} evicted",
        tight.tally.losses,
        tight.evicted
    );
}
