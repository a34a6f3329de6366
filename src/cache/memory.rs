use super::{AddError, Millis, Store};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// The in-memory session store: a hash table of sessions, an index of them
/// ordered by expiry, a capacity in sessions and, optionally, one in bytes.
///
/// Every operation first drops the sessions that have expired (taken from
/// the front of the expiry index, so only expired ones are touched). An ADD
/// that then finds the store full evicts the `max(capacity / 30, 1)`
/// sessions that expire soonest, the earliest added first among equals: the
/// original server's rule, for every capacity the original allowed (up to
/// 60000). Above that the batch stays at [`MAX_EVICTION_BATCH`], so that no
/// single ADD stalls the store for long. Lookups (`get`, `have`) cost one hash lookup;
/// `add` and `remove` also update the expiry index, a B-tree (logarithmic,
/// and shallow: four levels hold about a million sessions). No operation
/// scans the store. A session's id and data share one allocation, so a
/// lookup reads the table and that one block.
///
/// With a byte capacity ([`MemoryStore::with_max_bytes`]) the store also
/// counts the bytes of what it holds: each session's id plus its data (the
/// store's own bookkeeping is not counted). An ADD of a session larger than
/// the whole capacity is refused ([`AddError::Refused`]); otherwise, after
/// the eviction for the session capacity, an ADD that would take the count
/// over the byte capacity evicts the sessions that expire soonest, one at a
/// time and only as many as it must, counted as evicted like the others.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    max_bytes: Option<u64>,
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    map: HashSet<Record>,
    /// (expiry, insertion seq) of every stored session, with its id.
    by_expiry: BTreeMap<(Millis, u64), Box<[u8]>>,
    next_seq: u64,
    /// Bytes of ids and data of the sessions stored.
    bytes: u64,
    evicted: u64,
    expired: u64,
}

/// A stored session, found in the table by its id (through `Borrow`).
#[derive(Debug)]
struct Record {
    /// The id, then the data.
    bytes: Box<[u8]>,
    id_len: usize,
    expiry: Millis,
    seq: u64,
}

impl Record {
    fn id(&self) -> &[u8] {
        &self.bytes[..self.id_len]
    }

    fn data(&self) -> &[u8] {
        &self.bytes[self.id_len..]
    }
}

// A record hashes and compares as its id, so that the table is searched
// with an id slice (the contract of `Borrow`).
impl Borrow<[u8]> for Record {
    fn borrow(&self) -> &[u8] {
        self.id()
    }
}

impl Hash for Record {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Record {}

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
        }
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
        t.purge_expired(now);
        t
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Each method leaves the table consistent before anything that can
        // panic (allocation aside), so a poisoned lock is taken over rather
        // than propagated to every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Table {
    fn purge_expired(&mut self, now: Millis) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.forget(&id);
            self.expired += 1;
        }
    }

    /// Drops the soonest-expiring session; false when there is none.
    fn evict_one(&mut self) -> bool {
        let Some((_, id)) = self.by_expiry.pop_first() else {
            return false;
        };
        self.forget(&id);
        self.evicted += 1;
        true
    }

    /// Drops the `count` sessions that expire soonest.
    fn evict(&mut self, count: usize) {
        for _ in 0..count {
            if !self.evict_one() {
                break;
            }
        }
    }

    /// Drops the soonest-expiring sessions until `size` more bytes fit
    /// within `max_bytes`.
    fn evict_for_bytes(&mut self, size: u64, max_bytes: u64) {
        while self.bytes.saturating_add(size) > max_bytes && self.evict_one() {}
    }

    /// Takes `id` out of the table (its expiry index entry is already gone).
    fn forget(&mut self, id: &[u8]) {
        if let Some(r) = self.map.take(id) {
            self.bytes -= r.bytes.len() as u64;
        }
    }

    fn remove(&mut self, id: &[u8]) -> bool {
        match self.map.take(id) {
            Some(r) => {
                self.by_expiry.remove(&(r.expiry, r.seq));
                self.bytes -= r.bytes.len() as u64;
                true
            }
            None => false,
        }
    }
}

/// What a session counts for against the byte capacity: its id and data.
fn stored_size(id: &[u8], data: &[u8]) -> u64 {
    // Lengths of slices fit in u64 on every supported target.
    (id.len() as u64).saturating_add(data.len() as u64)
}

impl Store for MemoryStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        let mut t = self.lock_at(now);
        if t.map.contains(id) {
            return Err(AddError::Exists);
        }
        let size = stored_size(id, data);
        if self.max_bytes.is_some_and(|max| size > max) {
            return Err(AddError::Refused);
        }
        if t.map.len() >= self.capacity {
            t.evict(self.eviction_batch());
        }
        if let Some(max) = self.max_bytes {
            t.evict_for_bytes(size, max);
        }
        let seq = t.next_seq;
        t.next_seq += 1;
        let expiry = now.saturating_add(Millis::from(timeout_msecs));
        t.bytes += size;
        t.by_expiry.insert((expiry, seq), id.into());
        t.map.insert(Record {
            bytes: [id, data].concat().into_boxed_slice(),
            id_len: id.len(),
            expiry,
            seq,
        });
        Ok(())
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let t = self.lock_at(now);
        match t.map.get(id) {
            Some(r) => {
                out.extend_from_slice(r.data());
                true
            }
            None => false,
        }
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).remove(id)
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).map.contains(id)
    }

    fn len(&self, now: Millis) -> usize {
        self.lock_at(now).map.len()
    }

    fn drop_counts(&self) -> DropCounts {
        MemoryStore::drop_counts(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_batch_follows_the_original_then_stays_bounded() {
        let batch = |cap| MemoryStore::new(cap).eviction_batch();
        assert_eq!([batch(1), batch(29), batch(64), batch(512)], [1, 1, 2, 17]);
        assert_eq!(batch(60_000), 2000);
        assert_eq!(batch(10_000_000), MAX_EVICTION_BATCH);
    }
}
