use super::{AddError, Millis, Store};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

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
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Table>,
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
        }
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
            self.map.remove(&id);
            self.expired += 1;
        }
    }

    /// Drops the `count` sessions that expire soonest.
    fn evict(&mut self, count: usize) {
        for _ in 0..count {
            let Some((_, id)) = self.by_expiry.pop_first() else {
                break;
            };
            self.map.remove(&id);
            self.evicted += 1;
        }
    }

    fn remove(&mut self, id: &[u8]) -> bool {
        match self.map.remove(id) {
            Some(e) => {
                self.by_expiry.remove(&(e.expiry, e.seq));
                true
            }
            None => false,
        }
    }
}

impl Store for MemoryStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        let mut t = self.lock_at(now);
        if t.map.contains_key(id) {
            return Err(AddError::Exists);
        }
        if t.map.len() >= self.capacity {
            t.evict(self.eviction_batch());
        }
        let seq = t.next_seq;
        t.next_seq += 1;
        let expiry = now.saturating_add(Millis::from(timeout_msecs));
        t.by_expiry.insert((expiry, seq), id.into());
        t.map.insert(
            id.into(),
            Entry {
                expiry,
                seq,
                data: data.into(),
            },
        );
        Ok(())
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
        self.lock_at(now).remove(id)
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.lock_at(now).map.contains_key(id)
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
