//! Transport: address parsing, connected streams with deadlines, and
//! listeners, over TCP (IPv4 and IPv6) and UNIX sockets.

mod address;
mod error;
mod listener;
mod poll;
pub(crate) mod process;
mod stream;
mod sys;

pub use address::Address;
pub use error::NalError;
pub use listener::Listener;
pub use poll::{poll, PollFd};
pub use stream::{Deadline, Stream};
pub use sys::raise_fd_limit;
