use super::{Address, NalError};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
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

/// A connected, blocking stream socket whose reads and writes are bounded
/// by a [`Deadline`].
#[derive(Debug)]
pub struct Stream {
    socket: Socket,
    /// The receive and send timeouts last set on the socket.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// How far a socket timeout may exceed the time really left before it is
/// set again: setting it costs a system call on every read and write, and a
/// few milliseconds past a deadline of seconds do not matter.
fn timeout_slack(remaining: Duration) -> Duration {
    (remaining / 32).max(Duration::from_millis(1))
}

impl Stream {
    /// Connects to `addr` before `deadline`.
    pub fn connect(addr: &Address, deadline: Deadline) -> Result<Stream, NalError> {
        let (domain, sockaddr) = match addr {
            Address::Tcp {
                connectable: false, ..
            } => return Err(NalError::NotConnectable(addr.to_string())),
            Address::Tcp { addr, .. } => (Domain::for_address(*addr), SockAddr::from(*addr)),
            Address::Unix(path) => (Domain::UNIX, SockAddr::unix(path)?),
        };
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
        Ok(Stream::from_socket(socket))
    }

    fn from_socket(socket: Socket) -> Stream {
        Stream {
            socket,
            read_timeout: None,
            write_timeout: None,
        }
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
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != t {
            self.socket.set_read_timeout(t)?;
            self.read_timeout = t;
        }
        Ok(())
    }

    /// Sets the socket's send timeout (None: block without limit).
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != t {
            self.socket.set_write_timeout(t)?;
            self.write_timeout = t;
        }
        Ok(())
    }

    /// Reads some bytes into `buf` before `deadline`. Returns at least one
    /// byte, or an error (`Closed` at end of stream).
    pub fn read_before(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, NalError> {
        loop {
            let left = deadline.remaining()?;
            if self
                .read_timeout
                .is_none_or(|t| t > left + timeout_slack(left))
            {
                self.set_read_timeout(Some(left))?;
            }
            match (&self.socket).read(buf) {
                Ok(0) => return Err(NalError::Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(NalError::TimedOut),
                Err(e) => return Err(NalError::Io(e)),
            }
        }
    }

    /// Writes all of `buf` before `deadline`.
    pub fn write_all_before(&mut self, mut buf: &[u8], deadline: Deadline) -> Result<(), NalError> {
        while !buf.is_empty() {
            let left = deadline.remaining()?;
            if self
                .write_timeout
                .is_none_or(|t| t > left + timeout_slack(left))
            {
                self.set_write_timeout(Some(left))?;
            }
            match self.send(buf) {
                Ok(0) => return Err(NalError::Closed),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Err(NalError::TimedOut),
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

    /// Shuts down both directions (wakes a thread blocked on this socket).
    pub fn shutdown(&self) -> io::Result<()> {
        self.socket.shutdown(Shutdown::Both)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
