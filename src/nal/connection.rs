//! A non-blocking connection with a read buffer and a send buffer, driven
//! by readiness that a selector reports (libnal's `NAL_CONNECTION`).
//!
//! The cycle is: the selector asks [`Connection::interest`], waits, hands the
//! result to [`Connection::set_ready`], and the owner calls
//! [`Connection::io`], which moves bytes between the socket and the buffers.

use super::buffer::Buffer;
use super::stream::start_connect;
use super::{Acceptor, Address, NalError};
use crate::sys::poll::RawPollFd;
use socket2::{Domain, Socket, Type};
use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether new TCP connections keep Nagle's algorithm (off by default:
/// requests and replies are small and latency matters).
static USE_NAGLE: AtomicBool = AtomicBool::new(false);

/// Turns Nagle's algorithm on or off for TCP connections made from now on.
pub fn set_nagle(enabled: bool) {
    USE_NAGLE.store(enabled, Ordering::Relaxed);
}

/// Readiness bits as a selector reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Bytes (or end of stream) to read.
    pub read: bool,
    /// Room to send (or a non-blocking connect finished).
    pub send: bool,
    /// An error is pending on the socket.
    pub error: bool,
}

impl Ready {
    /// The readiness in a `poll(2)` result. A hang-up counts as readable, so
    /// that the read that follows sees the end of the stream after any bytes
    /// still queued.
    pub fn from_revents(revents: libc::c_short) -> Ready {
        Ready {
            read: revents & (libc::POLLIN | libc::POLLHUP) != 0,
            send: revents & libc::POLLOUT != 0,
            error: revents & (libc::POLLERR | libc::POLLNVAL) != 0,
        }
    }
}

/// A connection, possibly not (or no longer) set up.
#[derive(Debug, Default)]
pub struct Connection {
    socket: Option<Socket>,
    established: bool,
    ready: Ready,
    read: Buffer,
    send: Buffer,
}

impl Connection {
    /// Whether the connection is set up (created, accepted or paired).
    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Starts a non-blocking connect to `addr`, with both buffers of
    /// `buffer_size` bytes. Fails when the connection is already set up.
    pub fn connect(&mut self, addr: &Address, buffer_size: usize) -> Result<(), NalError> {
        if self.is_active() {
            return Err(in_use());
        }
        let (socket, established) = start_connect(addr)?;
        if matches!(addr, Address::Tcp { .. }) {
            socket.set_nodelay(!USE_NAGLE.load(Ordering::Relaxed))?;
        }
        self.set_up(socket, established, buffer_size)
    }

    /// Accepts the connection that `listener` reported ready, with both
    /// buffers of the listener's default size. Fails when this connection is
    /// already set up or nothing is waiting.
    pub fn accept(&mut self, listener: &mut Acceptor) -> Result<(), NalError> {
        if self.is_active() {
            return Err(in_use());
        }
        let (socket, tcp) = listener.accept_ready()?;
        socket.set_nonblocking(true)?;
        if tcp {
            socket.set_nodelay(!USE_NAGLE.load(Ordering::Relaxed))?;
        }
        self.set_up(socket, true, listener.buffer_size())
    }

    /// Connects `a` and `b` to each other through a UNIX socket pair, both
    /// with buffers of `buffer_size` bytes.
    pub fn pair(
        a: &mut Connection,
        b: &mut Connection,
        buffer_size: usize,
    ) -> Result<(), NalError> {
        if a.is_active() || b.is_active() {
            return Err(in_use());
        }
        let (x, y) = Socket::pair(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        x.set_nonblocking(true)?;
        y.set_nonblocking(true)?;
        a.set_up(x, true, buffer_size)?;
        b.set_up(y, true, buffer_size)
    }

    fn set_up(&mut self, socket: Socket, established: bool, size: usize) -> Result<(), NalError> {
        if !self.set_size(size) {
            return Err(NalError::Io(io::Error::new(
                ErrorKind::InvalidInput,
                "buffer size over 32768",
            )));
        }
        self.read.reset();
        self.send.reset();
        self.socket = Some(socket);
        self.established = established;
        self.ready = Ready::default();
        Ok(())
    }

    /// Closes the socket and empties the buffers (keeping their size), so
    /// that the connection can be set up again.
    pub fn reset(&mut self) {
        self.socket = None;
        self.established = false;
        self.ready = Ready::default();
        self.read.reset();
        self.send.reset();
    }

    /// Resizes both buffers (emptying them when the size changes). False
    /// when `size` exceeds 32768.
    pub fn set_size(&mut self, size: usize) -> bool {
        if size > super::buffer::MAX_BUFFER_SIZE {
            return false;
        }
        self.read.set_size(size) && self.send.set_size(size)
    }

    /// Bytes received and not yet taken.
    pub fn read_buffer(&mut self) -> &mut Buffer {
        &mut self.read
    }

    /// Bytes waiting to be sent.
    pub fn send_buffer(&mut self) -> &mut Buffer {
        &mut self.send
    }

    /// Both buffers at once (read, send).
    pub fn buffers(&mut self) -> (&mut Buffer, &mut Buffer) {
        (&mut self.read, &mut self.send)
    }

    /// Whether the connect has completed.
    pub fn is_established(&self) -> bool {
        self.socket.is_some() && self.established
    }

    /// The `poll(2)` entry for the next wait: readable when established with
    /// room to read into, writable while connecting or with bytes to send.
    /// `None` when the connection is not set up.
    pub fn poll_entry(&self) -> Option<RawPollFd> {
        let socket = self.socket.as_ref()?;
        let mut events = 0;
        if self.established && !self.read.is_full() {
            events |= libc::POLLIN;
        }
        if !self.established || !self.send.is_empty() {
            events |= libc::POLLOUT;
        }
        Some(RawPollFd {
            fd: socket.as_raw_fd(),
            events,
            revents: 0,
        })
    }

    /// Records what the last wait reported for this connection.
    pub fn set_ready(&mut self, ready: Ready) {
        self.ready = ready;
    }

    /// Forgets any reported readiness (the connection left its selector).
    pub fn clear_ready(&mut self) {
        self.ready = Ready::default();
    }

    /// Moves bytes as the last wait allows: finishes a pending connect,
    /// reads into the read buffer, sends from the send buffer. False when
    /// the connection failed or the peer closed it; the caller then drops
    /// it.
    pub fn io(&mut self) -> bool {
        let ready = std::mem::take(&mut self.ready);
        let Some(socket) = self.socket.as_ref() else {
            return false;
        };
        if ready.error && self.established {
            return false;
        }
        if !self.established {
            if !ready.send && !ready.error {
                return true;
            }
            match socket.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return false,
            }
            // A refused connect can also show up as a socket that is not
            // connected after all.
            if socket.peer_addr().is_err() {
                return false;
            }
            self.established = true;
        }
        if ready.read && !self.read.is_full() {
            match recv_into(socket, self.read.space_mut()) {
                Ok(0) => return false,
                Ok(n) => {
                    self.read.wrote(n);
                }
                Err(e) if soft(&e) => {}
                Err(_) => return false,
            }
        }
        if ready.send && !self.send.is_empty() {
            match send_from(socket, self.send.data()) {
                Ok(n) => {
                    self.send.read(None, n);
                }
                Err(e) if soft(&e) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// The socket's descriptor, when set up.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.socket.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// The error for setting up a connection object that is already set up.
fn in_use() -> NalError {
    NalError::Io(io::Error::new(
        ErrorKind::AlreadyExists,
        "connection already in use",
    ))
}

/// Errors that only mean "not now".
fn soft(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

fn recv_into(mut socket: &Socket, space: &mut [u8]) -> io::Result<usize> {
    socket.read(space)
}

fn send_from(socket: &Socket, data: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(data, libc::MSG_NOSIGNAL)
}
