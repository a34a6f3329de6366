//! Helpers shared by the integration tests: stopping a child by its PID,
//! running a tool to its end, the golden vectors, hex and byte comparison.
//! (A `dc_server` is run with `crate::dc_server::DcServer`.)
#![allow(dead_code)]

use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the dc_client binary cargo built for these tests.
pub fn dc_client_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dc_client"))
}

/// Kills a child by its PID and waits (bounded) for it to be reaped.
pub fn kill_pid(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = child.kill();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child that is killed by its PID (and reaped) when this goes out of
/// scope, a test's panic included.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        kill_pid(&mut self.0);
    }
}

impl Reaped {
    /// Kills the child now (by its PID) and reaps it.
    pub fn kill(&mut self) {
        kill_pid(&mut self.0);
    }
}

/// Spawns `cmd` (a daemon told to listen on the UNIX socket `socket`; its
/// standard output and error as the caller set them) and waits, at most
/// 10 s, until the socket accepts. Panics if the daemon exits first.
pub fn spawn_listening(cmd: &mut Command, socket: &Path) -> Reaped {
    let mut child = Reaped(cmd.stdin(Stdio::null()).spawn().expect("spawn"));
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{cmd:?} exited at start-up: {status}");
        }
        if UnixStream::connect(socket).is_ok() {
            return child;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{cmd:?}: {} not listening after 10 s",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pid a daemon wrote to `path`, waiting for it at most `limit`: a
/// daemon listens (and accepts) before it writes its pid file.
pub fn pid_in_file(path: &Path, limit: Duration) -> u32 {
    let start = std::time::Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            start.elapsed() < limit,
            "no pid in {} after {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Connects to a UNIX socket with read and write timeouts set.
pub fn connect_unix(path: &Path, timeout: Duration) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect to dc_server");
    s.set_read_timeout(Some(timeout)).expect("read timeout");
    s.set_write_timeout(Some(timeout)).expect("write timeout");
    s
}

/// One vector file: its comment lines and the client/server writes.
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: String,
    pub comments: Vec<String>,
    /// (true = client write `C>`, false = server write `S>`, bytes)
    pub writes: Vec<(bool, Vec<u8>)>,
}

/// Directory holding the golden vectors.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors")
}

/// Parses one vector file.
pub fn load_vector(path: &Path) -> Vector {
    let text = std::fs::read_to_string(path).expect("read vector");
    let name = path
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned();
    let mut comments = Vec::new();
    let mut writes = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix('#') {
            comments.push(c.trim().to_string());
        } else if let Some(h) = line.strip_prefix("C> ") {
            writes.push((true, hex(h)));
        } else if let Some(h) = line.strip_prefix("S> ") {
            writes.push((false, hex(h)));
        }
    }
    Vector {
        name,
        comments,
        writes,
    }
}

/// Every vector, sorted by name.
pub fn all_vectors() -> Vec<Vector> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_vector(p)).collect()
}

/// Decodes a hex string.
pub fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Human-readable comparison of expected and received bytes: both in hex
/// when short, else the lengths and a window around the first difference.
pub fn describe(expected: &[u8], got: &[u8]) -> String {
    if expected == got {
        return format!("match ({} bytes)", got.len());
    }
    if expected.len() <= 64 && got.len() <= 64 {
        return format!("expected {} got {}", to_hex(expected), to_hex(got));
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let from = first.saturating_sub(8);
    let window = |b: &[u8]| to_hex(&b[from.min(b.len())..(from + 40).min(b.len())]);
    format!(
        "expected {} bytes, got {}; first difference at byte {first}: expected [{from}..] {} got [{from}..] {}",
        expected.len(),
        got.len(),
        window(expected),
        window(got)
    )
}

/// One complete frame, built by hand (no library code), at protocol level
/// 0x00110000: a request when `is_response` is false, a reply otherwise.
pub fn raw_frame(is_response: bool, op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x11, 0x00, 0x00, u8::from(is_response)];
    v.extend_from_slice(&uid.to_be_bytes());
    v.extend_from_slice(&[0, op, 1]);
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A tool process run to its end: its exit code and what it printed.
#[derive(Debug)]
pub struct ToolRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end with stdout and stderr captured in files (so that
/// no pipe fills up); kills it by its PID and panics if it takes longer
/// than `limit`.
pub fn run_tool(cmd: &mut Command, limit: Duration) -> ToolRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn tool");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tool") {
            break status;
        }
        if start.elapsed() > limit {
            kill_pid(&mut child);
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| std::fs::read_to_string(p).expect("tool output");
    ToolRun {
        code: status.code(),
        stdout: read(&out),
        stderr: read(&err),
    }
}
