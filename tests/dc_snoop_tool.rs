//! The dc_snoop tool: its command line, dc_test through it to dc_server
//! (every request and reply logged), corrupt bytes forwarded unchanged,
//! closes passed on, and a stalled connection holding up nobody.

mod common;
mod dc_server;

use common::{kill_pid, raw_frame, run_tool, ToolRun};
use dc_server::DcServer;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(10);

fn dc_snoop(args: &[&str]) -> ToolRun {
    run_tool(
        Command::new(env!("CARGO_BIN_EXE_dc_snoop")).args(args),
        LIMIT,
    )
}

/// A running dc_snoop whose output goes to files; killed by PID on drop.
struct Snoop {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Snoop {
    /// Starts `dc_snoop -listen UNIX:<tmp> -server <server>` and waits until
    /// it says it listens.
    fn start(server: &str, extra: &[&str]) -> Snoop {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("snoop.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_dc_snoop"))
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .args(["-server", server])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .expect("spawn dc_snoop");
        let mut snoop = Snoop { child, dir, socket };
        let start = Instant::now();
        while !snoop.stderr().contains("listening on") {
            if let Ok(Some(status)) = snoop.child.try_wait() {
                panic!("dc_snoop exited: {status}: {}", snoop.stderr());
            }
            assert!(start.elapsed() < WAIT, "dc_snoop did not start");
            thread::sleep(Duration::from_millis(10));
        }
        snoop
    }

    fn address(&self) -> String {
        format!("UNIX:{}", self.socket.display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default()
    }

    /// Waits until the log holds a line containing `needle`; the log so far.
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(start.elapsed() < WAIT, "no {needle:?} in the log:\n{log}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn connect(&self) -> UnixStream {
        common::connect_unix(&self.socket, WAIT)
    }
}

impl Drop for Snoop {
    fn drop(&mut self) {
        kill_pid(&mut self.child);
    }
}

fn dc_test(addr: &str, extra: &[&str]) -> ToolRun {
    run_tool(
        Command::new(env!("CARGO_BIN_EXE_dc_test"))
            .args(["-connect", addr])
            .args(extra),
        LIMIT,
    )
}

/// Per request uid: (request lines, reply lines).
fn lines_per_uid(log: &str) -> HashMap<u32, (u32, u32)> {
    let mut per = HashMap::<u32, (u32, u32)>::new();
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(uid) = words.get(3).and_then(|w| w.strip_prefix("uid=")) else {
            continue;
        };
        let entry = per.entry(uid.parse().expect("uid")).or_default();
        match words[2] {
            "C>" => entry.0 += 1,
            "S>" => entry.1 += 1,
            other => panic!("direction {other:?} in {line:?}"),
        }
    }
    per
}

/// A backend in a thread: for each connection it sends what it receives
/// down `seen` (one message per read) and writes whatever `answer` returns
/// for those bytes.
fn fake_backend(
    answer: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
) -> (tempfile::TempDir, String, mpsc::Receiver<Option<Vec<u8>>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // One connection is all these tests make.
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    let reply = answer(&buf[..n]);
                    let _ = tx.send(Some(buf[..n].to_vec()));
                    if !reply.is_empty() && conn.write_all(&reply).is_err() {
                        return;
                    }
                }
            }
        }
    });
    (dir, format!("UNIX:{}", path.display()), rx)
}

/// Collects `len` bytes from the backend's reports, or panics.
fn backend_got(rx: &mpsc::Receiver<Option<Vec<u8>>>, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        match rx.recv_timeout(WAIT) {
            Ok(Some(bytes)) => got.extend(bytes),
            other => panic!("backend: {other:?} after {} bytes", got.len()),
        }
    }
    got
}

fn read_exactly(conn: &mut UnixStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    conn.read_exact(&mut buf).expect("bytes from dc_snoop");
    buf
}

#[test]
fn help_and_bad_command_lines() {
    for h in ["-h", "-help", "-?", "--help"] {
        let r = dc_snoop(&[h]);
        assert_eq!(r.code, Some(0), "{h}");
        assert!(r.stdout.starts_with("Usage: dc_snoop -listen"), "{r:?}");
        for opt in ["-server", "-connect", "-hex"] {
            assert!(r.stdout.contains(opt), "{opt}");
        }
        assert_eq!(r.stderr, "");
    }
    let one_line = |args: &[&str], needle: &str| {
        let r = dc_snoop(args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert_eq!(r.stdout, "");
    };
    one_line(
        &["-listen", "UNIX:/a", "-server", "UNIX:/b", "-bogus"],
        "'-bogus'",
    );
    one_line(&["-listen"], "-listen");
    one_line(&["-listen", "UNIX:/a", "-server"], "-server");
    one_line(&["-listen", "UNIX:/a"], "-server");
    one_line(&["-server", "UNIX:/a"], "-listen");
    one_line(&["-listen", "nowhere", "-server", "UNIX:/b"], "nowhere");
    one_line(&["-listen", "UNIX:/a", "-connect", "IP:9001"], "IP:9001");
}

#[test]
fn cannot_listen_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file is never replaced by a listener.
    let file = dir.path().join("taken");
    std::fs::write(&file, b"keep me").unwrap();
    let listen = format!("UNIX:{}", file.display());
    let r = dc_snoop(&["-listen", &listen, "-server", "UNIX:/nonexistent"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot listen"), "{r:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn dc_test_through_dc_snoop_every_request_and_reply_logged() {
    let srv = DcServer::start(&["-sessions", "10000"]);
    let snoop = Snoop::start(&srv.address(), &[]);
    let r = dc_test(
        &snoop.address(),
        &[
            "-sessions",
            "40",
            "-ops",
            "10000",
            "-persistent",
            "-clients",
            "2",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let short = dc_test(&snoop.address(), &["-sessions", "10", "-ops", "1000"]);
    assert_eq!(short.code, Some(0), "{short:?}");

    // Every reply is logged before it is forwarded, so the log is complete
    // once dc_test has its answers.
    let log = snoop.log();
    let per = lines_per_uid(&log);
    // uids start at 1 in each dc_test process: 20000 + 1000 requests, with
    // uids 1..=1000 used by both runs.
    assert_eq!(per.len(), 20_000, "distinct uids");
    for (uid, (requests, replies)) in &per {
        let runs = if *uid <= 1000 { 2 } else { 1 };
        assert_eq!((*requests, *replies), (runs, runs), "uid {uid}");
    }
    assert!(log.contains(" S> uid="), "{log}");
    for op in ["ADD", "GET", "REMOVE", "HAVE"] {
        for dir in ["C>", "S>"] {
            let seen = log
                .lines()
                .any(|l| l.contains(&format!(" {dir} uid=")) && l.contains(&format!(" {op} ")));
            assert!(seen, "no {dir} {op} line");
        }
    }
    // The run with a connection per operation opened one per request.
    let opens = log.lines().filter(|l| l.ends_with(" open")).count();
    assert_eq!(opens, 2 + 1000, "{}", &log[..log.len().min(2000)]);
}

#[test]
fn corrupt_bytes_are_reported_and_forwarded_unchanged() {
    let (_dir, backend, seen) = fake_backend(|bytes| {
        // A valid reply to the first request, then garbage.
        if bytes.get(10) == Some(&3) {
            raw_frame(true, 3, 1, &[1])
        } else {
            b"HTTP/1.0 400 Bad Request\r\n\r\n".to_vec()
        }
    });
    let snoop = Snoop::start(&backend, &[]);
    let mut conn = snoop.connect();

    let have = raw_frame(false, 3, 1, b"some-id");
    conn.write_all(&have).unwrap();
    assert_eq!(backend_got(&seen, have.len()), have);
    assert_eq!(read_exactly(&mut conn, 15), raw_frame(true, 3, 1, &[1]));

    // Operation 9 does not exist: reported, forwarded as it is, and what
    // follows is forwarded too.
    let mut bad = raw_frame(false, 9, 2, b"xyz");
    bad.extend_from_slice(&raw_frame(false, 3, 3, b"after"));
    conn.write_all(&bad).unwrap();
    assert_eq!(backend_got(&seen, bad.len()), bad);
    let garbage = read_exactly(&mut conn, 28);
    assert_eq!(garbage, b"HTTP/1.0 400 Bad Request\r\n\r\n");

    let log = snoop.wait_for(" S> corrupt");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" C> uid=1 HAVE id=736f6d652d6964")),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" S> uid=1 HAVE not-found")),
        "{log}"
    );
    let corrupt: Vec<&&str> = lines.iter().filter(|l| l.contains("corrupt")).collect();
    assert_eq!(corrupt.len(), 2, "one report per direction: {log}");
    assert!(
        corrupt[0].contains(" C> corrupt: unknown operation 9"),
        "{log}"
    );
    assert!(
        corrupt[1].contains(" S> corrupt: protocol version mismatch"),
        "{log}"
    );
    assert!(
        !log.contains("uid=3"),
        "nothing decoded after the corruption: {log}"
    );

    // The client closing closes the server side too.
    drop(conn);
    assert_eq!(
        seen.recv_timeout(WAIT).expect("backend sees the close"),
        None
    );
    snoop.wait_for("closed by the client");
}

#[test]
fn server_closing_closes_the_client_and_hex_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backend.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // A backend that reads one request and hangs up without answering.
    let backend = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 16];
        conn.read_exact(&mut buf).expect("one request");
        buf
    });
    let snoop = Snoop::start(&format!("UNIX:{}", path.display()), &["-hex"]);
    let mut conn = snoop.connect();
    let have = raw_frame(false, 3, 77, b"id");
    conn.write_all(&have).unwrap();
    assert_eq!(backend.join().unwrap().to_vec(), have);
    let mut rest = Vec::new();
    assert_eq!(conn.read_to_end(&mut rest).expect("end of stream"), 0);
    let log = snoop.wait_for("closed by the server");
    // -hex: the frame's bytes follow its line.
    let line = log
        .lines()
        .position(|l| l.ends_with(" C> uid=77 HAVE id=6964"))
        .unwrap_or_else(|| panic!("{log}"));
    let dump = log.lines().nth(line + 1).unwrap();
    assert_eq!(
        dump,
        "    0000  00 11 00 00 00 00 00 00 4d 00 03 01 00 02 69 64  ........M.....id"
    );
}

#[test]
fn a_stalled_connection_holds_up_no_other() {
    let srv = DcServer::start(&["-sessions", "10000"]);
    let snoop = Snoop::start(&srv.address(), &[]);
    // Half a frame, then silence: the server waits for the rest.
    let mut stalled = snoop.connect();
    stalled
        .write_all(&raw_frame(false, 3, 1, b"id")[..9])
        .unwrap();
    let r = dc_test(&snoop.address(), &["-ops", "2000", "-persistent"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    // The stalled one still works once it goes on.
    stalled
        .write_all(&raw_frame(false, 3, 1, b"id")[9..])
        .unwrap();
    assert_eq!(read_exactly(&mut stalled, 15), raw_frame(true, 3, 1, &[1]));
}
