//! Waiting on many sockets at once with `poll(2)`, for event loops.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Conditions that mean the peer is gone or the socket failed. Always
/// reported, whatever was asked for; `POLLRDHUP` also catches a TCP peer
/// that closed while nothing is being read from it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const GONE: libc::c_short = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL | libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const GONE: libc::c_short = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

/// One descriptor to watch, and after [`poll`], what it is ready for.
///
/// It holds a raw descriptor number: a number that is not (or no longer) an
/// open descriptor is reported as gone, never anything worse.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl std::fmt::Debug for PollFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollFd")
            .field("fd", &self.0.fd)
            .field("events", &self.0.events)
            .field("revents", &self.0.revents)
            .finish()
    }
}

impl PollFd {
    /// Watches `fd` for bytes to read (`read`), room to write (`write`),
    /// and, always, for the peer going away.
    pub fn new(fd: RawFd, read: bool, write: bool) -> PollFd {
        let mut events = GONE;
        if read {
            events |= libc::POLLIN;
        }
        if write {
            events |= libc::POLLOUT;
        }
        PollFd(libc::pollfd {
            fd,
            events,
            revents: 0,
        })
    }

    /// Bytes (or the end of the stream, or an error) wait to be read.
    pub fn readable(&self) -> bool {
        self.0.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// A write would make progress (or fail at once).
    pub fn writable(&self) -> bool {
        self.0.revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// The peer closed its side, or the socket failed.
    pub fn gone(&self) -> bool {
        self.0.revents & GONE != 0
    }

    /// Whether anything at all was reported.
    pub fn any(&self) -> bool {
        self.0.revents != 0
    }
}

/// One descriptor's entry as `poll(2)` takes it, for callers that set the
/// events themselves (libnal's selectors).
pub type RawPollFd = libc::pollfd;

/// Waits with `poll(2)` for any of `fds`, or until `timeout` passes (`None`:
/// no bound), and returns how many entries have events. The one place this
/// crate calls `poll(2)`. A signal ends the wait with an `Interrupted`
/// error, so that a caller's loop can look at what the signal changed.
pub fn poll_fds(fds: &mut [RawPollFd], timeout: Option<Duration>) -> io::Result<usize> {
    // Round up so that a wait never ends before the deadline.
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int,
    };
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: `fds` is a valid, writable array of `count` pollfd entries for
    // the call's duration. poll(2) only reads the descriptor numbers; any
    // number is acceptable.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), count, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // n is non-negative here.
    Ok(n as usize)
}

/// Waits until one of `fds` is ready or `timeout` passes, and returns how
/// many are ready (0 on timeout, or when a signal cut the wait short).
pub fn poll(fds: &mut [PollFd], timeout: Duration) -> io::Result<usize> {
    // SAFETY: PollFd is a transparent wrapper of libc::pollfd, so the same
    // memory is a valid, writable slice of as many pollfd structures, used
    // only while `fds` is borrowed here.
    let raw =
        unsafe { std::slice::from_raw_parts_mut(fds.as_mut_ptr().cast::<RawPollFd>(), fds.len()) };
    match poll_fds(raw, Some(timeout)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            for fd in fds.iter_mut() {
                fd.0.revents = 0;
            }
            Ok(0)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_readable_writable_and_gone() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut fds = [PollFd::new(b.as_raw_fd(), true, false)];
        assert_eq!(poll(&mut fds, Duration::from_millis(10)).unwrap(), 0);
        assert!(!fds[0].any());
        a.write_all(b"x").unwrap();
        let mut fds = [PollFd::new(b.as_raw_fd(), true, true)];
        assert_eq!(poll(&mut fds, Duration::from_millis(1000)).unwrap(), 1);
        assert!(fds[0].readable() && fds[0].writable() && !fds[0].gone());
        drop(a);
        let mut fds = [PollFd::new(b.as_raw_fd(), false, false)];
        assert_eq!(poll(&mut fds, Duration::from_millis(1000)).unwrap(), 1);
        assert!(fds[0].gone());
    }

    #[test]
    fn closed_descriptor_is_gone() {
        let fd = {
            let (a, _b) = UnixStream::pair().unwrap();
            a.as_raw_fd()
        };
        // Nothing else in this test opens descriptors in between, but
        // another test thread may; either way poll must not fail.
        let mut fds = [PollFd::new(fd, true, false)];
        assert!(poll(&mut fds, Duration::from_millis(10)).is_ok());
    }
}
