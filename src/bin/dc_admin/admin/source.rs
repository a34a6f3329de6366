use super::protocol::SessionEntry;
use super::AdminError;
use std::io;

/// Where the admin commands read sessions and counters from: a running
/// server's admin socket ([`SocketSource`](super::SocketSource)), or, in a
/// build that has one, a stopped server's store directory.
pub trait AdminSource {
    /// Passes every stored session to `each`, in the source's order, until
    /// `each` fails (its error is returned as [`AdminError::Output`]).
    fn list(
        &mut self,
        each: &mut dyn FnMut(SessionEntry) -> io::Result<()>,
    ) -> Result<(), AdminError>;
    /// The data of the session stored under `id`, if any.
    fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, AdminError>;
    /// Deletes the session stored under `id`; false if there was none.
    fn remove(&mut self, id: &[u8]) -> Result<bool, AdminError>;
    /// The counters, as `name value` pairs in the source's order.
    fn stats(&mut self) -> Result<Vec<(String, u64)>, AdminError>;
}
