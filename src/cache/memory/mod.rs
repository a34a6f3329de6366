//! The in-memory store, [`MemoryStore`], and what it is made of: the
//! sessions' bytes in slots of an [`arena`], found by id through an
//! [`index`], laid out as [`record`] says, on memory from `sys::pages`.

mod arena;
mod index;
mod record;

use super::{AddError, ListCursor, ListError, Millis, SessionInfo, Store};
use arena::{Arena, Handle};
use index::IdIndex;
use record::Header;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// The store's contents.
#[derive(Debug, Default)]
struct Table {
    /// The sessions, one slot each.
    arena: Arena,
    /// Slot handles by id hash.
    index: IdIndex,
    /// (expiry, insertion seq) of every stored session, and where it is.
    by_expiry: BTreeMap<(Millis, u64), Place>,
    hasher: RandomState,
    next_seq: u64,
    /// Bytes of ids and data of the sessions stored.
    bytes: u64,
    /// Bytes of data alone of the sessions stored.
    data_bytes: u64,
    evicted: u64,
    expired: u64,
}

/// Where a stored session is: its slot, and the hash its index entry is
/// filed under.
#[derive(Debug, Clone, Copy)]
struct Place {
    slot: Handle,
    hash: u32,
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

impl Table {
    /// The bits of `id`'s hash the index files it under.
    fn hash(&self, id: &[u8]) -> u32 {
        // The index keeps the low 32 bits.
        self.hasher.hash_one(id) as u32
    }

    /// Where the session stored under `id` is.
    fn find(&self, id: &[u8]) -> Option<Place> {
        self.find_hashed(self.hash(id), id)
    }

    /// [`Table::find`], with the hash of `id` at hand.
    fn find_hashed(&self, hash: u32, id: &[u8]) -> Option<Place> {
        let arena = &self.arena;
        self.index
            .find(hash, |h| record::id(arena.slot(h)) == id)
            .map(|slot| Place { slot, hash })
    }

    fn purge_expired(&mut self, now: Millis, journal: Option<&dyn Journal>) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let place = entry.remove();
            self.forget(place, journal, DropReason::Expired);
            self.expired += 1;
        }
    }

    /// Drops the soonest-expiring session; false when there is none.
    fn evict_one(&mut self, journal: Option<&dyn Journal>) -> bool {
        let Some((_, place)) = self.by_expiry.pop_first() else {
            return false;
        };
        self.forget(place, journal, DropReason::Evicted);
        self.evicted += 1;
        true
    }

    /// Drops the `count` sessions that expire soonest.
    fn evict(&mut self, count: usize, journal: Option<&dyn Journal>) {
        self.warm_up(count);
        for _ in 0..count {
            if !self.evict_one(journal) {
                break;
            }
        }
    }

    /// Reads, ahead of their eviction, the index line and the slot header
    /// of the `count` sessions that expire soonest. The loads do not depend
    /// on each other, so the processor overlaps their cache misses, where
    /// the eviction itself would wait for them one session at a time.
    fn warm_up(&self, count: usize) {
        if count < 2 {
            return;
        }
        let mut seen = 0u64;
        for place in self.by_expiry.values().take(count) {
            seen ^= self.index.peek(place.hash) ^ u64::from(self.arena.first_byte(place.slot));
        }
        std::hint::black_box(seen);
    }

    /// Drops the soonest-expiring sessions until `size` more bytes fit
    /// within `max_bytes`.
    fn evict_for_bytes(&mut self, size: u64, max_bytes: u64, journal: Option<&dyn Journal>) {
        while self.bytes.saturating_add(size) > max_bytes && self.evict_one(journal) {}
    }

    /// Stores a session whose id hashes to `hash` (the id is not stored
    /// yet, and there is room); false when no memory could be had for it.
    fn insert(&mut self, hash: u32, expiry: Millis, added: Millis, id: &[u8], data: &[u8]) -> bool {
        let Some(size) = record::size(id.len(), data.len()) else {
            return false;
        };
        let Some(slot) = self.arena.alloc(size) else {
            return false;
        };
        if !self.index.insert(hash, slot) {
            self.arena.free(slot);
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = Header {
            expiry,
            seq,
            added,
            id_len: id.len(),
            data_len: data.len(),
        };
        record::write(self.arena.slot_mut(slot), &header, id, data);
        self.bytes += stored_size(id, data);
        self.data_bytes += data.len() as u64;
        self.by_expiry.insert((expiry, seq), Place { slot, hash });
        true
    }

    /// Takes the session at `place` out of the index and the arena (its
    /// expiry index entry is already gone) and tells the journal why.
    fn forget(&mut self, place: Place, journal: Option<&dyn Journal>, why: DropReason) {
        self.index.remove(place.hash, place.slot);
        let slot = self.arena.slot(place.slot);
        let h = record::header(slot);
        self.bytes -= (h.id_len + h.data_len) as u64;
        self.data_bytes -= h.data_len as u64;
        // The session is out of both indexes; its slot is freed once the
        // journal has read its id.
        if let Some(j) = journal {
            j.record(Change::Dropped {
                id: record::id(slot),
                data_len: h.data_len,
                why,
            });
        }
        self.arena.free(place.slot);
    }

    fn remove(&mut self, id: &[u8], journal: Option<&dyn Journal>) -> bool {
        let Some(place) = self.find(id) else {
            return false;
        };
        let h = record::header(self.arena.slot(place.slot));
        self.by_expiry.remove(&(h.expiry, h.seq));
        self.forget(place, journal, DropReason::Removed);
        true
    }
}

/// What a session counts for against the byte capacity: its id and data.
fn stored_size(id: &[u8], data: &[u8]) -> u64 {
    // Lengths of slices fit in u64 on every supported target.
    (id.len() as u64).saturating_add(data.len() as u64)
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
        self.lock_at(now).remove(id, self.journal.as_deref())
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
mod tests {
    use super::*;

    #[test]
    fn eviction_batch_follows_the_original_then_stays_bounded() {
        let batch = |cap| MemoryStore::new(cap).eviction_batch();
        assert_eq!([batch(1), batch(29), batch(64), batch(512)], [1, 1, 2, 17]);
        assert_eq!(batch(60_000), 2000);
        assert_eq!(batch(10_000_000), MAX_EVICTION_BATCH);
    }

    fn list_all(s: &MemoryStore, now: Millis, page: usize) -> Vec<SessionInfo> {
        let mut out = Vec::new();
        let mut from = None;
        let mut pages = 0;
        loop {
            let before = out.len();
            from = s.list(now, from, page, &mut out).unwrap();
            assert!(out.len() - before <= page.max(1));
            pages += 1;
            assert!(pages < 1000, "the listing does not end");
            if from.is_none() {
                return out;
            }
        }
    }

    #[test]
    fn listing_goes_page_by_page_soonest_expiry_first() {
        let s = MemoryStore::new(100);
        for i in 0..10u32 {
            s.add(
                u64::from(i),
                1000 - i * 10,
                &i.to_be_bytes(),
                &vec![7; i as usize],
            )
            .unwrap();
        }
        for page in [0, 1, 3, 10, 11, 100] {
            let all = list_all(&s, 20, page);
            assert_eq!(all.len(), 10, "page {page}");
            let ids: Vec<u32> = all
                .iter()
                .map(|e| u32::from_be_bytes(e.id[..].try_into().unwrap()))
                .collect();
            assert_eq!(ids, (0..10).rev().collect::<Vec<_>>(), "page {page}");
            for e in &all {
                let i = u64::from(u32::from_be_bytes(e.id[..].try_into().unwrap()));
                assert_eq!(
                    (e.size as u64, e.added, e.expiry),
                    (i, i, i + 1000 - i * 10)
                );
            }
        }
        // Expired sessions are not listed.
        assert_eq!(list_all(&s, 960, 4).len(), 5);
    }

    #[test]
    fn a_listing_survives_changes_between_pages() {
        let s = MemoryStore::new(100);
        for i in 0..6u8 {
            s.add(0, 100 + u32::from(i), &[i], b"d").unwrap();
        }
        let mut out = Vec::new();
        let from = s.list(1, None, 2, &mut out).unwrap();
        assert!(s.remove(1, &[0]), "already listed");
        assert!(s.remove(1, &[3]), "not listed yet");
        s.add(1, 1000, b"new", b"d").unwrap();
        let mut from = from;
        while from.is_some() {
            from = s.list(1, from, 2, &mut out).unwrap();
        }
        let ids: Vec<&[u8]> = out.iter().map(|e| &e.id[..]).collect();
        assert_eq!(ids, [&[0][..], &[1], &[2], &[4], &[5], b"new"]);
    }

    fn held(s: &MemoryStore) -> usize {
        s.lock().arena.held()
    }

    /// Under churn a full store reuses the slots it evicts, and once the
    /// sessions of one size have all gone, the memory they took is given
    /// back (all but one chunk).
    #[test]
    fn churn_reuses_slots_and_sizes_no_longer_stored_give_their_memory_back() {
        let cap = 10_000u64;
        let s = MemoryStore::new(cap as usize);
        let id = |i: u64| i.to_le_bytes();
        for i in 0..cap {
            s.add(0, 1000, &id(i), &[1; 1000]).unwrap();
        }
        let full = held(&s);
        for i in cap..4 * cap {
            s.add(0, 1000, &id(i), &[2; 1000]).unwrap();
        }
        assert!(held(&s) <= full, "evicted slots are reused");
        for i in 4 * cap..6 * cap {
            s.add(0, 1000, &id(i), &[3; 3000]).unwrap();
        }
        assert_eq!(
            s.data_bytes(0),
            Some(s.len(0) as u64 * 3000),
            "only the new size"
        );
        let fresh = MemoryStore::new(cap as usize);
        for i in 0..cap {
            fresh.add(0, 1000, &id(i), &[3; 3000]).unwrap();
        }
        assert!(
            held(&s) <= held(&fresh) + (4 << 20),
            "{} held, {} for the new size alone",
            held(&s),
            held(&fresh)
        );
        let mut out = Vec::new();
        assert!(s.get_into(0, &id(6 * cap - 1), &mut out));
        assert_eq!(out, [3; 3000]);
    }

    #[test]
    fn data_bytes_follow_every_change() {
        let s = MemoryStore::new(3);
        s.add(0, 10, b"a", &[0; 100]).unwrap();
        s.add(0, 20, b"b", &[0; 10]).unwrap();
        assert_eq!(s.data_bytes(0), Some(110));
        assert_eq!(s.add(0, 20, b"b", &[0; 5]), Err(AddError::Exists));
        assert_eq!(s.data_bytes(0), Some(110));
        s.add(0, 30, b"c", &[0; 1]).unwrap();
        s.add(0, 30, b"d", &[0; 2]).unwrap(); // evicts "a"
        assert_eq!(s.data_bytes(0), Some(13));
        assert!(s.remove(0, b"b"));
        assert_eq!(s.data_bytes(0), Some(3));
        assert_eq!(s.data_bytes(30), Some(0), "c and d expired");
        let counts = Store::drop_counts(&s);
        assert_eq!((counts.evicted, counts.expired), (1, 2));
    }
}
