//! The table that finds a session's slot from its id: open addressing
//! with linear probing, eight bytes an entry (32 bits of the id's hash and
//! the slot's handle), at most three quarters full.
//!
//! The hash bits kept in each entry let the table grow and let an entry be
//! taken out knowing only its hash and handle, without reading the
//! session (an eviction takes a session out this way and so touches one
//! line of the table, not the session's slot). Deletion moves later
//! entries of the same run back, so no tombstones build up.

use super::arena::Handle;
use crate::sys::pages::Mapping;

/// The smallest table: one page of entries.
const MIN_ENTRIES: usize = 512;
const ENTRY: usize = 8;

/// Slot handles by the 32-bit hash of their id.
#[derive(Debug, Default)]
pub(super) struct IdIndex {
    /// `None` until the first insert. An entry is 0 when free, else
    /// `hash << 32 | (handle + 1)`.
    entries: Option<Mapping>,
    /// log2 of the number of entries.
    bits: u32,
    len: usize,
}

fn pack(hash: u32, h: Handle) -> u64 {
    // Handles are never u32::MAX, so handle + 1 is never 0.
    (u64::from(hash) << 32) | u64::from(h + 1)
}

fn hash_of(e: u64) -> u32 {
    (e >> 32) as u32
}

fn handle_of(e: u64) -> Handle {
    (e as u32) - 1
}

/// Where an entry with `hash` belongs in a table of `2^bits` entries: the
/// top bits of a multiplicative mix, so that all 32 hash bits still tell
/// neighbours apart.
fn home(hash: u32, bits: u32) -> usize {
    (u64::from(hash.wrapping_mul(0x9e37_79b9)) >> (32 - bits)) as usize
}

fn get(m: &[u8], i: usize) -> u64 {
    let at = i * ENTRY;
    u64::from_ne_bytes(m[at..at + ENTRY].try_into().unwrap_or([0; ENTRY]))
}

fn set(m: &mut [u8], i: usize, e: u64) {
    let at = i * ENTRY;
    m[at..at + ENTRY].copy_from_slice(&e.to_ne_bytes());
}

impl IdIndex {
    /// How many handles it holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The handle stored with `hash` for which `is_it` says yes.
    pub(super) fn find(&self, hash: u32, mut is_it: impl FnMut(Handle) -> bool) -> Option<Handle> {
        let m = self.entries.as_deref()?;
        let mask = (1usize << self.bits) - 1;
        let mut i = home(hash, self.bits);
        loop {
            let e = get(m, i);
            if e == 0 {
                return None;
            }
            if hash_of(e) == hash && is_it(handle_of(e)) {
                return Some(handle_of(e));
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry where a search for `hash` starts (to bring its line into
    /// the cache ahead of a removal).
    pub(super) fn peek(&self, hash: u32) -> u64 {
        self.entries
            .as_deref()
            .map_or(0, |m| get(m, home(hash, self.bits)))
    }

    /// Adds `h` under `hash` (the caller knows it is not there yet); false
    /// when the table could not grow to take it.
    pub(super) fn insert(&mut self, hash: u32, h: Handle) -> bool {
        let entries = 1usize << self.bits;
        if (self.entries.is_none() || (self.len + 1) * 4 > entries * 3) && !self.grow() {
            return false;
        }
        let bits = self.bits;
        if let Some(m) = self.entries.as_deref_mut() {
            place(m, bits, pack(hash, h));
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// Takes `h`, stored under `hash`, out; false when it is not there.
    pub(super) fn remove(&mut self, hash: u32, h: Handle) -> bool {
        let bits = self.bits;
        let Some(m) = self.entries.as_deref_mut() else {
            return false;
        };
        let mask = (1usize << bits) - 1;
        let wanted = pack(hash, h);
        let mut i = home(hash, bits);
        loop {
            let e = get(m, i);
            if e == 0 {
                return false;
            }
            if e == wanted {
                break;
            }
            i = (i + 1) & mask;
        }
        // Move back each later entry of the run that may sit at `i`: one
        // whose home is not in the cyclic range (i, j].
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let e = get(m, j);
            if e == 0 {
                break;
            }
            let from_home = j.wrapping_sub(home(hash_of(e), bits)) & mask;
            if from_home >= (j.wrapping_sub(i) & mask) {
                set(m, i, e);
                i = j;
            }
        }
        set(m, i, 0);
        self.len -= 1;
        true
    }

    /// Doubles the table (or makes the first one); false when it cannot.
    fn grow(&mut self) -> bool {
        let bits = if self.entries.is_none() {
            MIN_ENTRIES.ilog2()
        } else {
            self.bits + 1
        };
        if bits > 32 {
            return false;
        }
        let Some(bytes) = (1usize << bits).checked_mul(ENTRY) else {
            return false;
        };
        let Some(mut next) = Mapping::new(bytes) else {
            return false;
        };
        if let Some(old) = self.entries.as_deref() {
            for i in 0..(1usize << self.bits) {
                let e = get(old, i);
                if e != 0 {
                    place(&mut next, bits, e);
                }
            }
        }
        self.entries = Some(next);
        self.bits = bits;
        true
    }
}

/// Puts `e` in the first free entry from its home on.
fn place(m: &mut [u8], bits: u32, e: u64) {
    let mask = (1usize << bits) - 1;
    let mut i = home(hash_of(e), bits);
    while get(m, i) != 0 {
        i = (i + 1) & mask;
    }
    set(m, i, e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Inserts and removals against a `HashMap`, with hashes drawn from a
    /// small set so that runs are long and many entries share a hash: after
    /// each step every handle is found under its hash and no other.
    #[test]
    fn follows_a_map_through_collisions_growth_and_removals() {
        let mut t = IdIndex::default();
        let mut model: HashMap<Handle, u32> = HashMap::new();
        let mut rnd = super::super::tests::xorshift(99);
        let mut next: Handle = 0;
        for step in 0..20_000 {
            if model.is_empty() || rnd(5) < 3 {
                let hash = rnd(200) as u32 * 0x0100_0001;
                assert!(t.insert(hash, next));
                model.insert(next, hash);
                next += 1;
            } else {
                let h = *model.keys().next().expect("not empty");
                let hash = model[&h];
                assert!(!t.remove(hash ^ 1, h), "wrong hash");
                assert!(t.remove(hash, h));
                assert!(!t.remove(hash, h), "already gone");
                model.remove(&h);
            }
            assert_eq!(t.len(), model.len());
            if step % 97 == 0 {
                for (&h, &hash) in &model {
                    assert_eq!(t.find(hash, |c| c == h), Some(h));
                    assert_eq!(t.find(hash ^ 1, |c| c == h), None);
                }
            }
        }
        for (&h, &hash) in &model {
            assert_eq!(t.find(hash, |c| c == h), Some(h));
        }
        assert!(t.bits > MIN_ENTRIES.ilog2(), "it grew");
        assert!(t.len() * 4 <= (1 << t.bits) * 3);
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let mut t = IdIndex::default();
        assert_eq!(t.find(5, |_| true), None);
        assert!(!t.remove(5, 0));
        assert!(t.insert(5, 7));
        assert_eq!(t.find(5, |_| true), Some(7));
        assert_eq!(t.find(5, |h| h == 8), None);
    }
}
