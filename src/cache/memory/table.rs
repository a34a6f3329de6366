//! The store's contents behind its lock: the sessions, their index and
//! their order of expiry, and what each operation does to them.

use super::*;

/// The store's contents.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// The sessions, one slot each.
    pub(super) arena: Arena,
    /// Slot handles by id hash.
    pub(super) index: IdIndex,
    /// (expiry, insertion seq) of every stored session, and where it is.
    pub(super) by_expiry: BTreeMap<(Millis, u64), Place>,
    pub(super) hasher: RandomState,
    pub(super) next_seq: u64,
    /// Bytes of ids and data of the sessions stored.
    pub(super) bytes: u64,
    /// Bytes of data alone of the sessions stored.
    pub(super) data_bytes: u64,
    pub(super) evicted: u64,
    pub(super) expired: u64,
}

/// Where a stored session is: its slot, and the hash its index entry is
/// filed under.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub(super) slot: Handle,
    pub(super) hash: u32,
}
impl Table {
    /// The bits of `id`'s hash the index files it under.
    pub(super) fn hash(&self, id: &[u8]) -> u32 {
        // The index keeps the low 32 bits.
        self.hasher.hash_one(id) as u32
    }

    /// Where the session stored under `id` is.
    pub(super) fn find(&self, id: &[u8]) -> Option<Place> {
        self.find_hashed(self.hash(id), id)
    }

    /// [`Table::find`], with the hash of `id` at hand.
    pub(super) fn find_hashed(&self, hash: u32, id: &[u8]) -> Option<Place> {
        let arena = &self.arena;
        self.index
            .find(hash, |h| record::id(arena.slot(h)) == id)
            .map(|slot| Place { slot, hash })
    }

    pub(super) fn purge_expired(&mut self, now: Millis, journal: Option<&dyn Journal>) {
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
    pub(super) fn evict_one(&mut self, journal: Option<&dyn Journal>) -> bool {
        let Some((_, place)) = self.by_expiry.pop_first() else {
            return false;
        };
        self.forget(place, journal, DropReason::Evicted);
        self.evicted += 1;
        true
    }

    /// Drops the `count` sessions that expire soonest.
    pub(super) fn evict(&mut self, count: usize, journal: Option<&dyn Journal>) {
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
    pub(super) fn warm_up(&self, count: usize) {
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
    pub(super) fn evict_for_bytes(
        &mut self,
        size: u64,
        max_bytes: u64,
        journal: Option<&dyn Journal>,
    ) {
        while self.bytes.saturating_add(size) > max_bytes && self.evict_one(journal) {}
    }

    /// Stores a session whose id hashes to `hash` (the id is not stored
    /// yet, and there is room); false when no memory could be had for it.
    pub(super) fn insert(
        &mut self,
        hash: u32,
        expiry: Millis,
        added: Millis,
        id: &[u8],
        data: &[u8],
    ) -> bool {
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
    /// expiry index entry is already gone) and tells the journal why;
    /// returns the journal's receipt for that.
    pub(super) fn forget(
        &mut self,
        place: Place,
        journal: Option<&dyn Journal>,
        why: DropReason,
    ) -> Option<u64> {
        self.index.remove(place.hash, place.slot);
        let slot = self.arena.slot(place.slot);
        let h = record::header(slot);
        self.bytes -= (h.id_len + h.data_len) as u64;
        self.data_bytes -= h.data_len as u64;
        // The session is out of both indexes; its slot is freed once the
        // journal has read its id.
        let receipt = journal.and_then(|j| {
            j.record(Change::Dropped {
                id: record::id(slot),
                data_len: h.data_len,
                why,
            })
        });
        self.arena.free(place.slot);
        receipt
    }

    /// Removes the session stored under `id`, first appending its data to
    /// `out` when one is given. `None` when there was none; else the
    /// journal's receipt for the removal (`None` without a journal, or
    /// when it could not take it).
    pub(super) fn take(
        &mut self,
        id: &[u8],
        journal: Option<&dyn Journal>,
        out: Option<&mut Vec<u8>>,
    ) -> Option<Option<u64>> {
        let place = self.find(id)?;
        if let Some(out) = out {
            out.extend_from_slice(record::data(self.arena.slot(place.slot)));
        }
        let h = record::header(self.arena.slot(place.slot));
        self.by_expiry.remove(&(h.expiry, h.seq));
        Some(self.forget(place, journal, DropReason::Removed))
    }
}

/// What a session counts for against the byte capacity: its id and data.
pub(super) fn stored_size(id: &[u8], data: &[u8]) -> u64 {
    // Lengths of slices fit in u64 on every supported target.
    (id.len() as u64).saturating_add(data.len() as u64)
}
