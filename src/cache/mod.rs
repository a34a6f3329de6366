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
pub(crate) mod redis;

pub use durable::{DurableOptions, DurableStore, SyncMode};
pub use memory::{Change, DropCounts, DropReason, Journal, MemoryStore, MAX_EVICTION_BATCH};

use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// Milliseconds on the server's monotonic clock.
pub type Millis = u64;

/// Why a store refused an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum ListError {
    /// This kind of store does not list its sessions.
    #[error("this store cannot list its sessions")]
    Unsupported,
    /// The store's backend did not answer in time.
    #[error("the store's backend did not answer")]
    Unavailable,
}

/// A change (an ADD, or a REMOVE or TAKE that found its session) the store has
/// carried out in memory but answers only once it is on disk (a durable
/// store under `-sync always`): ask [`Store::synced`] after a call of the
/// store's progress callback ([`Store::on_progress`]), or once `deadline`
/// passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The store's own number for the change.
    pub seq: u64,
    /// When the ADD is answered as failed if it is not on disk yet.
    pub deadline: Instant,
}

/// How [`Store::add_begin`] went: answered at once, or waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddBegun {
    /// The answer.
    Done(Result<(), AddError>),
    /// Stored in memory; the answer waits for the disk.
    Waiting(Receipt),
}

/// One operation of the protocol, as [`Store::begin`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Store `data` under `id` for `timeout_msecs` (the protocol's limits
    /// already checked).
    Add {
        /// The session's lifetime.
        timeout_msecs: u32,
        /// The session id.
        id: &'a [u8],
        /// The session data.
        data: &'a [u8],
    },
    /// Fetch the session stored under the id.
    Get(&'a [u8]),
    /// Whether a session is stored under the id.
    Have(&'a [u8]),
    /// Delete the session stored under the id.
    Remove(&'a [u8]),
    /// Fetch and delete the session stored under the id, at once.
    Take(&'a [u8]),
}

/// A store's answer to an [`Op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Stored (ADD); found (HAVE); found and deleted (REMOVE).
    Ok,
    /// Found (GET, TAKE): the session's data was appended to the caller's
    /// buffer.
    Hit,
    /// No session under the id.
    Miss,
    /// ADD: a live session with this id is already stored.
    Exists,
    /// ADD: the store cannot hold this session.
    Refused,
    /// A change carried out in memory that did not reach the disk in time
    /// (answered as the durable store always has: an ADD refused, a
    /// REMOVE as finding nothing).
    NotKept,
    /// The store could not carry the operation out, or does not know
    /// whether it did: its backend failed or did not answer in time. Never
    /// a hit, never "stored".
    Failed,
}

/// How [`Store::begin`] went: answered at once, or waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The answer.
    Done(Answer),
    /// Begun; [`Store::finish`] gives the answer once the store's progress
    /// callback was called, or once the receipt's deadline passed.
    Waiting(Receipt),
}

/// What a store that relays requests to a remote backend (Redis) counts of
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounts {
    /// Requests sent to the backend.
    pub requests: u64,
    /// Requests the backend answered with an error, or could not be sent.
    pub errors: u64,
    /// Requests the backend did not answer in time.
    pub timeouts: u64,
    /// Requests the backend sent elsewhere (a Redis Cluster's `MOVED` and
    /// `ASK`), as far as the store sees them: the Redis store counts those
    /// its workers' own links meet, not those its cluster client follows
    /// on its own.
    pub redirects: u64,
    /// Nanoseconds the answered requests took, summed.
    pub latency_sum_ns: u64,
}

/// Called by a store (from any thread) when answers to waiting operations
/// may have become known.
pub type ProgressFn = Arc<dyn Fn() + Send + Sync>;

/// The part of a store that one worker of a server drives in its own
/// event loop: connections of its own to the store's backend, so that a
/// request and its answer need no other thread (see the Redis store).
///
/// The worker watches [`Lane::raw_fd`] for readability and then calls
/// [`Lane::on_ready`]; it begins its requests through [`Lane::store`],
/// and calls [`Lane::flush`] once it has begun those of a wake-up. Answers
/// the lane takes in are collected with [`Store::finish`] as any others.
pub trait Lane: Send {
    /// The store as this worker uses it.
    fn store(&self) -> &dyn Store;
    /// A descriptor that becomes readable when the lane has work.
    fn raw_fd(&self) -> std::os::fd::RawFd;
    /// Takes in what the backend sent and writes what it can; the answers
    /// taken are then ready for [`Store::finish`].
    fn on_ready(&self);
    /// Writes the requests begun since the last call.
    fn flush(&self);
}

/// A session store, shared by all of a server's connections.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores `data` under `id` until `now + timeout_msecs`.
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError>;
    /// [`Store::add`] for a caller that must not wait: a store whose ADD
    /// waits for its disk returns [`AddBegun::Waiting`] instead of waiting.
    fn add_begin(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> AddBegun {
        AddBegun::Done(self.add(now, timeout_msecs, id, data))
    }
    /// [`Store::remove`] for a caller that must not wait: whether a
    /// session was removed, and the receipt to wait for before saying so
    /// when the store answers only once the removal is on disk.
    fn remove_begin(&self, now: Millis, id: &[u8]) -> (bool, Option<Receipt>) {
        (self.remove(now, id), None)
    }
    /// Whether a waiting change is on disk (`Some(true)`), will not be
    /// (`Some(false)`: it failed, or the receipt's deadline passed), or is
    /// not known yet (`None`).
    fn synced(&self, _receipt: &Receipt) -> Option<bool> {
        Some(false)
    }
    /// Whether a caller may begin an operation while others it began are
    /// not answered yet, as long as none of those is for the same id: the
    /// store carries out operations on different ids independently. A
    /// store that says no (the default) sees a connection's operations one
    /// at a time.
    fn overlaps(&self) -> bool {
        false
    }
    /// Registers `f`, called whenever answers to waiting operations may
    /// have become known. A store that never makes one wait ignores it.
    fn on_progress(&self, _f: ProgressFn) {}
    /// A [`Lane`] for one worker of the server, for a store that has them.
    fn lane(self: Arc<Self>) -> Option<Box<dyn Lane>> {
        None
    }
    /// Begins `op` for a caller that must not wait: answers at once, or
    /// gives a receipt for [`Store::finish`]. A GET or TAKE answered at
    /// once appends the session's data to `data`.
    ///
    /// The default carries the operation out with the calls above: only an
    /// ADD, a REMOVE or a TAKE can wait (for the disk). A TAKE that waits
    /// has appended the session's data to `data` already; the caller keeps
    /// it until [`Store::finish`] says the removal is on disk.
    fn begin(&self, now: Millis, op: Op<'_>, data: &mut Vec<u8>) -> Started {
        let found = |yes| if yes { Answer::Ok } else { Answer::Miss };
        Started::Done(match op {
            Op::Add {
                timeout_msecs,
                id,
                data,
            } => match self.add_begin(now, timeout_msecs, id, data) {
                AddBegun::Done(Ok(())) => Answer::Ok,
                AddBegun::Done(Err(AddError::Exists)) => Answer::Exists,
                AddBegun::Done(Err(AddError::Refused)) => Answer::Refused,
                AddBegun::Waiting(receipt) => return Started::Waiting(receipt),
            },
            Op::Get(id) => {
                if self.get_into(now, id, data) {
                    Answer::Hit
                } else {
                    Answer::Miss
                }
            }
            Op::Have(id) => found(self.have(now, id)),
            Op::Remove(id) => match self.remove_begin(now, id) {
                (true, Some(receipt)) => return Started::Waiting(receipt),
                (removed, _) => found(removed),
            },
            Op::Take(id) => match self.take_begin(now, id, data) {
                // The session's data is in `data`; the caller keeps it
                // until the removal is on disk.
                (true, Some(receipt)) => return Started::Waiting(receipt),
                (true, None) => Answer::Hit,
                (false, _) => Answer::Miss,
            },
        })
    }
    /// The answer to an operation [`Store::begin`] left waiting on
    /// `receipt`, once known (a GET's or TAKE's data appended to `data`);
    /// `None` while it is not. A store answers every receipt by its
    /// deadline.
    ///
    /// The default asks [`Store::synced`]: [`Answer::Ok`] once the change
    /// is on disk, [`Answer::NotKept`] when it will not be.
    fn finish(&self, receipt: &Receipt, _data: &mut Vec<u8>) -> Option<Answer> {
        self.synced(receipt)
            .map(|kept| if kept { Answer::Ok } else { Answer::NotKept })
    }
    /// Appends the session stored under `id` to `out`; false when there is none.
    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool;
    /// Appends the session stored under `id` to `out` and deletes it, as
    /// one step: of any number of takes of one id, at most one finds it
    /// (TLS 1.3 early data depends on this to refuse a replayed ticket).
    /// False when there is none.
    ///
    /// A store that cannot make the two one step must not override this
    /// with a lookup followed by a removal: the default finds nothing, so
    /// that its callers fall back to a full handshake rather than risk
    /// handing one session out twice.
    fn take_into(&self, _now: Millis, _id: &[u8], _out: &mut Vec<u8>) -> bool {
        false
    }
    /// [`Store::take_into`] for a caller that must not wait: whether a
    /// session was taken (its data appended to `out`), and the receipt to
    /// wait for before handing it out when the store answers only once the
    /// removal is on disk, as [`Store::remove_begin`].
    fn take_begin(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> (bool, Option<Receipt>) {
        (self.take_into(now, id, out), None)
    }
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
    /// What the store counts of its remote backend; `None` for a store
    /// that has none.
    fn backend_counts(&self) -> Option<BackendCounts> {
        None
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
