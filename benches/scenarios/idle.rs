//! What idle connections cost a server: the bench opens them and holds
//! them, sending nothing, and reads the server's resident memory (VmRSS),
//! threads and descriptors from /proc before and while it holds them.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bound on opening the idle connections and on the server taking them.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// Bound on waiting for a server's resident memory to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// What idle connections cost a server.
pub struct Idle {
    pub bytes_per_conn: f64,
    pub threads_before: u64,
    pub threads: u64,
}

/// A number field (`VmRSS:`, `Threads:`) of /proc/PID/status.
fn status_field(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no {field}"))
}

fn rss_bytes(pid: u32) -> Result<u64, String> {
    Ok(status_field(pid, "VmRSS:")? * 1024)
}

/// The descriptors process `pid` holds open.
fn fd_count(pid: u32) -> Result<usize, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))
}

/// The resident memory once it stops moving (two readings 250 ms apart
/// within 64 KiB), or the last reading after [`SETTLE_LIMIT`].
fn settled_rss(pid: u32) -> Result<u64, String> {
    let end = Instant::now() + SETTLE_LIMIT;
    let mut last = rss_bytes(pid)?;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_bytes(pid)?;
        if now.abs_diff(last) <= 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Waits (bounded) until process `pid` holds `want` descriptors or more
/// (`more`), or at most `want`.
fn wait_fds(name: &str, pid: u32, want: usize, more: bool) -> Result<(), String> {
    let end = Instant::now() + IDLE_LIMIT;
    loop {
        let fds = fd_count(pid)?;
        if (more && fds >= want) || (!more && fds <= want) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!(
                "{name} held {fds} descriptors after {IDLE_LIMIT:?}, expected {} {want}",
                if more { "at least" } else { "at most" }
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens `count` connections to the server `name` (process `pid`)
/// listening at `sock`, and holds them, sending nothing; the growth of its
/// resident memory per connection and its threads once it holds them.
pub fn cost(name: &str, pid: u32, sock: &Path, count: usize) -> Result<Idle, String> {
    let fds_before = fd_count(pid)?;
    let rss_before = settled_rss(pid)?;
    let threads_before = status_field(pid, "Threads:")?;
    let end = Instant::now() + IDLE_LIMIT;
    let mut conns = Vec::with_capacity(count);
    while conns.len() < count {
        // Non-blocking: a full backlog is EAGAIN, retried until the bound.
        match mio::net::UnixStream::connect(sock) {
            Ok(c) => conns.push(c),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                let n = conns.len() + 1;
                return Err(format!("{name}: idle connection {n} of {count}: {e}"));
            }
        }
    }
    // A connection is queued once connect() returns; the server holds it
    // once it has accepted it, as a descriptor of its own.
    wait_fds(name, pid, fds_before + count, true)?;
    let rss_after = settled_rss(pid)?;
    let threads = status_field(pid, "Threads:")?;
    drop(conns);
    wait_fds(name, pid, fds_before, false)?;
    let grown = rss_after.saturating_sub(rss_before);
    eprintln!(
        "scenario 8: {name}: resident {:.1} MiB before, {:.1} MiB with {count} idle \
         connections; {threads} threads",
        rss_before as f64 / MIB,
        rss_after as f64 / MIB
    );
    Ok(Idle {
        bytes_per_conn: grown as f64 / count as f64,
        threads_before,
        threads,
    })
}

const MIB: f64 = 1024.0 * 1024.0;
