//! `dc_server -store`: sessions that survive a restart. Real dc_server
//! processes, killed with SIGKILL by PID in the middle of a write-heavy
//! load and started again on the same directory; logs damaged by hand; a
//! long churn with the directory's size measured; a second server on the
//! same directory. Every wait is bounded; every process is stopped by PID.

mod common;
mod dc_server;

use common::run_tool;
use dc_server::{dc_server_bin, DcServer, DcServerBuilder};
use distcache::{Client, Flags};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// The tests that load the machine run one at a time, so that one's load
/// does not starve another's writer of the CPU.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}
/// Bytes of a record before its id and data (see src/cache/durable).
const RECORD_HEADER: usize = 32;
/// How far past the log's bound (1.5 times the live data plus this) the
/// writer may go before it compacts.
const SLACK: u64 = distcache::internals::cache::COMPACT_SLACK;

/// A dc_server on a UNIX socket, with a store directory.
struct Server {
    server: DcServer,
}

impl Server {
    fn builder(socket: &Path, store: &Path, extra: &[&str]) -> DcServerBuilder {
        DcServer::builder().unix_at(socket).store(store).args(extra)
    }

    /// Spawns a server without waiting for it.
    fn spawn(socket: &Path, store: &Path, extra: &[&str]) -> Server {
        Server {
            server: Server::builder(socket, store, extra).spawn(),
        }
    }

    /// Starts a server and waits (bounded) until it accepts.
    fn start(socket: &Path, store: &Path, extra: &[&str]) -> Server {
        Server {
            server: Server::builder(socket, store, extra).start(),
        }
    }

    fn stderr(&self) -> String {
        self.server.stderr()
    }

    fn address(&self) -> String {
        self.server.address()
    }

    fn client(&self) -> Client {
        let c = Client::new(&self.address(), Flags::PERSISTENT).expect("client");
        c.set_timeout(Duration::from_secs(5));
        c
    }

    /// The start-up line about the store (waiting, bounded, for it).
    fn store_line(&self) -> String {
        let text = self.server.wait_stderr("sessions loaded");
        text.lines()
            .find(|l| l.contains("sessions loaded"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no store line: {text}"))
    }

    /// SIGKILL, by PID, and reap.
    fn kill(&mut self) {
        self.server.kill();
    }

    /// SIGTERM, and wait (bounded) for the exit.
    fn stop(&mut self) -> ExitStatus {
        self.server.stop()
    }
}

/// The number before `what` in a start-up line, e.g. "12 sessions loaded".
fn count_in(line: &str, what: &str) -> usize {
    let at = line
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in {line:?}"));
    line[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {what:?} in {line:?}"))
}

/// Session data that names its id, of a length that varies with it.
fn data_for(id: &str, n: usize) -> Vec<u8> {
    let len = 20 + (n * 37) % 1500;
    id.bytes().cycle().take(len).collect()
}

#[derive(Debug, Clone)]
enum Event {
    Added {
        id: String,
        data: Vec<u8>,
        short: bool,
        at: Instant,
    },
    Removed {
        id: String,
        at: Instant,
    },
    /// A REMOVE whose outcome is not known: its connection failed (the
    /// server may have removed the session, and written the tombstone,
    /// before it was killed), or, under `-sync always`, it was answered
    /// "not found" because its tombstone was not synced in time (the
    /// session is gone from memory, and its tombstone may still reach
    /// the disk). The session may or may not come back.
    RemoveUnknown {
        id: String,
    },
}

/// What a load did: what was acknowledged, and every session tried (id and
/// data).
type LoadOutcome = (Vec<Event>, Vec<(String, Vec<u8>)>);

/// Adds (and now and then removes) sessions from `clients` threads until
/// `stop` is set or the server goes away.
fn load(server: &Server, clients: usize, stop: Arc<AtomicBool>) -> thread::JoinHandle<LoadOutcome> {
    let address = server.address();
    thread::spawn(move || {
        let workers: Vec<_> = (0..clients)
            .map(|t| {
                let address = address.clone();
                let stop = stop.clone();
                thread::spawn(move || {
                    let client = Client::new(&address, Flags::PERSISTENT).expect("client");
                    client.set_timeout(Duration::from_secs(2));
                    let (mut events, mut tried) = (Vec::new(), Vec::new());
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let id = format!("c{t}-{n:07}");
                        let data = data_for(&id, n);
                        let short = n % 7 == 3;
                        tried.push((id.clone(), data.clone()));
                        let timeout = if short { 1500 } else { 60_000 };
                        if client.add(id.as_bytes(), &data, timeout).is_err() {
                            break;
                        }
                        events.push(Event::Added {
                            id,
                            data,
                            short,
                            at: Instant::now(),
                        });
                        if n % 10 == 9 {
                            let old = format!("c{t}-{:07}", n - 5);
                            match client.remove(old.as_bytes()) {
                                Ok(true) => events.push(Event::Removed {
                                    id: old,
                                    at: Instant::now(),
                                }),
                                Ok(false) => events.push(Event::RemoveUnknown { id: old }),
                                Err(_) => {
                                    events.push(Event::RemoveUnknown { id: old });
                                    break;
                                }
                            }
                        }
                    }
                    (events, tried)
                })
            })
            .collect();
        let (mut events, mut tried) = (Vec::new(), Vec::new());
        for w in workers {
            let (e, t) = w.join().expect("load thread");
            events.extend(e);
            tried.extend(t);
        }
        (events, tried)
    })
}

struct CrashOutcome {
    acknowledged: usize,
    required: usize,
    recovered: usize,
    /// How long before the kill the earliest lost session was acknowledged.
    lost_within: Option<Duration>,
    line: String,
}

/// Runs a load, kills the server with SIGKILL in its middle, restarts it
/// on the same store and checks what came back. Sessions acknowledged
/// more than `margin` before the kill must all be there.
fn crash_and_check(sync: &str, margin: Duration) -> CrashOutcome {
    let _alone = heavy();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let store = dir.path().join("store");
    let args = ["-sessions", "200000", "-sync", sync];
    let mut server = Server::start(&socket, &store, &args);
    // One session whose lifetime spans the restart.
    let client = server.client();
    client.add(b"lifetime", b"six seconds", 6000).unwrap();
    let lifetime_added = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&server, 4, stop.clone());
    thread::sleep(Duration::from_millis(2000));
    let killed = Instant::now();
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let (events, tried) = running.join().unwrap();
    drop(client);
    // Let every short-lived session (1.5 s) expire before the restart.
    thread::sleep(Duration::from_millis(1600).saturating_sub(killed.elapsed()));

    let server = Server::start(&socket, &store, &args);
    let line = server.store_line();
    let client = server.client();
    let before = killed.checked_sub(margin).unwrap();
    // Sessions a REMOVE was sent for: either gone or, if its outcome is
    // unknown, free to be there or not.
    let mut removed = std::collections::HashSet::new();
    for e in &events {
        if let Event::Removed { id, .. } | Event::RemoveUnknown { id } = e {
            removed.insert(id.clone());
        }
    }
    let (mut acknowledged, mut required, mut recovered) = (0, 0, 0);
    let mut lost_within: Option<Duration> = None;
    for e in &events {
        match e {
            Event::Added {
                id,
                data,
                short: false,
                at,
            } if !removed.contains(id) => {
                acknowledged += 1;
                let got = client.get(id.as_bytes()).unwrap();
                if got.is_some() {
                    recovered += 1;
                } else {
                    let before_kill = killed.saturating_duration_since(*at);
                    lost_within = lost_within.max(Some(before_kill));
                }
                if *at < before {
                    required += 1;
                    assert_eq!(got.as_deref(), Some(&data[..]), "{id} lost ({sync})");
                }
            }
            Event::Added {
                id, short: true, ..
            } => {
                assert_eq!(client.get(id.as_bytes()).unwrap(), None, "{id} expired");
            }
            Event::Removed { id, at } if *at < before => {
                assert_eq!(client.get(id.as_bytes()).unwrap(), None, "{id} removed");
            }
            _ => {}
        }
    }
    // Whatever came back is byte-exact, acknowledged or not.
    for (id, data) in &tried {
        if let Some(got) = client.get(id.as_bytes()).unwrap() {
            assert_eq!(got, *data, "{id} came back with other bytes");
        }
    }
    assert!(required > 100, "too little load to judge: {required}");
    // The lifetime of a session counts from when it was added, by the
    // wall clock, across the restart.
    let lifetime = Duration::from_millis(6000);
    if lifetime_added.elapsed() + Duration::from_millis(300) < lifetime {
        assert!(client.have(b"lifetime").unwrap(), "lifetime: too early");
        thread::sleep(lifetime + Duration::from_millis(300) - lifetime_added.elapsed());
        assert!(!client.have(b"lifetime").unwrap(), "lifetime: too late");
    }
    CrashOutcome {
        acknowledged,
        required,
        recovered,
        lost_within,
        line,
    }
}

#[test]
fn kill_9_under_load_with_interval_sync_loses_nothing_older_than_an_interval() {
    // interval:200 bounds what a crash of the machine loses; a killed
    // process loses at most what the writer had not yet taken. 500 ms of
    // margin covers the writer's batching on a loaded machine.
    let o = crash_and_check("interval:200", Duration::from_millis(700));
    eprintln!(
        "interval:200: {} of {} acknowledged sessions recovered ({} acknowledged before the \
         last interval + margin, all present; the lost ones acknowledged no earlier than {:?} before \
         the kill); {}",
        o.recovered, o.acknowledged, o.required, o.lost_within, o.line
    );
    // A kill can cut the writer's last write short (the kernel stops a
    // write to a file between pages on SIGKILL): that torn tail is cut
    // off, but nothing inside the log may be damaged.
    assert_eq!(count_in(&o.line, "corrupt records"), 0, "{}", o.line);
}

#[test]
fn kill_9_under_load_with_sync_always_loses_no_acknowledged_add() {
    let o = crash_and_check("always", Duration::ZERO);
    eprintln!(
        "always: {} of {} acknowledged sessions recovered; {}",
        o.recovered, o.acknowledged, o.line
    );
    assert_eq!(o.recovered, o.acknowledged);
}

/// Offset of the only occurrence of `needle` in `hay`.
fn find_once(hay: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "{} occurrences", hits.len());
    hits[0]
}

#[test]
fn records_damaged_by_hand_are_discarded_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let store = dir.path().join("store");
    let mut server = Server::start(&socket, &store, &[]);
    let client = server.client();
    let id = |i: usize| format!("session-{i:02}");
    let data = |i: usize| format!("data of session {i:02} ").repeat(10).into_bytes();
    for i in 0..50 {
        client.add(id(i).as_bytes(), &data(i), 600_000).unwrap();
    }
    drop(client);
    assert!(server.stop().success());

    let log_path = store.join("sessions.log");
    let mut log = std::fs::read(&log_path).unwrap();
    // Session 25: the second half of its record overwritten with zeros.
    let at = find_once(&log, &data(25));
    let len = data(25).len();
    log[at + len / 2..at + len].fill(0);
    // Session 10: the second half of its record cut out of the file.
    let at = find_once(&log, &data(10));
    log.drain(at + len / 2..at + len);
    // A torn tail: the first half of session 40's record appended.
    let start = find_once(&log, &data(40)) - id(40).len() - RECORD_HEADER;
    let whole = RECORD_HEADER + id(40).len() + len;
    let half = log[start..start + whole / 2].to_vec();
    log.extend_from_slice(&half);
    std::fs::write(&log_path, &log).unwrap();

    let mut server = Server::start(&socket, &store, &[]);
    let line = server.store_line();
    assert_eq!(count_in(&line, "sessions loaded"), 48, "{line}");
    assert_eq!(count_in(&line, "corrupt records"), 2, "{line}");
    assert!(line.contains("a torn last write of"), "{line}");
    let client = server.client();
    for i in 0..50 {
        let want = (i != 10 && i != 25).then(|| data(i));
        assert_eq!(client.get(id(i).as_bytes()).unwrap(), want, "{}", id(i));
    }
    drop(client);
    assert!(server.stop().success());
    // The damage was written away at the first start.
    let server = Server::start(&socket, &store, &[]);
    let line = server.store_line();
    assert_eq!(count_in(&line, "sessions loaded"), 48, "{line}");
    assert_eq!(count_in(&line, "corrupt records"), 0, "{line}");
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[test]
fn under_churn_the_store_stays_near_twice_the_live_data() {
    let _alone = heavy();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let store = dir.path().join("store");
    let args = ["-sessions", "10000", "-sync", "interval:100"];
    let mut server = Server::start(&socket, &store, &args);
    let client = server.client();
    const LIVE: usize = 2000;
    let record = |id: &str, len: usize| (RECORD_HEADER + id.len() + len) as u64;
    let id = |i: usize| format!("churn-{i:06}");
    let data = |i: usize| data_for(&id(i), i % 7 * 200 + 400);
    let mut short: std::collections::VecDeque<(Instant, u64)> = Default::default();
    let mut live = 0u64;
    // (directory size less the slack) / live data, every 50 iterations.
    let mut ratios: Vec<(f64, u64, u64)> = Vec::new();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(8) && i < 40_000 {
        let began = Instant::now();
        client.add(id(i).as_bytes(), &data(i), 600_000).unwrap();
        live += record(&id(i), data(i).len());
        if i >= LIVE {
            let old = i - LIVE;
            assert!(client.remove(id(old).as_bytes()).unwrap());
            live -= record(&id(old), data(old).len());
        }
        if i % 4 == 0 {
            // Short-lived sessions that expire by themselves.
            let sid = format!("short-{i:06}");
            client.add(sid.as_bytes(), &[7; 600], 200).unwrap();
            short.push_back((Instant::now(), record(&sid, 600)));
        }
        while short
            .front()
            .is_some_and(|(at, _)| at.elapsed() > Duration::from_millis(200))
        {
            short.pop_front();
        }
        slowest = slowest.max(began.elapsed());
        if i % 50 == 0 && i >= LIVE {
            let live_now = live + short.iter().map(|(_, b)| b).sum::<u64>();
            let size = dir_size(&store);
            ratios.push((
                size.saturating_sub(SLACK) as f64 / live_now as f64,
                size,
                live_now,
            ));
        }
        i += 1;
    }
    drop(client);
    let written = (0..i).map(|k| record(&id(k), data(k).len())).sum::<u64>();
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pick = |q: f64| ratios[((ratios.len() - 1) as f64 * q) as usize];
    let (median, p95, worst) = (pick(0.5), pick(0.95), pick(1.0));
    eprintln!(
        "churn: {i} sessions added ({written} bytes of records) and {} removed in {:?}, \
         {LIVE} long-lived live; directory size less {SLACK} bytes of slack over live data, \
         {} samples: median {:.2}, 95th percentile {:.2}, largest {:.2} ({} bytes for {} live); \
         slowest iteration {slowest:?}",
        i - LIVE,
        started.elapsed(),
        ratios.len(),
        median.0,
        p95.0,
        worst.0,
        worst.1,
        worst.2,
    );
    assert!(written > 8 * live, "too little churn to judge");
    // The log is compacted past 1.5 times the live data (plus the slack);
    // while a compaction runs its new log is beside the old one: about 2.5
    // times at most while the writer keeps up (without compaction it would
    // be every byte written, over 8 times here). What piles up while the
    // writer waits for the disk or for a CPU comes on top: with debug
    // builds on a loaded machine a sample now and then is far above the
    // typical one (9 times was seen once), but never near what the
    // directory would hold without compaction: every byte written.
    let warnings: Vec<String> = server
        .stderr()
        .lines()
        .filter(|l| l.contains("store:"))
        .map(String::from)
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    // How often a sample falls inside a compaction depends on how fast the
    // machine compacts against how fast this loop churns: with other test
    // suites running beside it, a compaction was under way at nearly every
    // sample (median 2.41, largest 2.59). The median is held to the bound
    // a compaction keeps, not to the typical figure of an idle machine.
    assert!(median.0 <= 2.5, "median {:.2}", median.0);
    assert!(p95.0 <= 4.0, "95th percentile {:.2}", p95.0);
    let unbounded = written as f64 / worst.2 as f64;
    assert!(
        worst.0 < unbounded / 1.5,
        "{} bytes for {} live; {written} written",
        worst.1,
        worst.2
    );
    assert!(server.stop().success());
    // At the next start the log is rewritten to what is live.
    let server = Server::start(&socket, &store, &args);
    let line = server.store_line();
    eprintln!("churn: restart: {line}");
    assert_eq!(count_in(&line, "sessions loaded"), LIVE, "{line}");
    let size = dir_size(&store);
    assert!(
        size <= live + live / 2 + SLACK,
        "{size} bytes for {live} live"
    );
    let client = server.client();
    for k in [i - LIVE, i - 1] {
        assert_eq!(client.get(id(k).as_bytes()).unwrap(), Some(data(k)));
    }
    assert_eq!(client.get(id(i - LIVE - 1).as_bytes()).unwrap(), None);
}

#[test]
fn a_second_server_on_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let first = Server::start(&dir.path().join("a.sock"), &store, &[]);
    let second_socket = dir.path().join("b.sock");
    let mut second = Server::spawn(&second_socket, &store, &[]);
    let status = second.server.wait_exit();
    assert_eq!(status.code(), Some(1));
    // Let the reader thread take the last bytes.
    thread::sleep(Duration::from_millis(100));
    let message = second.stderr();
    let pid = first.server.pid();
    assert!(
        message.contains(&format!(
            "store directory '{}' is in use by another process (pid {pid}): one server per store",
            store.display()
        )),
        "{message}"
    );
    assert!(
        !second_socket.exists(),
        "the second server bound its socket"
    );
    let client = first.client();
    client.add(b"still", b"serving", 1000).unwrap();
    assert!(client.have(b"still").unwrap());
}

#[test]
fn sync_needs_store_and_a_valid_value() {
    let run = |args: &[&str]| {
        let out = run_tool(
            Command::new(dc_server_bin())
                .args(["-listen", "UNIX:/nonexistent/s.sock"])
                .args(args),
            LIMIT,
        );
        (out.code, out.stderr)
    };
    let (code, err) = run(&["-sync", "always"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("-sync needs -store"), "{err}");
    for bad in ["sometimes", "interval:0", "interval:x", "interval:3600001"] {
        let (code, err) = run(&["-store", "/nonexistent", "-sync", bad]);
        assert_eq!(code, Some(1), "{bad}");
        assert!(
            err.contains("invalid value") && err.contains("-sync"),
            "{bad}: {err}"
        );
    }
    let (code, err) = run(&["-store", "/nonexistent/dir/store"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("can't use store directory"), "{err}");
}
