//! Transport: address parsing, connected streams with deadlines, and
//! listeners, over TCP (IPv4 and IPv6) and UNIX sockets; and libnal's
//! selector-driven objects: FIFO buffers, non-blocking connections and
//! listeners, and the byte codecs.

mod acceptor;
mod address;
pub mod buffer;
pub mod codec;
mod connection;
mod error;
mod listener;
pub mod owner;
mod stream;

pub use acceptor::{parse_mode, Acceptor};
pub use address::Address;
pub use buffer::{Buffer, MAX_BUFFER_SIZE};
pub use connection::{set_nagle, Connection, Ready};
pub use error::NalError;
pub use listener::{AcceptFailure, Listener, ACCEPT_BACKOFF};
pub use stream::{read_timer_for, Deadline, Stream};
// The system calls live in `crate::sys`; these are part of nal's API.
pub use crate::sys::poll::{poll, poll_fds, PollFd, RawPollFd};
pub use crate::sys::process::{fd_limit, raise_fd_limit};
pub use crate::sys::socket::peer_credentials;
