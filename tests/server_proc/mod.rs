//! A `dc_server` process for the fault, hostile-client and soak tests: on a
//! UNIX socket or a loopback TCP port, its standard error kept in a file,
//! signalled by its PID (pause, resume, kill, terminate), started again on
//! the same address, its resident memory read from `/proc`.
#![allow(dead_code)] // each test binary uses a part

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a start, a stop or a signal's effect may take.
const LIMIT: Duration = Duration::from_secs(10);

/// Where a server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Unix,
    Tcp,
}

/// A socket path in a temp dir, or a loopback TCP port.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(u16),
}

impl Endpoint {
    /// A fresh endpoint of kind `net` (the path inside `dir`).
    pub fn new(net: Net, dir: &Path, name: &str) -> Endpoint {
        match net {
            Net::Unix => Endpoint::Unix(dir.join(name)),
            Net::Tcp => Endpoint::Tcp(free_tcp_port()),
        }
    }

    /// The address string of the distcache tools and library.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("UNIX:{}", p.display()),
            Endpoint::Tcp(port) => format!("IP:127.0.0.1:{port}"),
        }
    }

    /// Whether something accepts connections there.
    pub fn accepts(&self) -> bool {
        match self {
            Endpoint::Unix(p) => UnixStream::connect(p).is_ok(),
            Endpoint::Tcp(port) => TcpStream::connect(("127.0.0.1", *port)).is_ok(),
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (it was free a moment
/// ago).
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The dc_server binary cargo built for this test.
pub fn dc_server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dc_server"))
}

/// A running (or stopped) dc_server; killed by its PID when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    endpoint: Endpoint,
    args: Vec<String>,
    dir: tempfile::TempDir,
    /// Standard error of the current process.
    log: PathBuf,
    starts: u32,
}

impl ServerProcess {
    /// Starts `dc_server -listen <endpoint> args...` and waits until it
    /// accepts connections.
    pub fn start(net: Net, args: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = Endpoint::new(net, dir.path(), "dc.sock");
        let mut s = ServerProcess {
            child: None,
            endpoint,
            args: args.iter().map(|a| a.to_string()).collect(),
            log: PathBuf::new(),
            dir,
            starts: 0,
        };
        s.start_again();
        s
    }

    pub fn address(&self) -> String {
        self.endpoint.address()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The process id of the current process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a server process").id()
    }

    /// Starts a new process on the same endpoint with the same arguments
    /// (after [`ServerProcess::kill`]) and waits until it accepts.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "dc_server {} is still running",
            self.address()
        );
        self.starts += 1;
        self.log = self.dir.path().join(format!("stderr.{}", self.starts));
        let err = std::fs::File::create(&self.log).expect("stderr file");
        let child = Command::new(dc_server_bin())
            .arg("-listen")
            .arg(self.endpoint.address())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn dc_server");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "dc_server {} exited at start-up ({status}): {}",
                    self.address(),
                    self.stderr()
                );
            }
            if self.endpoint.accepts() {
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "dc_server {} not accepting after {LIMIT:?}",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the current process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// Sends `sig` to the current process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // The pid of a child this object spawned and has not reaped (so the
        // pid cannot have been reused).
        let signal = nix::sys::signal::Signal::try_from(sig).expect("a signal number");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
    }

    /// SIGSTOP: the process stays, with its sockets, and answers nothing.
    /// Returns once every thread of it is stopped (the signal takes effect
    /// asynchronously).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let start = Instant::now();
        while !self.all_threads_stopped() {
            assert!(start.elapsed() < LIMIT, "dc_server did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether every thread's state in /proc is T (stopped).
    fn all_threads_stopped(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return false;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
                stat.rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().next())
                    == Some("T")
            })
        })
    }

    /// SIGCONT after [`ServerProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGKILL, then waits (bounded) until the process is reaped.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
        }
        self.wait_exit();
    }

    /// Waits (bounded) for the current process to exit; panics (after
    /// killing it) if it does not.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if start.elapsed() > LIMIT {
                if let Some(child) = self.child.as_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                panic!("dc_server {} did not exit within {LIMIT:?}", self.address());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM; the process must exit 0 within the limit. Returns its
    /// standard error.
    pub fn terminate(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        let err = self.stderr();
        assert_eq!(status.code(), Some(0), "dc_server after SIGTERM: {err}");
        err
    }

    /// Standard error of the current process so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// How many threads the process has.
    pub fn threads(&self) -> u64 {
        proc_status_field(self.pid(), "Threads:")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// VmRSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_field(pid, "VmRSS:")
}

fn proc_status_field(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The counts of dc_server's last line on a clean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopCounts {
    pub operations: u64,
    pub connections: u64,
    pub sessions: u64,
    pub evicted: u64,
    pub expired: u64,
}

/// Parses `Info, stopped: operations N, connections N, sessions N,
/// evicted N, expired N`, which must be the last line of `stderr`.
pub fn stop_counts(stderr: &str) -> StopCounts {
    let last = stderr.lines().last().unwrap_or("");
    let body = last
        .strip_prefix("Info, stopped: ")
        .unwrap_or_else(|| panic!("last line is not the stop line: {stderr:?}"));
    let mut counts = StopCounts::default();
    for part in body.split(", ") {
        let (name, value) = part
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad stop line {last:?}"));
        let value: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad number in {last:?}"));
        match name {
            "operations" => counts.operations = value,
            "connections" => counts.connections = value,
            "sessions" => counts.sessions = value,
            "evicted" => counts.evicted = value,
            "expired" => counts.expired = value,
            _ => panic!("unknown count {name:?} in {last:?}"),
        }
    }
    counts
}
