//! The dc_test tool: its command line, real runs against dc_server, and
//! the check itself, proven by a cache that returns wrong data.

mod common;
mod dc_server;

use common::{run_tool, ToolRun};
use dc_server::DcServer;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn dc_test(args: &[&str]) -> ToolRun {
    run_tool(
        Command::new(env!("CARGO_BIN_EXE_dc_test")).args(args),
        LIMIT,
    )
}

/// The four figures of the `latency` line, in microseconds.
fn percentiles(stdout: &str) -> [f64; 4] {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("latency"))
        .unwrap_or_else(|| panic!("no latency line in {stdout:?}"));
    let mut out = [0.0; 4];
    for (i, name) in ["p50", "p90", "p99", "max"].iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w == name)
            .unwrap_or_else(|| panic!("no {name} in {line:?}"));
        assert_eq!(words[at + 2], "us", "{line}");
        out[i] = words[at + 1].parse().expect("a number");
    }
    out
}

/// The operation count of the `operations` line.
fn operations(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("operations"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no operations line in {stdout:?}"))
}

fn assert_passed(r: &ToolRun, ops: u64) {
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains(" random tests\n"), "{r:?}");
    assert!(r.stderr.contains("Info, all tests complete\n"), "{r:?}");
    assert_eq!(operations(&r.stdout), ops, "{r:?}");
    assert!(r.stdout.contains("ops/s"), "{r:?}");
    let [p50, p90, p99, max] = percentiles(&r.stdout);
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{r:?}");
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    for h in ["-h", "-help", "-?", "--help"] {
        let r = dc_test(&[h]);
        assert_eq!(r.code, Some(0), "{h}");
        assert!(
            r.stdout.starts_with("Usage: dc_test -connect"),
            "{h}: {r:?}"
        );
        for opt in [
            "-sessions",
            "-ops",
            "-datamin",
            "-datamax",
            "-timeout",
            "-timevar",
        ] {
            assert!(r.stdout.contains(opt), "{opt} not in usage");
        }
        for opt in ["-persistent", "-progress", "-clients", "-seed"] {
            assert!(r.stdout.contains(opt), "{opt} not in usage");
        }
        assert_eq!(r.stderr, "");
    }
}

#[test]
fn bad_command_lines_exit_1_with_one_line() {
    let one_line = |args: &[&str], needle: &str| {
        let r = dc_test(args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert_eq!(r.stdout, "");
    };
    one_line(&["-connect", "UNIX:/x", "-bogus"], "'-bogus'");
    one_line(&["--frobnicate"], "'--frobnicate'");
    one_line(&["-connect"], "-connect");
    one_line(&["-connect", "UNIX:/x", "-ops"], "-ops");
    one_line(&[], "-connect");
    one_line(&["-connect", "nowhere"], "nowhere");
    one_line(&["-connect", "IP:9001"], "IP:9001");
    one_line(&["-connect", "UNIX:/x", "-sessions", "513"], "-sessions");
    one_line(&["-connect", "UNIX:/x", "-datamin", "3"], "-datamin");
    one_line(&["-connect", "UNIX:/x", "-timeout", "5"], "-timevar");
}

#[test]
fn server_down_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("UNIX:{}", dir.path().join("none.sock").display());
    let r = dc_test(&["-connect", &addr, "-persistent"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
    let r = dc_test(&["-connect", &addr]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Info, 0 tests succeeded before the first failure"),
        "{r:?}"
    );
}

#[test]
fn passes_against_dc_server_with_a_connection_per_operation() {
    let srv = DcServer::start(&["-sessions", "10000"]);
    let r = dc_test(&[
        "-connect",
        &srv.address(),
        "-sessions",
        "40",
        "-ops",
        "20000",
    ]);
    assert_passed(&r, 20_000);
    assert!(
        r.stderr
            .contains("Info, 40 sessions generated, will run 20000 random tests"),
        "{r:?}"
    );
}

#[test]
fn passes_against_dc_server_persistent_with_progress() {
    let srv = DcServer::start(&["-sessions", "10000"]);
    let r = dc_test(&[
        "-connect",
        &srv.address(),
        "-sessions",
        "100",
        "-ops",
        "30000",
        "-persistent",
        "-progress",
        "5000",
    ]);
    assert_passed(&r, 30_000);
    // Not a terminal: one line per interval.
    let progress: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("Info, total operations ="))
        .collect();
    assert_eq!(progress.len(), 6, "{r:?}");
    assert_eq!(progress[5], "Info, total operations =   30000");
}

#[test]
fn four_clients_report_percentiles() {
    let srv = DcServer::start(&["-sessions", "10000"]);
    let r = dc_test(&[
        "-connect",
        &srv.address(),
        "-sessions",
        "50",
        "-ops",
        "5000",
        "-clients",
        "4",
        "-persistent",
    ]);
    assert_passed(&r, 20_000);
    assert!(r.stdout.contains("(4 clients, persistent"), "{r:?}");
    assert!(
        r.stderr
            .contains("Info, 200 sessions generated, will run 20000 random tests"),
        "{r:?}"
    );
}

/// Sessions of 4 bytes: stored, found, never returned by a GET (the client
/// library's rule); the model knows it, so the run passes.
#[test]
fn four_byte_sessions_pass() {
    let srv = DcServer::start(&[]);
    let r = dc_test(&[
        "-connect",
        &srv.address(),
        "-datamin",
        "4",
        "-datamax",
        "4",
        "-ops",
        "3000",
        "-persistent",
    ]);
    assert_passed(&r, 3000);
}

/// A small cache in a thread, right in every answer except, when `lie` is
/// set, the data of a GET hit (one byte changed).
fn fake_cache(lie: bool) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let store = Arc::new(Mutex::new(HashMap::<Vec<u8>, Vec<u8>>::new()));
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let store = Arc::clone(&store);
            thread::spawn(move || serve_fake(conn, &store, lie));
        }
    });
    (dir, format!("UNIX:{}", path.display()))
}

fn serve_fake(mut conn: UnixStream, store: &Mutex<HashMap<Vec<u8>, Vec<u8>>>, lie: bool) {
    let mut h = [0u8; 14];
    while conn.read_exact(&mut h).is_ok() {
        let len = usize::from(u16::from_be_bytes([h[12], h[13]]));
        let mut p = vec![0; len];
        // Single-frame requests only: the tests keep sessions small.
        if h[11] != 1 || conn.read_exact(&mut p).is_err() {
            return;
        }
        let uid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let mut store = store.lock().unwrap();
        let reply = match h[10] {
            0 => {
                let id_len = u32::from_be_bytes([p[4], p[5], p[6], p[7]]) as usize;
                let (id, data) = p[8..].split_at(id_len);
                if store.contains_key(id) {
                    vec![0x65]
                } else {
                    store.insert(id.to_vec(), data.to_vec());
                    vec![0]
                }
            }
            1 => match store.get(&p) {
                Some(d) => {
                    let mut d = d.clone();
                    if lie {
                        let mid = d.len() / 2;
                        d[mid] ^= 0x40;
                    }
                    d
                }
                None => vec![1],
            },
            2 => vec![u8::from(store.remove(&p).is_none())],
            _ => vec![u8::from(!store.contains_key(&p))],
        };
        drop(store);
        if conn
            .write_all(&common::raw_frame(true, h[10], uid, &reply))
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn detects_a_cache_that_returns_wrong_data() {
    let args = |addr: &str| {
        [
            "-connect",
            addr,
            "-sessions",
            "5",
            "-ops",
            "2000",
            "-datamax",
            "1000",
            "-seed",
            "7",
        ]
        .map(String::from)
    };
    // The same cache without the lie passes: the failure below is the lie.
    let (_d1, honest) = fake_cache(false);
    let r = dc_test(&args(&honest).each_ref().map(String::as_str));
    assert_passed(&r, 2000);

    let (_d2, liar) = fake_cache(true);
    let r = dc_test(&args(&liar).each_ref().map(String::as_str));
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stdout, "", "no results for a failed run");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("Error, "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(
        error.contains("GET returned") && error.contains("differ"),
        "{error}"
    );
    let succeeded: u64 = r
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Info, ")?
                .strip_suffix(" tests succeeded before the first failure")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no count: {r:?}"));
    assert!(succeeded < 2000, "{r:?}");
    // The failing operation is the one after those that succeeded.
    assert!(
        error.contains(&format!("operation {}:", succeeded + 1)),
        "{error}"
    );
}

#[test]
fn detects_a_cache_that_loses_sessions() {
    // A server too small for the test sessions evicts some: dc_test must
    // notice the sessions it expects and does not find.
    let srv = DcServer::start(&["-sessions", "64"]);
    let r = dc_test(&[
        "-connect",
        &srv.address(),
        "-sessions",
        "512",
        "-ops",
        "100000",
        "-persistent",
        "-datamax",
        "100",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("tests succeeded before the first failure"),
        "{r:?}"
    );
}
