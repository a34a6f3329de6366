//! A `dc_server` process for the limit and abuse tests: its standard error
//! kept in a file (to check what it logged), optionally under a hard limit
//! on open files, its memory read from /proc; stopped by its PID on drop.
#![allow(dead_code)]

use crate::common::{dc_server_bin, kill_pid};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LiveServer {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    log: PathBuf,
}

impl LiveServer {
    /// Starts `dc_server -listen UNIX:<tmp>/s.sock <extra>` and waits (at
    /// most 10 s) until it accepts connections.
    pub fn start(extra: &[&str]) -> LiveServer {
        LiveServer::spawn(extra, None)
    }

    /// The same, with the soft and hard limits on open files both set to
    /// `nofile` (`ulimit -n` in a shell that then execs the server, so the
    /// PID is the server's), so that the server cannot raise it.
    pub fn start_with_nofile(nofile: u32, extra: &[&str]) -> LiveServer {
        LiveServer::spawn(extra, Some(nofile))
    }

    fn spawn(extra: &[&str], nofile: Option<u32>) -> LiveServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("s.sock");
        let log = dir.path().join("stderr");
        let mut cmd = match nofile {
            None => Command::new(dc_server_bin()),
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(dc_server_bin());
                c
            }
        };
        let child = cmd
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn dc_server");
        let mut srv = LiveServer {
            child,
            dir,
            socket,
            log,
        };
        srv.wait_ready(Duration::from_secs(10));
        srv
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dc_server exited early: {status}; log:\n{}", self.log());
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("dc_server did not start listening within {limit:?}");
    }

    pub fn address(&self) -> String {
        format!("UNIX:{}", self.socket.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the server wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits (at most `limit`) until the log has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if !self.log_lines(needle).is_empty() {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A field of /proc/PID/status, in kB (VmRSS, VmHWM, ...).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// Threads of the process.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Open descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The soft and hard limits on open files, from /proc/PID/limits.
    pub fn nofile_limits(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid()))
            .expect("read /proc/PID/limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line");
        let nums: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (nums[0], nums[1])
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        kill_pid(&mut self.child);
    }
}

/// One request frame at protocol level 0x00110000 (FACTS.md section 1).
pub fn request(op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    crate::replay::encode_msg(false, uid, op, payload)
}

/// A HAVE request for `id`.
pub fn have(uid: u32, id: &[u8]) -> Vec<u8> {
    request(3, uid, id)
}

/// The reply a server sends to a HAVE of an id it does not hold.
pub fn have_miss(uid: u32) -> Vec<u8> {
    crate::replay::encode_msg(true, uid, 3, &[1])
}

/// Connects with read and write timeouts of `timeout`.
pub fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// How a connection answered one HAVE.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The right reply.
    Served,
    /// Closed (EOF, reset or broken pipe) without a reply.
    Closed,
    /// Anything else (a timeout, wrong bytes).
    Other(String),
}

/// Sends a HAVE of an id nobody stores and reads the reply.
pub fn ask(s: &mut UnixStream, uid: u32) -> Answer {
    if let Err(e) = s.write_all(&have(uid, b"never-stored")) {
        return closed_or(e);
    }
    let want = have_miss(uid);
    let mut got = vec![0u8; want.len()];
    let mut n = 0;
    while n < got.len() {
        match s.read(&mut got[n..]) {
            Ok(0) => return Answer::Closed,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return closed_or(e),
        }
    }
    if got == want {
        Answer::Served
    } else {
        Answer::Other(format!("wrong reply {got:02x?}"))
    }
}

fn closed_or(e: io::Error) -> Answer {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Answer::Closed,
        _ => Answer::Other(e.to_string()),
    }
}

/// Reads until EOF (or a reset), at most `limit`; the bytes read, or an
/// error when the connection stayed open.
pub fn read_to_close(s: &mut UnixStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({} bytes read)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
