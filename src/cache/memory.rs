use super::{AddError, Millis, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The in-memory session store: a hash table of sessions, an index of them
/// ordered by expiry, and a capacity.
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
/// scans the store.
///
/// A store made with [`MemoryStore::with_journal`] reports every change of
/// its contents to a [`Journal`], in the order the changes happen.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
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

#[derive(Debug, Default)]
struct Table {
    map: HashMap<Box<[u8]>, Entry>,
    /// (expiry, insertion seq) of every stored session, with its id.
    by_expiry: BTreeMap<(Millis, u64), Box<[u8]>>,
    next_seq: u64,
    evicted: u64,
    expired: u64,
}

#[derive(Debug)]
struct Entry {
    expiry: Millis,
    seq: u64,
    data: Box<[u8]>,
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
        MemoryStore {
            capacity: capacity.max(1),
            inner: Mutex::new(Table::default()),
            journal: None,
        }
    }

    /// A store like [`MemoryStore::new`] that reports every change of its
    /// contents to `journal`.
    pub fn with_journal(capacity: usize, journal: Arc<dyn Journal>) -> Self {
        MemoryStore {
            journal: Some(journal),
            ..MemoryStore::new(capacity)
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
        if t.map.contains_key(id) {
            return Err(AddError::Exists);
        }
        if t.map.len() >= self.capacity {
            t.evict(self.eviction_batch(), journal);
        }
        let lifetime = Millis::from(timeout_msecs);
        t.insert(now.saturating_add(lifetime), id.into(), data.into());
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
    /// (false) when the id is taken or the store is full; nothing is evicted.
    pub fn restore(
        &self,
        now: Millis,
        lifetime_msecs: Millis,
        id: Box<[u8]>,
        data: Box<[u8]>,
    ) -> bool {
        let mut t = self.lock();
        if t.map.contains_key(&id) || t.map.len() >= self.capacity {
            return false;
        }
        t.insert(now.saturating_add(lifetime_msecs), id, data);
        true
    }

    /// Whether the session stored under `id` holds exactly `data`, expired
    /// or not (the store is not purged).
    pub fn holds(&self, id: &[u8], data: &[u8]) -> bool {
        self.lock().map.get(id).is_some_and(|e| *e.data == *data)
    }

    /// The most sessions this store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
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

/// Tells `journal`, if any, that the session `id` holding `entry` left.
fn report_drop(journal: Option<&dyn Journal>, id: &[u8], entry: &Entry, why: DropReason) {
    if let Some(j) = journal {
        j.record(Change::Dropped {
            id,
            data_len: entry.data.len(),
            why,
        });
    }
}

impl Table {
    fn purge_expired(&mut self, now: Millis, journal: Option<&dyn Journal>) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if let Some(e) = self.map.remove(&id) {
                report_drop(journal, &id, &e, DropReason::Expired);
            }
            self.expired += 1;
        }
    }

    /// Drops the `count` sessions that expire soonest.
    fn evict(&mut self, count: usize, journal: Option<&dyn Journal>) {
        for _ in 0..count {
            let Some((_, id)) = self.by_expiry.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&id) {
                report_drop(journal, &id, &e, DropReason::Evicted);
            }
            self.evicted += 1;
        }
    }

    fn insert(&mut self, expiry: Millis, id: Box<[u8]>, data: Box<[u8]>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_expiry.insert((expiry, seq), id.clone());
        self.map.insert(id, Entry { expiry, seq, data });
    }

    fn remove(&mut self, id: &[u8], journal: Option<&dyn Journal>) -> bool {
        match self.map.remove(id) {
            Some(e) => {
                self.by_expiry.remove(&(e.expiry, e.seq));
                report_drop(journal, id, &e, DropReason::Removed);
                true
            }
            None => false,
        }
    }
}

impl Store for MemoryStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        self.add_with_receipt(now, timeout_msecs, id, data)
            .map(|_| ())
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let t = self.lock_at(now);
        match t.map.get(id) {
            Some(e) => {
                out.extend_from_slice(&e.data);
                true
            }
            None => false,
        }
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).remove(id, self.journal.as_deref())
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).map.contains_key(id)
    }

    fn len(&self, now: Millis) -> usize {
        self.lock_at(now).map.len()
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
