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
mod poll;
pub(crate) mod process;
mod stream;
mod sys;

pub use acceptor::{parse_mode, Acceptor};
pub use address::{Address, Resolver};
pub use buffer::{Buffer, MAX_BUFFER_SIZE};
pub use connection::{set_nagle, Connection, Ready};
pub use error::NalError;
pub use listener::Listener;
pub use poll::{poll, poll_fds, PollFd, RawPollFd};
pub use stream::{read_timer_for, Deadline, Stream};
pub use sys::{fd_limit, peer_credentials, raise_fd_limit, PeerCredentials};
pub(crate) use sys::{monotonic_ms, try_lock_exclusive};
