//! dc_server as an operator runs it: command line, exit codes, signals,
//! daemon mode, pid file, socket files and their permissions, -user,
//! -min-expiry, several listeners and the progress line. Every test runs
//! real dc_server processes, waits a bounded time and stops them by PID.

mod common;
mod dc_server;
mod require;

use common::{kill_pid, pid_in_file, run_tool};
use dc_server::{dc_server_bin, DcServer};
use distcache::{Client, Flags};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// A dc_server whose start-up, signals and exit a test watches.
struct Tool {
    server: DcServer,
}

impl Tool {
    /// Spawns `dc_server -listen ADDRESS args...` (`args` starts with the
    /// `-listen`), without waiting for it.
    fn spawn(args: &[&str]) -> Tool {
        let ["-listen", listen, rest @ ..] = args else {
            panic!("Tool::spawn takes -listen ADDRESS first: {args:?}");
        };
        Tool {
            server: DcServer::builder().listen(*listen).args(rest).spawn(),
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.server.pid()).expect("pid fits i32")
    }

    fn stderr(&self) -> String {
        self.server.stderr()
    }

    fn is_running(&mut self) -> bool {
        self.server.is_running()
    }

    /// Waits (bounded) until its first address accepts.
    fn wait_listening(&mut self) {
        self.server.wait_ready();
    }

    /// Waits (bounded) until standard error contains `text`.
    fn wait_stderr(&self, text: &str) -> String {
        self.server.wait_stderr(text)
    }

    /// Waits (bounded) for the process to exit; kills it if it does not.
    fn wait_exit(&mut self) -> ExitStatus {
        self.server.wait_exit()
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        thread::sleep(Duration::from_millis(10));
    }
    kill_pid(child);
    panic!("dc_server did not exit within {limit:?}");
}

/// Runs dc_server to its end (bounded) and gives its status, stdout and
/// stderr.
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(dc_server_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dc_server");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let status = wait_child(&mut child, LIMIT);
    let (o, e) = reader.join().unwrap();
    (status, o, e)
}

fn signal(pid: i32, sig: libc::c_int) {
    let signal = nix::sys::signal::Signal::try_from(sig).expect("a signal number");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
}

/// Whether process `pid` still runs (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Kills a process this test did not spawn directly (the daemon) by PID
/// when dropped, unless it has already ended.
struct PidGuard(i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if alive(self.0) {
            let pid = nix::unistd::Pid::from_raw(self.0);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn wait_gone(pid: i32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < LIMIT, "process {pid} did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

fn unix(path: &Path) -> String {
    format!("UNIX:{}", path.display())
}

fn client(address: &str) -> Client {
    let c = Client::new(address, Flags::empty()).expect("client");
    c.set_timeout(Duration::from_secs(5));
    c
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn one_line(s: &str) -> &str {
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {s:?}");
    lines[0]
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    for flag in ["-h", "--help", "-?"] {
        let (status, out, err) = run(&[flag]);
        assert_eq!(status.code(), Some(0), "{flag}");
        assert!(err.is_empty(), "{flag}: stderr {err:?}");
        assert!(out.starts_with("Usage: dc_server"), "{out}");
        for option in [
            "-listen",
            "-sessions",
            "-min-expiry",
            "-progress",
            "-daemon",
            "-pidfile",
            "-user",
            "-sockowner",
            "-sockgroup",
            "-sockperms",
            "-killable",
            "SIGTERM",
        ] {
            assert!(out.contains(option), "usage lacks {option}");
        }
    }
}

#[test]
fn bad_command_lines_exit_1_with_one_line() {
    let d = Dir::new();
    let sock = unix(&d.path("s.sock"));
    let cases: &[(&[&str], &str)] = &[
        (&["-listen", &sock, "-bogus"], "-bogus"),
        (&["--no-such-option"], "--no-such-option"),
        (&["-listen"], "-listen"),
        (&["-listen", &sock, "-pidfile"], "-pidfile"),
        (&["-listen", &sock, "-sockperms"], "-sockperms"),
        (&["-listen", &sock, "-sockperms", "9"], "-sockperms"),
        (&["-listen", &sock, "-min-expiry", "soon"], "-min-expiry"),
        (&["-listen", &sock, "-progress", "-1"], "-progress"),
        (&["-listen", &sock, "-sessions", "0"], "-sessions"),
        (&["-sessions", "10"], "-listen"),
        (&["-listen", "FOO:1"], "FOO:1"),
        (&["-listen", "IP:notaport"], "IP:notaport"),
    ];
    for (args, named) in cases {
        let (status, out, err) = run(args);
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: stdout {out:?}");
        let line = one_line(&err);
        assert!(
            line.contains(named),
            "{args:?}: {line:?} does not name {named}"
        );
    }
    assert!(!d.path("s.sock").exists());
}

#[test]
fn daemon_with_pidfile_stops_on_sigterm_and_cleans_up() {
    let d = Dir::new();
    let (sock, pidfile) = (d.path("s.sock"), d.path("dc.pid"));
    let (status, out, err) = run(&[
        "-daemon",
        "-listen",
        &unix(&sock),
        "-pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.is_empty() && err.is_empty(), "{out:?} {err:?}");
    // The parent returned only once the daemon was ready.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file written before the parent exits")
        .trim()
        .parse()
        .expect("a pid");
    let _guard = PidGuard(pid);
    assert!(alive(pid));
    let c = client(&unix(&sock));
    c.add(b"id", b"session", 60_000).expect("daemon answers");
    assert!(c.have(b"id").unwrap());

    signal(pid, libc::SIGTERM);
    wait_gone(pid);
    assert!(!sock.exists(), "socket file left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

#[test]
fn daemon_that_cannot_start_makes_the_command_fail() {
    let d = Dir::new();
    let file = d.path("file");
    std::fs::write(&file, "keep me").unwrap();
    let (status, _, err) = run(&[
        "-daemon",
        "-listen",
        &unix(&file),
        "-pidfile",
        d.path("dc.pid").to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(one_line(&err).contains(&*file.to_string_lossy()), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert!(!d.path("dc.pid").exists());
}

#[test]
fn sigint_in_the_foreground_stops_cleanly() {
    let d = Dir::new();
    let (sock, pidfile) = (d.path("s.sock"), d.path("dc.pid"));
    let mut t = Tool::spawn(&[
        "-listen",
        &unix(&sock),
        "-pidfile",
        pidfile.to_str().unwrap(),
    ]);
    t.wait_listening();
    assert_eq!(
        i64::from(pid_in_file(&pidfile, Duration::from_secs(10))),
        i64::from(t.pid())
    );
    signal(t.pid(), libc::SIGINT);
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", t.stderr());
    assert!(!sock.exists(), "socket file left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

/// A clean stop logs, last, what the server did: 2 short sessions expired,
/// then 70 long ones into 64 places (the 65th, 67th and 69th ADD each
/// evicted 64/30 = 2), over the probe connection and one client's.
#[test]
fn a_clean_stop_logs_its_counts() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut t = Tool::spawn(&["-listen", &unix(&sock), "-sessions", "64"]);
    t.wait_listening();
    let c = Client::new(&unix(&sock), Flags::PERSISTENT).expect("client");
    c.set_timeout(Duration::from_secs(5));
    c.add(b"short-1", b"expires at once", 1).unwrap();
    c.add(b"short-2", b"expires at once", 1).unwrap();
    thread::sleep(Duration::from_millis(20));
    for i in 0..70 {
        c.add(format!("long-{i}").as_bytes(), b"kept a minute", 60_000)
            .unwrap();
    }
    drop(c);
    signal(t.pid(), libc::SIGTERM);
    assert_eq!(t.wait_exit().code(), Some(0), "{}", t.stderr());
    let err = t.stderr();
    assert_eq!(
        err.lines().last(),
        Some("Info, stopped: operations 72, connections 2, sessions 64, evicted 6, expired 2"),
        "{err}"
    );
}

#[test]
fn sigusr1_stops_only_with_killable() {
    let d = Dir::new();
    let (plain_sock, killable_sock) = (d.path("plain.sock"), d.path("killable.sock"));
    let mut plain = Tool::spawn(&["-listen", &unix(&plain_sock)]);
    let mut killable = Tool::spawn(&["-listen", &unix(&killable_sock), "-killable"]);
    plain.wait_listening();
    killable.wait_listening();

    for sig in [libc::SIGUSR1, libc::SIGUSR2] {
        signal(plain.pid(), sig);
    }
    signal(killable.pid(), libc::SIGUSR1);
    let status = killable.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", killable.stderr());
    assert!(!killable_sock.exists());

    // By now the plain server has had as long to react; it still serves.
    assert!(plain.is_running(), "SIGUSR stopped it");
    assert!(!client(&unix(&plain_sock)).have(b"x").unwrap());
    signal(plain.pid(), libc::SIGTERM);
    assert_eq!(plain.wait_exit().code(), Some(0));
}

#[test]
fn a_regular_file_at_the_path_is_kept_and_refused() {
    let d = Dir::new();
    let file = d.path("precious");
    std::fs::write(&file, "data").unwrap();
    let mut t = Tool::spawn(&["-listen", &unix(&file)]);
    let status = t.wait_exit();
    assert_eq!(status.code(), Some(1));
    let err = t.stderr();
    let line = one_line(&err);
    assert!(line.contains(&*file.to_string_lossy()), "{line}");
    assert!(line.contains("not a socket"), "{line}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn a_live_servers_socket_is_not_taken_over() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut first = Tool::spawn(&["-listen", &unix(&sock)]);
    first.wait_listening();
    client(&unix(&sock))
        .add(b"mine", b"first server's", 60_000)
        .unwrap();

    let mut second = Tool::spawn(&["-listen", &unix(&sock)]);
    assert_eq!(second.wait_exit().code(), Some(1));
    let err = second.stderr();
    assert!(
        one_line(&err).contains(&*sock.to_string_lossy()) && err.contains("running server"),
        "{err}"
    );
    // The second server's failure removed nothing: clients still reach the
    // first one and its sessions.
    assert_eq!(
        client(&unix(&sock)).get(b"mine").unwrap().as_deref(),
        Some(&b"first server's"[..])
    );
    assert!(first.is_running());
}

#[test]
fn sockperms_sets_the_socket_mode() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut t = Tool::spawn(&["-listen", &unix(&sock), "-sockperms", "600"]);
    t.wait_listening();
    // The mode is set after the socket is bound: once it is, the server
    // says it is serving.
    t.wait_stderr("serving on");
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    // -sockgroup by number: the group the file already has is always allowed.
    let sock2 = d.path("g.sock");
    let gid = meta.gid().to_string();
    let mut g = Tool::spawn(&[
        "-listen",
        &unix(&sock2),
        "-sockgroup",
        &gid,
        "-sockperms",
        "0660",
    ]);
    g.wait_listening();
    g.wait_stderr("serving on");
    let meta2 = std::fs::metadata(&sock2).unwrap();
    assert_eq!(meta2.permissions().mode() & 0o7777, 0o660);
    assert_eq!(meta2.gid().to_string(), gid);
}

#[test]
fn min_expiry_keeps_short_sessions() {
    let d = Dir::new();
    let (with, without) = (d.path("with.sock"), d.path("without.sock"));
    let mut a = Tool::spawn(&["-listen", &unix(&with), "-min-expiry", "2000"]);
    let mut b = Tool::spawn(&["-listen", &unix(&without)]);
    a.wait_listening();
    b.wait_listening();
    let (ca, cb) = (client(&unix(&with)), client(&unix(&without)));
    ca.add(b"short", b"session", 300).unwrap();
    cb.add(b"short", b"session", 300).unwrap();
    thread::sleep(Duration::from_secs(1));
    assert!(ca.have(b"short").unwrap(), "gone despite -min-expiry 2000");
    assert!(
        !cb.have(b"short").unwrap(),
        "300 ms session alive after 1 s"
    );
}

#[test]
fn unix_and_tcp_listeners_serve_one_store() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut t = Tool::spawn(&["-listen", &unix(&sock), "-listen", "IP:127.0.0.1:0"]);
    t.wait_listening();
    let err = t.wait_stderr("serving on");
    let tcp = err
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|w| w.starts_with("IP:127.0.0.1:"))
        .unwrap_or_else(|| panic!("no TCP address in {err:?}"))
        .to_string();
    client(&unix(&sock))
        .add(b"both", b"one store", 60_000)
        .unwrap();
    assert_eq!(
        client(&tcp).get(b"both").unwrap().as_deref(),
        Some(&b"one store"[..])
    );
    client(&tcp).add(b"tcp", b"via tcp", 60_000).unwrap();
    assert!(client(&unix(&sock)).have(b"tcp").unwrap());
}

#[test]
fn progress_logs_an_info_line_after_activity() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut t = Tool::spawn(&["-listen", &unix(&sock), "-progress", "1"]);
    t.wait_listening();
    client(&unix(&sock)).add(b"id", b"data", 60_000).unwrap();
    let err = t.wait_stderr("Info, total operations =");
    let line = err
        .lines()
        .find(|l| l.starts_with("Info, total operations ="))
        .unwrap();
    assert!(line.contains("total sessions =     1  (+  1)"), "{line}");
}

#[test]
fn an_unknown_user_is_refused_and_nothing_is_left() {
    let d = Dir::new();
    let (sock, pidfile) = (d.path("s.sock"), d.path("dc.pid"));
    let (status, _, err) = run(&[
        "-listen",
        &unix(&sock),
        "-pidfile",
        pidfile.to_str().unwrap(),
        "-user",
        "nosuchuser",
    ]);
    assert_eq!(status.code(), Some(1));
    let line = one_line(&err);
    assert!(
        line.contains("nosuchuser") && line.contains("no such user"),
        "{line}"
    );
    assert!(!sock.exists() && !pidfile.exists());
}

/// Only root may become another user: an unprivileged server asked to
/// says so and does not start. (Run as root, the server runs as nobody.)
#[test]
fn user_fails_loudly_without_privilege() {
    let d = Dir::new();
    let sock = d.path("s.sock");
    let mut cmd = Command::new(dc_server_bin());
    cmd.args(["-listen", &unix(&sock), "-user", "root"]);
    if require::is_root() {
        let nobody = distcache::internals::daemon::lookup_user("nobody")
            .unwrap_or_else(|e| panic!("this test needs a `nobody` account: {e}"));
        std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        cmd.uid(nobody.uid).gid(nobody.gid);
    }
    let run = run_tool(&mut cmd, LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        one_line(&run.stderr).contains("can't become user 'root'"),
        "{run:?}"
    );
    assert!(!sock.exists(), "the socket was left behind");
}

#[test]
#[ignore = "needs root, to become nobody: make test-root"]
fn root_user_drops_privileges() {
    require::root("dc_server -user nobody");
    let d = Dir::new();
    let sock = d.path("s.sock");
    let nobody = distcache::internals::daemon::lookup_user("nobody").expect("a nobody account");
    let mut t = Tool::spawn(&["-listen", &unix(&sock), "-user", "nobody"]);
    t.wait_listening();
    t.wait_stderr("serving on");
    let status = std::fs::read_to_string(format!("/proc/{}/status", t.pid())).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("Uid:"), [nobody.uid; 4]);
    assert_eq!(ids("Gid:"), [nobody.gid; 4]);
    assert!(!ids("Groups:").contains(&0), "root's groups kept");
    let c = client(&unix(&sock));
    c.add(b"id", b"as nobody", 60_000).unwrap();
    assert!(c.have(b"id").unwrap());
    signal(t.pid(), libc::SIGTERM);
    assert_eq!(t.wait_exit().code(), Some(0), "{}", t.stderr());
}
