use super::sys::{wait, Ready};
use super::{Address, NalError};
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
/// A stream made by [`Stream::connect`] is non-blocking: its
/// [`Stream::read_before`] and [`Stream::write_all_before`] wait in `poll(2)`
/// for exactly the time left before a [`Deadline`]. An accepted stream is
/// blocking, bounded by the socket timeouts its server sets.
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
}

impl Stream {
    /// Connects to `addr` before `deadline`.
    pub fn connect(addr: &Address, deadline: Deadline) -> Result<Stream, NalError> {
        let (domain, sockaddr) = connect_target(addr)?;
        let socket = Socket::new(domain, Type::STREAM, None)?;
        socket
            .connect_timeout(&sockaddr, deadline.remaining()?)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut {
                    NalError::TimedOut
                } else {
                    NalError::Io(e)
                }
            })?;
        if matches!(addr, Address::Tcp { .. }) {
            socket.set_nodelay(true)?;
        }
        // Reads and writes wait in poll(2) with the exact time left.
        socket.set_nonblocking(true)?;
        Ok(Stream::from_socket(socket))
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
        Stream { socket }
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
    /// byte, or an error (`Closed` at end of stream). The socket must be
    /// non-blocking (as [`Stream::connect`] makes it).
    pub fn read_before(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, NalError> {
        loop {
            if !wait(self.socket.as_fd(), Ready::Read, deadline.remaining()?)? {
                return Err(NalError::TimedOut);
            }
            match self.recv(buf) {
                Ok(0) => return Err(NalError::Closed),
                Ok(n) => return Ok(n),
                Err(e) if retry_later(&e) => continue,
                Err(e) => return Err(NalError::Io(e)),
            }
        }
    }

    /// Writes all of `buf` before `deadline`. The socket must be
    /// non-blocking (as [`Stream::connect`] makes it).
    pub fn write_all_before(&mut self, mut buf: &[u8], deadline: Deadline) -> Result<(), NalError> {
        while !buf.is_empty() {
            match self.send(buf) {
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
        self.socket.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    /// Receives some bytes into `buf` (0 at end of stream).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.socket).read(buf)
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
    let socket = Socket::new(domain, Type::STREAM.cloexec(), None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&sockaddr) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(NalError::Io(e)),
    }
}
