//! The system calls the standard library and socket2 do not offer.

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

/// Waits until `fd` is ready or `timeout` passes; false on timeout.
///
/// `poll(2)` sleeps on a high-resolution timer, so the wait ends at the
/// timeout to within a millisecond (socket timeouts can fire an eighth late).
pub(crate) fn wait(fd: BorrowedFd<'_>, ready: Ready, timeout: Duration) -> io::Result<bool> {
    let events = match ready {
        Ready::Read => libc::POLLIN,
        Ready::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up so that a wait never ends before the deadline.
    let ms = timeout
        .as_micros()
        .div_ceil(1000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd that lives across the call, and the
    // count passed is 1; the descriptor is borrowed, so it stays open.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    match n {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}
