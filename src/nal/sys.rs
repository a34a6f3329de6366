//! The system calls the standard library and socket2 do not offer.

use super::poll::poll_fds;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Which readiness to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Bytes to read, or end of stream, or an error.
    Read,
    /// Room to write, or an error.
    Write,
}

/// Waits until `fd` is ready or `timeout` passes; false on timeout. A wait
/// cut short by a signal also returns true: the caller's next attempt finds
/// nothing to do and waits again for the time left.
///
/// `poll(2)` sleeps on a high-resolution timer, so the wait ends at the
/// timeout to within a millisecond (socket timeouts can fire an eighth late).
pub(crate) fn wait(fd: BorrowedFd<'_>, ready: Ready, timeout: Duration) -> io::Result<bool> {
    let events = match ready {
        Ready::Read => libc::POLLIN,
        Ready::Write => libc::POLLOUT,
    };
    let mut pfd = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }];
    // The descriptor is borrowed, so it stays open across the wait.
    match poll_fds(&mut pfd, Some(timeout)) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

/// Receives into `buf` what is queued on the socket `fd`, without waiting
/// even if the socket is blocking (`WouldBlock` when nothing is queued; 0 at
/// end of stream).
pub(crate) fn recv_nowait(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid, writable region of buf.len() bytes for the
    // whole call, and the descriptor is borrowed, so it stays open.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Clears the file status flags of `fd` (`O_NONBLOCK` above all) in one
/// system call: for a socket this process just made, whose only such flag
/// is `O_NONBLOCK`, it makes the socket blocking.
pub(crate) fn clear_status_flags(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_SETFL takes an int and touches no memory of ours; the
    // descriptor is borrowed, so it stays open.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// This process's soft limit on open files.
pub fn fd_limit() -> u64 {
    get_fd_limit().map_or(1024, |l| l.rlim_cur)
}

fn get_fd_limit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn set_fd_limit(cur: u64, max: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

/// Raises this process's soft limit on open files to its hard limit, so that
/// a server can hold as many connections as the system allows it. The hard
/// limit is the operator's (systemd's `LimitNOFILE=`, say) and is kept.
/// Returns the limit in force afterwards.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = get_fd_limit()?;
    if lim.rlim_cur < lim.rlim_max && set_fd_limit(lim.rlim_max, lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// Takes an exclusive `flock(2)` lock on `file` without waiting. `Ok(false)`
/// when another open file description holds a lock on it. The lock lasts
/// until every descriptor of this open file description is closed.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: the descriptor belongs to `file`, which is open for the
    // whole call; flock takes no pointers.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Milliseconds on the system's monotonic clock (`CLOCK_MONOTONIC`). Unlike
/// an `Instant`, the value is a plain number that can live in an atomic, and
/// a forked child reads the same clock as its parent.
pub(crate) fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the whole call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        // CLOCK_MONOTONIC exists on every Linux; a failure leaves `ts` zero.
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let millis = u64::try_from(ts.tv_nsec / 1_000_000).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(millis)
}

/// Who is at the other end of a UNIX socket, as the kernel recorded it when
/// the connection was made (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// The credentials of the peer of the connected UNIX socket `fd`.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` holds its size,
    // both for the call's duration; the descriptor is borrowed, so it
    // stays open.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the socket reports no peer credentials",
        ));
    }
    Ok(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_socket_pair_reports_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let cred = peer_credentials(a.as_fd()).unwrap();
        let (_, euid, egid) = crate::nal::process::current_ids();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!((cred.uid, cred.gid), (euid, egid));
    }
}
