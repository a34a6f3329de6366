use super::{Address, NalError};
use crate::sys::socket::{clear_status_flags, recv_nowait, wait, Ready};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The moment an operation must be over by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// Time left, or `TimedOut` when none is.
    pub fn remaining(&self) -> Result<Duration, NalError> {
        match self.0.checked_duration_since(Instant::now()) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(NalError::TimedOut),
        }
    }
}

/// A connected stream socket.
///
/// [`Stream::read_before`] and [`Stream::write_all_before`] end by a
/// [`Deadline`], exactly: they wait in `poll(2)` for the time left. A read
/// whose deadline leaves room for the receive timer armed with
/// [`Stream::arm_read_timer`] first waits in `recv(2)` itself, bounded by
/// that timer, which saves the `poll(2)` call of the common case (the reply
/// arrives long before the deadline); if the timer fires, the rest of the
/// wait is a `poll(2)` for exactly the time left. An accepted stream is
/// blocking, bounded by the socket timeouts its server sets.
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
    /// The receive timeout (`SO_RCVTIMEO`) armed on the socket, if any.
    read_timer: Option<Duration>,
}

/// The kernel rounds a socket timeout up to its clock tick (at most 10 ms)
/// and may fire a long timer up to an eighth late: a timer of `t` has fired
/// for sure `(t + 10 ms) * 9 / 8` later.
fn read_timer_fired_by(t: Duration) -> Duration {
    (t + Duration::from_millis(10)) * 9 / 8 + Duration::from_millis(1)
}

/// The receive timer worth arming for reads with `timeout` left: it fires
/// well before the deadline. None for timeouts too short to bother.
pub fn read_timer_for(timeout: Duration) -> Option<Duration> {
    let t = (timeout * 4 / 5).checked_sub(Duration::from_millis(20))?;
    (t >= Duration::from_millis(20) && read_timer_fired_by(t) < timeout).then_some(t)
}

impl Stream {
    /// Connects to `addr` before `deadline`. The stream is blocking, with
    /// no receive timer armed. A UNIX server whose backlog is full fails
    /// the connect at once.
    pub fn connect(addr: &Address, deadline: Deadline) -> Result<Stream, NalError> {
        deadline.remaining()?;
        let (stream, mut connected) = Stream::connect_start(addr)?;
        while !connected {
            if !wait(stream.as_fd(), Ready::Write, deadline.remaining()?)? {
                return Err(NalError::TimedOut);
            }
            // A wait cut short by a signal finds the attempt still going on.
            connected = match stream.connect_result() {
                Ok(()) => true,
                Err(NalError::Io(e)) if e.raw_os_error() == Some(libc::ENOTCONN) => false,
                Err(e) => return Err(e),
            };
        }
        clear_status_flags(stream.as_fd())?;
        Ok(stream)
    }

    /// Starts connecting to `addr` without waiting. Returns the stream and
    /// whether it is already connected; if not, wait until it is writable
    /// and ask [`Stream::connect_result`]. The stream is non-blocking.
    pub fn connect_start(addr: &Address) -> Result<(Stream, bool), NalError> {
        let (socket, connected) = start_connect(addr)?;
        if matches!(addr, Address::Tcp { .. }) {
            socket.set_nodelay(true)?;
        }
        Ok((Stream::from_socket(socket), connected))
    }

    /// How a connection started by [`Stream::connect_start`] ended, once
    /// the stream is writable: `Ok` when it is connected.
    pub fn connect_result(&self) -> Result<(), NalError> {
        match self.socket.take_error()? {
            Some(e) => Err(NalError::Io(e)),
            None => {
                // Writable without a pending error means connected, unless
                // the attempt is still going on (a spurious wake-up).
                self.socket.peer_addr()?;
                Ok(())
            }
        }
    }

    /// Switches the socket between blocking and non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.socket.set_nonblocking(nonblocking)
    }

    fn from_socket(socket: Socket) -> Stream {
        Stream {
            socket,
            read_timer: None,
        }
    }

    /// Arms the receive timer (`SO_RCVTIMEO`) of a blocking stream for
    /// [`Stream::read_before`]; see [`read_timer_for`].
    pub fn arm_read_timer(&mut self, timer: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timer)?;
        self.read_timer = timer;
        Ok(())
    }

    /// Wraps an accepted TCP stream.
    pub fn from_tcp(s: TcpStream) -> Stream {
        // Replies are small and latency matters more than packet count.
        let _ = s.set_nodelay(true);
        Stream::from_socket(Socket::from(s))
    }

    /// Wraps an accepted UNIX stream.
    pub fn from_unix(s: UnixStream) -> Stream {
        Stream::from_socket(Socket::from(s))
    }

    /// Sets the socket's receive timeout (None: block without limit).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(t)
    }

    /// Sets the socket's send timeout (None: block without limit).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.socket.set_write_timeout(t)
    }

    /// Reads some bytes into `buf` before `deadline`. Returns at least one
    /// byte, or an error (`Closed` at end of stream).
    pub fn read_before(&self, buf: &mut [u8], deadline: Deadline) -> Result<usize, NalError> {
        loop {
            let left = deadline.remaining()?;
            let blocking = self
                .read_timer
                .is_some_and(|t| read_timer_fired_by(t) <= left);
            let got = if blocking {
                // Bounded by the receive timer, which fires before the
                // deadline; EAGAIN when it did.
                self.recv(buf)
            } else {
                if !wait(self.socket.as_fd(), Ready::Read, left)? {
                    return Err(NalError::TimedOut);
                }
                self.recv_nowait(buf)
            };
            match got {
                Ok(0) => return Err(NalError::Closed),
                Ok(n) => return Ok(n),
                Err(e) if retry_later(&e) => continue,
                Err(e) => return Err(NalError::Io(e)),
            }
        }
    }

    /// Writes all of `buf` before `deadline`.
    pub fn write_all_before(&self, mut buf: &[u8], deadline: Deadline) -> Result<(), NalError> {
        while !buf.is_empty() {
            match self.send_with(buf, libc::MSG_DONTWAIT) {
                Ok(0) => return Err(NalError::Closed),
                Ok(n) => buf = &buf[n..],
                Err(e) if retry_later(&e) => {
                    if !wait(self.socket.as_fd(), Ready::Write, deadline.remaining()?)? {
                        return Err(NalError::TimedOut);
                    }
                }
                Err(e) => return Err(NalError::Io(e)),
            }
        }
        Ok(())
    }

    /// Sends some of `buf`. A peer that has gone away gives `EPIPE`, never
    /// a SIGPIPE that would kill the host process.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_with(buf, 0)
    }

    fn send_with(&self, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
        self.socket.send_with_flags(buf, libc::MSG_NOSIGNAL | flags)
    }

    /// Receives what is there without waiting (`EAGAIN` when nothing is).
    fn recv_nowait(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_nowait(self.socket.as_fd(), buf)
    }

    /// Receives some bytes into `buf` (0 at end of stream).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.socket).read(buf)
    }

    /// Shuts down the sending side: the peer reads the end of the stream
    /// once it has read what was sent.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.socket.shutdown(std::net::Shutdown::Write)
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Whether an error only means "not now" on a non-blocking socket.
fn retry_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The socket domain and address to connect to for `addr`; fails for the
/// host-less TCP forms, which can only be listened on.
fn connect_target(addr: &Address) -> Result<(Domain, SockAddr), NalError> {
    match addr {
        Address::Tcp {
            connectable: false, ..
        } => Err(NalError::NotConnectable(addr.to_string())),
        Address::Tcp { addr, .. } => Ok((Domain::for_address(*addr), SockAddr::from(*addr))),
        Address::Unix(path) => Ok((Domain::UNIX, SockAddr::unix(path)?)),
    }
}

/// A non-blocking socket with a connect to `addr` started, and whether the
/// connect already completed (if not, it ends when the socket is writable;
/// `SO_ERROR` then tells how).
pub(crate) fn start_connect(addr: &Address) -> Result<(Socket, bool), NalError> {
    let (domain, sockaddr) = connect_target(addr)?;
    let socket = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None)?;
    match socket.connect(&sockaddr) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(NalError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_timer_fires_before_the_deadline() {
        for ms in [1, 50, 60, 100, 500, 5_000, 3_600_000] {
            let timeout = Duration::from_millis(ms);
            if let Some(t) = read_timer_for(timeout) {
                assert!(read_timer_fired_by(t) < timeout, "{ms} ms");
                assert!(t >= Duration::from_millis(20), "{ms} ms");
            }
        }
        assert_eq!(read_timer_for(Duration::from_millis(1)), None);
        assert!(read_timer_for(Duration::from_millis(5000)).is_some());
    }
}
