//! `dc_admin top` against a live dc_server: a bounded number of refreshes
//! (`-n`), each line checked against the load a client thread made
//! meanwhile, and the admin socket free for others while top runs.

mod common;
mod dc_server;

use common::{run_tool, ToolRun};
use dc_server::DcServer;
use distcache::{Client, Flags};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn dc_admin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dc_admin"))
}

/// A dc_server with an admin socket.
struct Srv {
    server: DcServer,
    admin: PathBuf,
}

impl Srv {
    fn start() -> Srv {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = dir.path().join("a.sock");
        let server = DcServer::builder()
            .dir(dir)
            .arg("-admin")
            .arg(format!("UNIX:{}", admin.display()))
            .start();
        let start = Instant::now();
        while !admin.exists() {
            assert!(start.elapsed() < LIMIT, "dc_server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Srv { server, admin }
    }

    fn address(&self) -> String {
        self.server.address()
    }
}

fn admin(admin: &Path, args: &[&str]) -> ToolRun {
    run_tool(
        Command::new(dc_admin_bin())
            .arg("-connect")
            .arg(format!("UNIX:{}", admin.display()))
            .args(args),
        LIMIT,
    )
}

/// The columns of a line of top, without the separators.
fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().filter(|w| *w != "|").collect()
}

#[test]
fn top_shows_what_the_server_does_each_interval() {
    let srv = Srv::start();
    let c = Client::new(&srv.address(), Flags::PERSISTENT).expect("client");
    for i in 0..20u32 {
        c.add(format!("id-{i}").as_bytes(), &[7u8; 1000], 600_000)
            .expect("add");
    }
    // GET hits only, as fast as one client goes, until top is done.
    let stop = Arc::new(AtomicBool::new(false));
    let gets = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, gets, address) = (stop.clone(), gets.clone(), srv.address());
        std::thread::spawn(move || {
            let c = Client::new(&address, Flags::PERSISTENT).expect("client");
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let got = c.get(format!("id-{}", i % 20).as_bytes()).expect("get");
                assert_eq!(got.as_deref(), Some(&[7u8; 1000][..]));
                gets.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let top = {
        let admin_path = srv.admin.clone();
        std::thread::spawn(move || admin(&admin_path, &["top", "-n", "3", "-interval", "300"]))
    };
    // While top runs, the admin socket serves others: top holds no
    // connection between its readings.
    let start = Instant::now();
    while !top.is_finished() {
        let run = admin(&srv.admin, &["stats"]);
        assert_eq!(run.code, Some(0), "stats while top runs: {run:?}");
        assert!(start.elapsed() < LIMIT, "top still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = top.join().expect("top thread");
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");

    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2 + 3,
        "two header lines and three rows: {run:?}"
    );
    assert_eq!(
        columns(lines[0]),
        [
            "sessions", "data", "add/s", "get/s", "remove/s", "have/s", "total/s", "hit%", "conns",
            "new/s", "evict/s", "expire/s"
        ]
    );
    assert!(gets.load(Ordering::Relaxed) > 0);
    for row in &lines[2..] {
        let col = columns(row);
        assert_eq!(col.len(), 12, "{row}");
        // 20 sessions of 1000 bytes and 20 ids of 4 or 5 bytes.
        assert_eq!(col[0], "20", "{row}");
        assert_eq!(col[1], "20K", "{row}");
        let rate = |i: usize| -> u64 { col[i].parse().unwrap_or_else(|_| panic!("{row}")) };
        // Only GETs were made, and every one hit; the admin readings are
        // not client operations.
        assert_eq!((rate(2), rate(4), rate(5)), (0, 0, 0), "{row}");
        assert!(rate(3) > 0, "{row}");
        assert_eq!(rate(6), rate(3), "{row}");
        assert_eq!(col[7], "100.0", "{row}");
        // The two persistent clients; no new connections, no evictions.
        assert_eq!(col[8], "2", "{row}");
        assert_eq!((rate(9), rate(10), rate(11)), (0, 0, 0), "{row}");
    }
}

#[test]
fn top_fails_when_the_server_goes_away() {
    let mut srv = Srv::start();
    let admin_path = srv.admin.clone();
    let top = std::thread::spawn(move || admin(&admin_path, &["top", "-interval", "100"]));
    std::thread::sleep(Duration::from_millis(300));
    srv.server.kill();
    let run = top.join().expect("top thread");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.starts_with("dc_admin: "), "{run:?}");
}
