//! Socket calls the standard library and socket2 do not offer.

use super::poll::poll_fds;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{getsockopt, recv, sockopt, MsgFlags};
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
    // The descriptor is borrowed, so it stays open across the call.
    Ok(recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT)?)
}

/// Clears the file status flags of `fd` (`O_NONBLOCK` above all) in one
/// system call: for a socket this process just made, whose only such flag
/// is `O_NONBLOCK`, it makes the socket blocking.
pub(crate) fn clear_status_flags(fd: BorrowedFd<'_>) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(())
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
    let cred = getsockopt(&fd, sockopt::PeerCredentials)?;
    Ok(PeerCredentials {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
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
        let (_, euid, egid) = crate::sys::process::current_ids();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!((cred.uid, cred.gid), (euid, egid));
    }
}
