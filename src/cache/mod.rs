//! Session storage: the [`Store`] trait the server drives,
//! [`MemoryStore`], the in-memory store behind `dc_server`, and
//! [`DurableStore`], which also keeps the sessions on disk (`-store`).
//!
//! Times are milliseconds on the server's own monotonic clock ([`Millis`]);
//! a session added at `now` with `timeout_msecs` expires at
//! `now + timeout_msecs` and is never returned from that moment on.
//!
//! Besides the protocol's operations a store may report what it holds, for
//! the administration tools: the bytes of session data, what it dropped on
//! its own ([`DropCounts`]), and a listing of its sessions
//! ([`Store::list`]), page by page.

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

/// What a listing says about one stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub id: Vec<u8>,
    /// Bytes of session data.
    pub size: usize,
    /// When it expires.
    pub expiry: Millis,
    /// When it was stored.
    pub added: Millis,
}

/// Where a listing goes on: returned by [`Store::list`] and handed back to
/// it. The two numbers mean what the store that returned them says
/// ([`MemoryStore`]: the expiry and insertion number of the last session
/// listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor(pub u64, pub u64);

/// Why a store could not list its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ListError {
    /// This kind of store does not list its sessions.
    #[error("this store cannot list its sessions")]
    Unsupported,
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
    /// Bytes of session data the live sessions hold (ids not counted);
    /// `None` when the store cannot tell.
    fn data_bytes(&self, _now: Millis) -> Option<u64> {
        None
    }
    /// How many sessions the store has dropped on its own so far (evicted
    /// for capacity, expired); zeros for a store that does not count them.
    fn drop_counts(&self) -> DropCounts {
        DropCounts::default()
    }
    /// Appends to `out` at most `max` (at least 1) live sessions that come
    /// after `from` in the store's listing order (from the first when
    /// `None`), and returns where to go on, or `None` once the listing is
    /// complete.
    ///
    /// Each call is one short operation on the store, so that a listing of
    /// many sessions, page by page, does not hold up the requests served
    /// meanwhile. A listing is thus not a snapshot: sessions added or
    /// removed while it goes on may or may not appear, but no stored
    /// session appears twice.
    fn list(
        &self,
        _now: Millis,
        _from: Option<ListCursor>,
        _max: usize,
        _out: &mut Vec<SessionInfo>,
    ) -> Result<Option<ListCursor>, ListError> {
        Err(ListError::Unsupported)
    }
}
