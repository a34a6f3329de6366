//! The in-memory store, [`MemoryStore`], and what it is made of: the
//! sessions' bytes in slots of an [`arena`], found by id through an
//! [`index`], laid out as [`record`] says, on memory from `sys::pages`.

mod arena;
mod index;
mod record;
mod table;

use super::{AddError, ListCursor, ListError, Millis, SessionInfo, Store};
use arena::{Arena, Handle};
use index::IdIndex;
use record::Header;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use table::{stored_size, Table};

/// The in-memory session store: a hash table of sessions, an index of them
/// ordered by expiry, a capacity in sessions and, optionally, one in bytes.
///
/// Every operation first drops the sessions that have expired (taken from
/// the front of the expiry index, so only expired ones are touched). An ADD
/// that then finds the store full evicts the `max(capacity / 30, 1)`
/// sessions that expire soonest, the earliest added first among equals: the
/// original server's rule, for every capacity the original allowed (up to
/// 60000). Above that the batch stays at [`MAX_EVICTION_BATCH`], so that no
/// single ADD stalls the store for long. No operation scans the store.
///
/// A session's header, id and data share one slot of an arena of large
/// chunks (on huge pages where the kernel offers them), found by id through
/// a hash index of eight bytes per entry; a lookup (`get`, `have`) reads
/// one line of the index and the slot. The expiry index is a B-tree of
/// (expiry, insertion number) that leads to the slot and the index entry;
/// `add` and `remove` update it at one place (for sessions of equal
/// lifetime, its hot right end). An eviction takes the soonest-expiring
/// session from the B-tree's hot left end, its index entry out by hash and
/// slot, and reads one line of its slot (for its lengths and id).
///
/// With a byte capacity ([`MemoryStore::with_max_bytes`]) the store also
/// counts the bytes of what it holds: each session's id plus its data (the
/// store's own bookkeeping is not counted). An ADD of a session larger than
/// the whole capacity is refused ([`AddError::Refused`]); otherwise, after
/// the eviction for the session capacity, an ADD that would take the count
/// over the byte capacity evicts the sessions that expire soonest, one at a
/// time and only as many as it must, counted as evicted like the others.
///
/// An ADD is also refused when the store cannot get memory for the session
/// (the kernel refuses it, or the arena's 65535 chunks are all in use), or
/// when its id or data is 4 GiB or longer.
///
/// A listing ([`Store::list`]) goes through the expiry index, soonest
/// expiry first, one page per lock.
///
/// A store made with [`MemoryStore::with_journal`] reports every change of
/// its contents to a `Journal`, in the order the changes happen.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    max_bytes: Option<u64>,
    inner: Mutex<Table>,
    journal: Option<Arc<dyn Journal>>,
}
/// Why a session left a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A client removed it.
    Removed,
    /// Its lifetime ended.
    Expired,
    /// The store was full and it was among those that expire soonest.
    Evicted,
}

/// A change of a store's contents, as a [`Journal`] is told of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// A session was stored, to expire `lifetime_msecs` from now.
    Added {
        /// Its id.
        id: &'a [u8],
        /// Its data.
        data: &'a [u8],
        /// Milliseconds until it expires.
        lifetime_msecs: Millis,
    },
    /// A session left the store.
    Dropped {
        /// Its id.
        id: &'a [u8],
        /// How many bytes of data it held.
        data_len: usize,
        /// Why it left.
        why: DropReason,
    },
}

/// Told of every change of a [`MemoryStore`]'s contents, with the store
/// locked, so that the order of the calls is the order of the changes
/// (the durable store keeps its disk copy in step this way).
///
/// `record` runs inside every writing operation of the store: it must be
/// quick, must not block for long and must not call back into the store.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Takes note of `change`; returns a receipt for it, or `None` when it
    /// could not be taken. [`MemoryStore::add_with_receipt`] hands the
    /// receipt of an ADD back to its caller.
    fn record(&self, change: Change<'_>) -> Option<u64>;
}

/// The most sessions one eviction drops: `60000 / 30`, the batch of the
/// original's largest cache.
pub const MAX_EVICTION_BATCH: usize = 2000;

/// Counters of what the store dropped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// Live sessions evicted because the store was full.
    pub evicted: u64,
    /// Sessions dropped because they expired.
    pub expired: u64,
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryStore::with_max_bytes(capacity, None)
    }

    /// A store holding at most `capacity` sessions (at least 1) and, if
    /// `max_bytes` is given, at most that many bytes of ids and data.
    pub fn with_max_bytes(capacity: usize, max_bytes: Option<u64>) -> Self {
        MemoryStore {
            capacity: capacity.max(1),
            max_bytes,
            inner: Mutex::new(Table::default()),
            journal: None,
        }
    }

    /// A store like [`MemoryStore::with_max_bytes`] that reports every
    /// change of its contents to `journal`.
    pub fn with_journal(
        capacity: usize,
        max_bytes: Option<u64>,
        journal: Arc<dyn Journal>,
    ) -> Self {
        MemoryStore {
            journal: Some(journal),
            ..MemoryStore::with_max_bytes(capacity, max_bytes)
        }
    }

    /// [`Store::remove`]: `None` when no session was stored under `id`,
    /// else the journal's receipt for its removal (`None` without a
    /// journal, or when the journal could not take it).
    pub fn remove_with_receipt(&self, now: Millis, id: &[u8]) -> Option<Option<u64>> {
        self.lock_at(now).take(id, self.journal.as_deref(), None)
    }

    /// [`Store::take_into`], with the receipt as
    /// [`MemoryStore::remove_with_receipt`] gives it.
    pub fn take_with_receipt(
        &self,
        now: Millis,
        id: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Option<u64>> {
        // One lock held from the lookup to the removal: no other request
        // sees the session in between.
        self.lock_at(now)
            .take(id, self.journal.as_deref(), Some(out))
    }

    /// [`Store::add`], returning the journal's receipt for the ADD (`None`
    /// without a journal, or when the journal could not take it).
    pub fn add_with_receipt(
        &self,
        now: Millis,
        timeout_msecs: u32,
        id: &[u8],
        data: &[u8],
    ) -> Result<Option<u64>, AddError> {
        let journal = self.journal.as_deref();
        let mut t = self.lock_at(now);
        let hash = t.hash(id);
        if t.find_hashed(hash, id).is_some() {
            return Err(AddError::Exists);
        }
        let size = stored_size(id, data);
        if self.max_bytes.is_some_and(|max| size > max)
            || record::size(id.len(), data.len()).is_none()
        {
            return Err(AddError::Refused);
        }
        if t.index.len() >= self.capacity {
            t.evict(self.eviction_batch(), journal);
        }
        if let Some(max) = self.max_bytes {
            t.evict_for_bytes(size, max, journal);
        }
        let lifetime = Millis::from(timeout_msecs);
        if !t.insert(hash, now.saturating_add(lifetime), now, id, data) {
            return Err(AddError::Refused);
        }
        Ok(journal.and_then(|j| {
            j.record(Change::Added {
                id,
                data,
                lifetime_msecs: lifetime,
            })
        }))
    }

    /// Puts back a session that the journal already holds (when a store is
    /// filled from its journal at start-up): stored to expire
    /// `lifetime_msecs` after `now`, without telling the journal. Refused
    /// (false) when the id is taken or the store is full (in sessions or in
    /// bytes); nothing is evicted.
    pub fn restore(&self, now: Millis, lifetime_msecs: Millis, id: &[u8], data: &[u8]) -> bool {
        let mut t = self.lock();
        let size = stored_size(id, data);
        let hash = t.hash(id);
        if t.find_hashed(hash, id).is_some()
            || t.index.len() >= self.capacity
            || self
                .max_bytes
                .is_some_and(|max| t.bytes.saturating_add(size) > max)
        {
            return false;
        }
        t.insert(hash, now.saturating_add(lifetime_msecs), now, id, data)
    }

    /// Whether the session stored under `id` holds exactly `data`, expired
    /// or not (the store is not purged).
    pub fn holds(&self, id: &[u8], data: &[u8]) -> bool {
        let t = self.lock();
        t.find(id)
            .is_some_and(|p| record::data(t.arena.slot(p.slot)) == data)
    }

    /// The most sessions this store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most bytes of ids and data this store holds (`None`: no limit
    /// but the session capacity).
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// Bytes of ids and data of the live sessions at `now` (dropping the
    /// expired ones first, as every operation does).
    pub fn bytes(&self, now: Millis) -> u64 {
        self.lock_at(now).bytes
    }

    /// How many sessions the store dropped on its own so far.
    pub fn drop_counts(&self) -> DropCounts {
        let t = self.lock();
        DropCounts {
            evicted: t.evicted,
            expired: t.expired,
        }
    }

    /// How many sessions one eviction drops.
    pub fn eviction_batch(&self) -> usize {
        (self.capacity / 30).clamp(1, MAX_EVICTION_BATCH)
    }

    /// The table, with every session expired at `now` dropped.
    fn lock_at(&self, now: Millis) -> MutexGuard<'_, Table> {
        let mut t = self.lock();
        t.purge_expired(now, self.journal.as_deref());
        t
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Each method leaves the table consistent before anything that can
        // panic (allocation aside), so a poisoned lock is taken over rather
        // than propagated to every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        self.add_with_receipt(now, timeout_msecs, id, data)
            .map(|_| ())
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let t = self.lock_at(now);
        let arena = &t.arena;
        let found = t.index.find(t.hash(id), |h| {
            let slot = arena.slot(h);
            record::touch_lines(slot);
            record::id(slot) == id
        });
        match found {
            Some(h) => {
                out.extend_from_slice(record::data(arena.slot(h)));
                true
            }
            None => false,
        }
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.remove_with_receipt(now, id).is_some()
    }

    fn take_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        self.take_with_receipt(now, id, out).is_some()
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).find(id).is_some()
    }

    fn len(&self, now: Millis) -> usize {
        self.lock_at(now).index.len()
    }

    fn data_bytes(&self, now: Millis) -> Option<u64> {
        Some(self.lock_at(now).data_bytes)
    }

    fn drop_counts(&self) -> DropCounts {
        MemoryStore::drop_counts(self)
    }

    fn list(
        &self,
        now: Millis,
        from: Option<ListCursor>,
        max: usize,
        out: &mut Vec<SessionInfo>,
    ) -> Result<Option<ListCursor>, ListError> {
        let max = max.max(1);
        let t = self.lock_at(now);
        let start = match from {
            Some(ListCursor(expiry, seq)) => Bound::Excluded((expiry, seq)),
            None => Bound::Unbounded,
        };
        let mut last = None;
        let mut taken = 0;
        for (&key, place) in t.by_expiry.range((start, Bound::Unbounded)).take(max) {
            taken += 1;
            last = Some(key);
            let slot = t.arena.slot(place.slot);
            let h = record::header(slot);
            out.push(SessionInfo {
                id: record::id(slot).to_vec(),
                size: h.data_len,
                expiry: h.expiry,
                added: h.added,
            });
        }
        Ok(match last {
            Some((expiry, seq)) if taken == max => Some(ListCursor(expiry, seq)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
