//! The one way the tests run a `dc_server`: [`DcServer::builder`] says how
//! (binary, listen address, `-sessions`, `-store`, other arguments,
//! environment, a limit on open files), [`DcServerBuilder::start`] spawns it
//! and waits until it accepts connections. Standard error goes to a file in
//! the server's own temporary directory, one per start. Every wait is
//! bounded; the process is signalled and reaped by its PID, and dropping a
//! [`DcServer`] kills it and waits for it.
#![allow(dead_code)] // each test binary uses a part

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a start, a stop or a signal's effect may take.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The dc_server binary cargo built for this test.
pub fn dc_server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dc_server"))
}

/// A TCP port on 127.0.0.1 that nothing listens on (it was free a moment
/// ago).
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Where a server listens: a kind, for tests that run over both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Unix,
    Tcp,
}

/// A socket path, or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Endpoint {
    /// A fresh endpoint of kind `net`: `dir/name`, or a free port on
    /// 127.0.0.1.
    pub fn new(net: Net, dir: &Path, name: &str) -> Endpoint {
        match net {
            Net::Unix => Endpoint::Unix(dir.join(name)),
            Net::Tcp => Endpoint::loopback(free_tcp_port()),
        }
    }

    /// Port `port` on 127.0.0.1.
    pub fn loopback(port: u16) -> Endpoint {
        Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// From a libnal address string (`UNIX:`, `IP:`, `IPv4:`, `IPv6:`).
    pub fn parse(address: &str) -> Endpoint {
        if let Some(path) = address.strip_prefix("UNIX:") {
            return Endpoint::Unix(PathBuf::from(path));
        }
        let rest = address
            .strip_prefix("IPv6:")
            .or_else(|| address.strip_prefix("IPv4:"))
            .or_else(|| address.strip_prefix("IP:"))
            .unwrap_or_else(|| panic!("not a connectable address: {address}"));
        // A port alone listens on every address: reach it on loopback.
        let rest = if rest.contains(':') {
            rest.to_string()
        } else {
            format!("127.0.0.1:{rest}")
        };
        let addr = rest
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {address}"));
        Endpoint::Tcp(addr)
    }

    /// The address string of the distcache tools and library.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("UNIX:{}", p.display()),
            Endpoint::Tcp(SocketAddr::V4(a)) => format!("IP:{a}"),
            Endpoint::Tcp(SocketAddr::V6(a)) => format!("IPv6:{a}"),
        }
    }

    /// Whether something accepts connections there.
    pub fn accepts(&self) -> bool {
        match self {
            Endpoint::Unix(p) => UnixStream::connect(p).is_ok(),
            Endpoint::Tcp(a) => TcpStream::connect_timeout(a, LIMIT).is_ok(),
        }
    }
}

/// Where the builder puts the server.
#[derive(Debug, Clone)]
enum Listen {
    /// A kind; a UNIX socket goes in the server's temporary directory.
    Fresh(Net),
    /// An address string, passed to `-listen` as it is.
    Address(String),
}

/// How to run a dc_server; [`DcServer::builder`] makes one.
#[derive(Debug)]
pub struct DcServerBuilder {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    listen: Listen,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    nofile: Option<u32>,
}

impl DcServerBuilder {
    /// The program to run (cargo's dc_server unless told otherwise).
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

    /// The server's own directory (its UNIX socket and standard error go
    /// there; removed with the server), for a test that names other
    /// sockets or files in it before the start.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Listens on a fresh UNIX socket or loopback port.
    pub fn net(mut self, net: Net) -> Self {
        self.listen = Listen::Fresh(net);
        self
    }

    /// Listens on a fresh port on 127.0.0.1.
    pub fn tcp(self) -> Self {
        self.net(Net::Tcp)
    }

    /// Listens on `address` (a libnal address string).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Listen::Address(address.into());
        self
    }

    /// Listens on the UNIX socket `path`.
    pub fn unix_at(self, path: &Path) -> Self {
        self.listen(format!("UNIX:{}", path.display()))
    }

    /// Listens on `port` of 127.0.0.1.
    pub fn tcp_on(self, port: u16) -> Self {
        self.listen(format!("IP:127.0.0.1:{port}"))
    }

    /// `-sessions n`.
    pub fn sessions(self, n: u64) -> Self {
        self.arg("-sessions").arg(n.to_string())
    }

    /// `-store dir`.
    pub fn store(self, dir: &Path) -> Self {
        self.arg("-store").arg(dir)
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// An environment variable of the server.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Soft and hard limits on open files both `n` (`ulimit -n` in a shell
    /// that then execs the server, so that the PID is the server's and the
    /// server cannot raise the limit).
    pub fn nofile(mut self, n: u32) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Spawns the server without waiting for it (a test of start-up
    /// failures waits with [`DcServer::wait_exit`]).
    pub fn spawn(mut self) -> DcServer {
        let dir = match self.dir.take() {
            Some(dir) => dir,
            None => tempfile::tempdir().expect("tempdir"),
        };
        let endpoint = match &self.listen {
            Listen::Fresh(net) => Endpoint::new(*net, dir.path(), "s.sock"),
            Listen::Address(a) => Endpoint::parse(a),
        };
        let address = match &self.listen {
            Listen::Fresh(_) => endpoint.address(),
            Listen::Address(a) => a.clone(),
        };
        let mut server = DcServer {
            config: self,
            child: None,
            endpoint,
            address,
            dir,
            log: PathBuf::new(),
            starts: 0,
        };
        server.spawn_process();
        server
    }

    /// Spawns the server and waits (at most [`LIMIT`]) until it accepts
    /// connections; panics, with what it logged, when it exits first.
    pub fn start(self) -> DcServer {
        let mut server = self.spawn();
        server.wait_ready();
        server
    }
}

/// A running (or stopped) dc_server; killed by its PID when dropped.
pub struct DcServer {
    config: DcServerBuilder,
    child: Option<Child>,
    endpoint: Endpoint,
    address: String,
    dir: tempfile::TempDir,
    /// Standard error of the current process.
    log: PathBuf,
    starts: u32,
}

impl DcServer {
    /// A builder for cargo's dc_server on a fresh UNIX socket.
    pub fn builder() -> DcServerBuilder {
        DcServerBuilder {
            bin: dc_server_bin(),
            dir: None,
            listen: Listen::Fresh(Net::Unix),
            args: Vec::new(),
            env: Vec::new(),
            nofile: None,
        }
    }

    /// `dc_server -listen UNIX:<tmp>/s.sock args...`, accepting.
    pub fn start(args: &[&str]) -> DcServer {
        DcServer::builder().args(args).start()
    }

    /// The address string clients use.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The UNIX socket's path; panics for a TCP server.
    pub fn socket(&self) -> &Path {
        match &self.endpoint {
            Endpoint::Unix(p) => p,
            Endpoint::Tcp(a) => panic!("dc_server listens on TCP {a}, not a UNIX socket"),
        }
    }

    /// The server's own temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the current process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a server process").id()
    }

    fn spawn_process(&mut self) {
        self.starts += 1;
        self.log = self.dir.path().join(format!("stderr.{}", self.starts));
        let err = std::fs::File::create(&self.log).expect("stderr file");
        let c = &self.config;
        let mut cmd = match c.nofile {
            None => Command::new(&c.bin),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&c.bin);
                sh
            }
        };
        cmd.arg("-listen")
            .arg(&self.address)
            .args(&c.args)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", c.bin.display()));
        self.child = Some(child);
    }

    /// Waits (at most [`LIMIT`]) until the server accepts connections.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "dc_server {} exited at start-up ({status}): {}",
                    self.address,
                    self.stderr()
                );
            }
            if self.endpoint.accepts() {
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "dc_server {} not accepting after {LIMIT:?}: {}",
                self.address,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts a new process on the same address with the same arguments
    /// (after [`DcServer::kill`]) and waits until it accepts.
    pub fn start_again(&mut self) {
        assert!(
            !self.is_running(),
            "dc_server {} is still running",
            self.address
        );
        self.spawn_process();
        self.wait_ready();
    }

    /// Kills the server and starts a new one on the same address with the
    /// same arguments (it starts with an empty cache, unless `-store`).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
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

    /// SIGCONT after [`DcServer::pause`].
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
        if self.child.is_some() {
            self.wait_exit();
        }
    }

    /// Waits (at most [`LIMIT`]) for the current process to exit; panics
    /// (after killing it) if it does not.
    pub fn wait_exit(&mut self) -> ExitStatus {
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
                panic!("dc_server {} did not exit within {LIMIT:?}", self.address);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// SIGTERM; the process must exit 0 within the limit. Returns its
    /// standard error.
    pub fn terminate(&mut self) -> String {
        let status = self.stop();
        let err = self.stderr();
        assert_eq!(status.code(), Some(0), "dc_server after SIGTERM: {err}");
        err
    }

    /// Standard error of the current process so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of standard error containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits (at most `limit`) until standard error has a line containing
    /// `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if !self.log_lines(needle).is_empty() {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most [`LIMIT`]) until standard error contains `needle`
    /// and returns it; panics with what it holds otherwise.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(
                start.elapsed() < LIMIT,
                "no {needle:?} on dc_server's standard error: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A field of /proc/PID/status, in kB (VmRSS, VmHWM, ...) or a count
    /// (Threads).
    pub fn status_kb(&self, field: &str) -> u64 {
        proc_status_field(self.pid(), field)
    }

    /// The process's resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// How many threads the process has.
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

impl Drop for DcServer {
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
    proc_status_field(pid, "VmRSS")
}

fn proc_status_field(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
