//! Session storage: the [`Store`] trait the server drives,
//! [`MemoryStore`], the in-memory store behind `dc_server`, and
//! [`DurableStore`], which also keeps the sessions on disk (`-store`).
//!
//! Times are milliseconds on the server's own monotonic clock ([`Millis`]);
//! a session added at `now` with `timeout_msecs` expires at
//! `now + timeout_msecs` and is never returned from that moment on.

pub mod durable;
mod memory;

pub use durable::{DurableOptions, DurableStore, SyncMode};
pub use memory::{Change, DropCounts, DropReason, Journal, MemoryStore, MAX_EVICTION_BATCH};

use thiserror::Error;

/// Milliseconds on the server's monotonic clock.
pub type Millis = u64;

/// Why a store refused an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AddError {
    /// A live session with this id is already stored.
    #[error("a session with this id is already stored")]
    Exists,
    /// The store cannot hold this session at all.
    #[error("the store cannot hold this session")]
    Refused,
}

/// A session store, shared by all of a server's connections.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores `data` under `id` until `now + timeout_msecs`.
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError>;
    /// Appends the session stored under `id` to `out`; false when there is none.
    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool;
    /// Deletes the session stored under `id`; false when there was none.
    fn remove(&self, now: Millis, id: &[u8]) -> bool;
    /// Whether a live session is stored under `id`.
    fn have(&self, now: Millis, id: &[u8]) -> bool;
    /// How many live sessions are stored.
    fn len(&self, now: Millis) -> usize;
    /// Whether no live session is stored.
    fn is_empty(&self, now: Millis) -> bool {
        self.len(now) == 0
    }
}
