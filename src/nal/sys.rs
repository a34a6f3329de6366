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

/// Raises this process's soft limit on open files to its hard limit, so that
/// a server can hold as many connections as the system allows it. Returns
/// the limit in force afterwards.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
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
