use super::{AddError, Millis, Store};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The in-memory session store: a hash table of sessions with a capacity.
///
/// `get`, `have`, `remove` and `add` cost one hash lookup. When an ADD finds
/// the store full, one pass over the table drops every expired session and,
/// if that freed fewer than `max(capacity / 30, 1)` places, evicts the
/// sessions that expire soonest (the earliest added first among equals) until
/// that many are free. Each such pass frees at least `capacity / 30` places,
/// so its cost spreads to a constant per ADD.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    map: HashMap<Box<[u8]>, Entry>,
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

impl Entry {
    fn live(&self, now: Millis) -> bool {
        self.expiry > now
    }
}

/// Counters of what the store dropped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// Live sessions evicted because the store was full.
    pub evicted: u64,
    /// Expired sessions removed from memory.
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

    /// How many places one eviction pass frees at least.
    pub fn eviction_batch(&self) -> usize {
        (self.capacity / 30).max(1)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while the lock was held cannot leave the table half-changed
        // in a way that matters (each method changes it in one step), so a
        // poisoned lock is taken over rather than propagated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Table {
    /// Removes `id` if it is stored but expired. Returns the live entry.
    fn live_entry(&mut self, now: Millis, id: &[u8]) -> Option<&Entry> {
        let live = self.map.get(id)?.live(now);
        if !live {
            self.map.remove(id);
            self.expired += 1;
            return None;
        }
        self.map.get(id)
    }

    /// Frees at least `want` places: expired sessions first, then the
    /// soonest-expiring live ones.
    fn make_room(&mut self, now: Millis, want: usize) {
        let before = self.map.len();
        self.map.retain(|_, e| e.live(now));
        let freed = before - self.map.len();
        self.expired += freed as u64;
        if freed >= want {
            return;
        }
        let need = (want - freed).min(self.map.len());
        if need == 0 {
            return;
        }
        let mut order: Vec<(Millis, u64)> = self.map.values().map(|e| (e.expiry, e.seq)).collect();
        // (expiry, seq) pairs are unique, so the cut-off is exact.
        let (_, cutoff, _) = order.select_nth_unstable(need - 1);
        let cutoff = *cutoff;
        self.map.retain(|_, e| (e.expiry, e.seq) > cutoff);
        self.evicted += need as u64;
    }
}

impl Store for MemoryStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        let mut t = self.lock();
        if t.live_entry(now, id).is_some() {
            return Err(AddError::Exists);
        }
        if t.map.len() >= self.capacity {
            t.make_room(now, self.eviction_batch());
        }
        let seq = t.next_seq;
        t.next_seq += 1;
        let entry = Entry {
            expiry: now + Millis::from(timeout_msecs),
            seq,
            data: data.into(),
        };
        t.map.insert(id.into(), entry);
        Ok(())
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        let mut t = self.lock();
        match t.live_entry(now, id) {
            Some(e) => {
                out.extend_from_slice(&e.data);
                true
            }
            None => false,
        }
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        let mut t = self.lock();
        t.live_entry(now, id).is_some() && t.map.remove(id).is_some()
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.lock().live_entry(now, id).is_some()
    }

    fn len(&self, now: Millis) -> usize {
        let t = self.lock();
        t.map.values().filter(|e| e.live(now)).count()
    }
}
