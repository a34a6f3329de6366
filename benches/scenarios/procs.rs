//! Processes of a scenario: servers and clients started pinned with
//! `taskset`, stopped by PID, and the `key=value` lines they report.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `key=value` arguments, or the `key=value` line a process printed.
#[derive(Debug, Default, Clone)]
pub struct KeyValues(BTreeMap<String, String>);

impl KeyValues {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<KeyValues, String> {
        let mut map = BTreeMap::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got '{item}'"))?;
            map.insert(k.to_string(), v.to_string());
        }
        Ok(KeyValues(map))
    }

    pub fn parse_line(line: &str) -> Result<KeyValues, String> {
        let items: Vec<&str> = line.split_whitespace().collect();
        KeyValues::parse(&items)
    }

    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("missing '{key}='"))
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let v = self.str(key)?;
        v.parse()
            .map_err(|_| format!("'{key}={v}' is not a number of the right kind"))
    }

    pub fn num_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        if self.0.contains_key(key) {
            self.num(key)
        } else {
            Ok(default)
        }
    }
}

/// Where a process runs: one CPU, or wherever the scheduler likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    Pinned(usize),
    Any,
}

fn command(cpu: Cpu, program: &Path, args: &[String]) -> Command {
    match cpu {
        Cpu::Pinned(n) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(n.to_string()).arg(program).args(args);
            c
        }
        Cpu::Any => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

/// This benchmark's own executable, started for the client side and for
/// the floor servers.
pub fn me() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("scenarios"))
}

/// A background process, killed (by PID) and reaped when dropped.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Starts `program` pinned as asked, with its stdout piped.
    pub fn spawn(name: &str, cpu: Cpu, program: &Path, args: &[String]) -> Result<Proc, String> {
        let child = command(cpu, program, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("can't start {name} ({}): {e}", program.display()))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    /// Starts `program` pinned as asked, its stdout and stderr going to
    /// the file `log` (a server whose messages the scenario may show).
    pub fn spawn_logged(
        name: &str,
        cpu: Cpu,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Proc, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = command(cpu, program, args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("can't start {name} ({}): {e}", program.display()))?;
        Ok(Proc {
            child,
            name: name.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line the process prints (a floor server prints its port).
    pub fn first_line(&mut self) -> Result<String, String> {
        let out = self
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{}: no stdout", self.name))?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", self.name))?;
        Ok(line.trim().to_string())
    }

    /// Waits until a UNIX socket at `path` accepts connections.
    pub fn wait_unix(&mut self, path: &Path) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited early: {status}", self.name));
            }
            if UnixStream::connect(path).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "{} did not listen on {}",
            self.name,
            path.display()
        ))
    }

    /// Waits until a TCP port on 127.0.0.1 accepts connections.
    pub fn wait_tcp(&mut self, port: u16) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited early: {status}", self.name));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("{} did not listen on port {port}", self.name))
    }

    /// Resident memory of the process, from /proc (bytes).
    pub fn rss_bytes(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("{}: {e}", self.name))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("{}: no VmRSS", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client process to its end (bounded) and returns its report line.
pub fn run(
    cpu: Cpu,
    program: &Path,
    args: &[String],
    limit: Duration,
) -> Result<KeyValues, String> {
    let mut child = command(cpu, program, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("can't start {}: {e}", program.display()))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{args:?} ran over {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let line = stdout.lines().last().unwrap_or("");
    KeyValues::parse_line(line)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
