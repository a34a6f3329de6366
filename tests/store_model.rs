//! Model-based tests of `distcache::cache::MemoryStore`.
//!
//! The model is a plain `Vec` of (id, data, expiry, insertion seq) that
//! follows the semantics documented in src/cache: expiry = now + timeout; a
//! session is live while expiry > now and never returned once expired (an
//! expired session touched by an operation is dropped and counted as
//! expired); ADD of a live id fails with `Exists`, ADD of an expired id
//! replaces it; an ADD that finds `capacity` entries stored (expired ones
//! count until purged) drops every expired entry and, if that freed fewer
//! than max(capacity / 30, 1) places, evicts the live entries with the
//! smallest (expiry, insertion order) until that many places were freed.

use distcache::cache::{AddError, DropCounts, MemoryStore, Millis, Store};
use proptest::prelude::*;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ModelEntry {
    id: Vec<u8>,
    data: Vec<u8>,
    expiry: Millis,
    seq: u64,
}

#[derive(Debug, Clone)]
struct Model {
    capacity: usize,
    entries: Vec<ModelEntry>,
    next_seq: u64,
    evicted: u64,
    expired: u64,
}

impl Model {
    fn new(capacity: usize) -> Model {
        Model {
            capacity,
            entries: Vec::new(),
            next_seq: 0,
            evicted: 0,
            expired: 0,
        }
    }

    fn batch(&self) -> usize {
        (self.capacity / 30).max(1)
    }

    /// The live entry for `id`; an expired one is dropped (and counted).
    fn live(&mut self, now: Millis, id: &[u8]) -> Option<usize> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        if self.entries[i].expiry > now {
            return Some(i);
        }
        self.entries.remove(i);
        self.expired += 1;
        None
    }

    fn add(&mut self, now: Millis, timeout: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        if self.live(now, id).is_some() {
            return Err(AddError::Exists);
        }
        if self.entries.len() >= self.capacity {
            let before = self.entries.len();
            self.entries.retain(|e| e.expiry > now);
            let freed = before - self.entries.len();
            self.expired += freed as u64;
            if freed < self.batch() {
                let need = (self.batch() - freed).min(self.entries.len());
                self.entries.sort_by_key(|e| (e.expiry, e.seq));
                self.entries.drain(..need);
                self.evicted += need as u64;
            }
        }
        self.entries.push(ModelEntry {
            id: id.to_vec(),
            data: data.to_vec(),
            expiry: now + Millis::from(timeout),
            seq: self.next_seq,
        });
        self.next_seq += 1;
        Ok(())
    }

    fn get(&mut self, now: Millis, id: &[u8]) -> Option<Vec<u8>> {
        self.live(now, id).map(|i| self.entries[i].data.clone())
    }

    fn have(&mut self, now: Millis, id: &[u8]) -> bool {
        self.live(now, id).is_some()
    }

    fn remove(&mut self, now: Millis, id: &[u8]) -> bool {
        match self.live(now, id) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    fn len(&self, now: Millis) -> usize {
        self.entries.iter().filter(|e| e.expiry > now).count()
    }

    fn drops(&self) -> DropCounts {
        DropCounts {
            evicted: self.evicted,
            expired: self.expired,
        }
    }
}

/// `get_into` through the store, checking that it appends to what the
/// buffer held and leaves it untouched on a miss.
fn store_get(store: &MemoryStore, now: Millis, id: &[u8]) -> Option<Vec<u8>> {
    let prefix = b"prefix:";
    let mut out = prefix.to_vec();
    let hit = store.get_into(now, id, &mut out);
    assert!(out.starts_with(prefix), "get_into clobbered the buffer");
    if hit {
        Some(out[prefix.len()..].to_vec())
    } else {
        assert_eq!(out, prefix, "get_into wrote on a miss");
        None
    }
}

fn id_bytes(n: u16) -> Vec<u8> {
    format!("id-{n}").into_bytes()
}

// ---------------------------------------------------------------------------
// Random operation sequences against the model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Add {
        id: u16,
        timeout: u32,
        data_len: usize,
    },
    Get(u16),
    Remove(u16),
    Have(u16),
    Len,
    Advance(Millis),
}

/// Short timeouts (0 included) so that sessions expire while the sequence
/// runs, and few distinct values so that equal expiries (ties) are common.
fn timeout() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 5 => 1u32..40, 2 => 40u32..300]
}

fn op(ids: u16) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..ids, timeout(), 0usize..6)
            .prop_map(|(id, timeout, data_len)| Op::Add { id, timeout, data_len }),
        2 => (0..ids).prop_map(Op::Get),
        1 => (0..ids).prop_map(Op::Remove),
        1 => (0..ids).prop_map(Op::Have),
        1 => Just(Op::Len),
        2 => prop_oneof![4 => 0u64..5, 1 => 5u64..60].prop_map(Op::Advance),
    ]
}

/// (capacity, operations): small capacities, and an id space from a few ids
/// (many collisions) up to about three times the capacity (a full store).
fn scenario(max_ops: usize) -> impl Strategy<Value = (usize, Vec<Op>)> {
    prop_oneof![1 => 1usize..=5, 3 => 1usize..=100].prop_flat_map(move |cap| {
        let max_ids = (cap * 3 + 4).min(u16::MAX as usize) as u16;
        (Just(cap), 1u16..=max_ids).prop_flat_map(move |(cap, ids)| {
            (Just(cap), prop::collection::vec(op(ids), 1..max_ops))
        })
    })
}

/// Runs `ops` on a fresh store and the model, comparing every result, the
/// live count and the drop counters after every operation, and finally every
/// id's presence and data.
fn run_against_model(cap: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = MemoryStore::new(cap);
    prop_assert_eq!(store.capacity(), cap);
    prop_assert_eq!(store.eviction_batch(), (cap / 30).max(1));
    let mut model = Model::new(cap);
    let mut now: Millis = 1_000;
    let mut max_id = 0u16;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Add {
                id,
                timeout,
                data_len,
            } => {
                max_id = max_id.max(id);
                let id = id_bytes(id);
                let data = vec![(step % 251) as u8; data_len];
                let got = store.add(now, timeout, &id, &data);
                prop_assert_eq!(
                    got,
                    model.add(now, timeout, &id, &data),
                    "step {} {:?}",
                    step,
                    op
                );
            }
            Op::Get(id) => {
                let id = id_bytes(id);
                prop_assert_eq!(
                    store_get(&store, now, &id),
                    model.get(now, &id),
                    "step {}",
                    step
                );
            }
            Op::Remove(id) => {
                let id = id_bytes(id);
                prop_assert_eq!(
                    store.remove(now, &id),
                    model.remove(now, &id),
                    "step {}",
                    step
                );
            }
            Op::Have(id) => {
                let id = id_bytes(id);
                prop_assert_eq!(store.have(now, &id), model.have(now, &id), "step {}", step);
            }
            Op::Len => {
                prop_assert_eq!(store.is_empty(now), model.len(now) == 0, "step {}", step);
            }
            Op::Advance(dt) => now += dt,
        }
        prop_assert_eq!(
            store.len(now),
            model.len(now),
            "len after step {} {:?}",
            step,
            op
        );
        prop_assert!(store.len(now) <= cap);
        prop_assert_eq!(
            store.drop_counts(),
            model.drops(),
            "drops after step {} {:?}",
            step,
            op
        );
    }
    for id in 0..=max_id {
        let id = id_bytes(id);
        prop_assert_eq!(store_get(&store, now, &id), model.get(now, &id));
    }
    prop_assert_eq!(store.drop_counts(), model.drops());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Random add/get/remove/have/len sequences with time moving forward give
    /// exactly the model's results, live counts and drop counters.
    #[test]
    fn memory_store_matches_model((cap, ops) in scenario(300)) {
        run_against_model(cap, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Longer runs on capacities whose eviction batch is 2 or 3 (60..=100),
    /// so that batch eviction mixes with partially expired stores.
    #[test]
    fn memory_store_matches_model_batch_eviction(
        (cap, ops) in (60usize..=100).prop_flat_map(|cap| {
            (Just(cap), prop::collection::vec(op((cap * 2) as u16), 500..1500))
        })
    ) {
        run_against_model(cap, &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Targeted eviction cases (FACTS.md section 2)
// ---------------------------------------------------------------------------

/// Fills a store of `cap` with ids 0..cap at time 0, timeout `timeout(id)`.
fn filled(cap: usize, timeout: impl Fn(u16) -> u32) -> MemoryStore {
    let store = MemoryStore::new(cap);
    for id in 0..cap as u16 {
        store.add(0, timeout(id), &id_bytes(id), b"data").unwrap();
    }
    assert_eq!(store.len(0), cap);
    assert_eq!(store.drop_counts(), DropCounts::default());
    store
}

fn present(store: &MemoryStore, now: Millis, ids: std::ops::Range<u16>) -> Vec<u16> {
    ids.filter(|&id| store.have(now, &id_bytes(id))).collect()
}

/// A full store of 64 whose timeouts increase with the id: one more ADD
/// evicts exactly ids 0 and 1 (64 / 30 = 2); 100 evicts 3; 512 evicts 17
/// (ids 0..=16); a store of fewer than 30 evicts 1.
#[test]
fn eviction_drops_soonest_expiring_batch() {
    for (cap, batch) in [(64usize, 2u16), (100, 3), (512, 17), (10, 1), (1, 1)] {
        let store = filled(cap, |id| 1_000 + u32::from(id) * 10);
        let newcomer = cap as u16;
        store.add(1, 5_000, &id_bytes(newcomer), b"new").unwrap();
        let want: Vec<u16> = (batch..=newcomer).collect();
        assert_eq!(present(&store, 1, 0..newcomer + 1), want, "capacity {cap}");
        assert_eq!(store.len(1), cap - usize::from(batch) + 1);
        assert_eq!(
            store.drop_counts(),
            DropCounts {
                evicted: u64::from(batch),
                expired: 0
            }
        );
    }
}

/// With equal timeouts the oldest entries go first.
#[test]
fn eviction_ties_go_oldest_first() {
    let store = filled(64, |_| 60_000);
    store.add(0, 60_000, &id_bytes(64), b"new").unwrap();
    assert_eq!(present(&store, 0, 0..65), (2..=64).collect::<Vec<_>>());
    // And again: the next oldest, 2 and 3 (the newcomer is younger).
    store.add(0, 60_000, &id_bytes(65), b"new").unwrap();
    store.add(0, 60_000, &id_bytes(66), b"new").unwrap();
    assert_eq!(present(&store, 0, 0..67), (4..=66).collect::<Vec<_>>());
    assert_eq!(store.drop_counts().evicted, 4);
}

/// With timeouts decreasing with the id, the soonest-expiring entries are
/// the last ids added (62 and 63), as observed on the original.
#[test]
fn eviction_with_decreasing_timeouts_drops_last_ids() {
    let store = filled(64, |id| 100_000 - u32::from(id) * 10);
    store.add(0, 100_000, &id_bytes(64), b"new").unwrap();
    let want: Vec<u16> = (0..62).chain([64]).collect();
    assert_eq!(present(&store, 0, 0..65), want);
}

/// When the store is full, expired entries are purged first; when they free
/// at least a batch, no live session is evicted.
#[test]
fn full_store_purges_expired_before_evicting() {
    let store = filled(64, |id| if id % 20 == 5 { 10 } else { 10_000 });
    // ids 5, 25, 45 expire at 10.
    store.add(50, 10_000, &id_bytes(64), b"new").unwrap();
    let want: Vec<u16> = (0..65).filter(|id| id % 20 != 5).collect();
    assert_eq!(present(&store, 50, 0..65), want);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired: 3
        }
    );
    assert_eq!(store.len(50), 62);
}

/// One expired entry frees fewer places than the batch of 2: the remaining
/// place comes from the soonest-expiring live session.
#[test]
fn full_store_tops_up_expired_purge_with_eviction() {
    let store = filled(64, |id| if id == 40 { 10 } else { 1_000 + u32::from(id) });
    store.add(50, 10_000, &id_bytes(64), b"new").unwrap();
    let want: Vec<u16> = (1..65).filter(|&id| id != 40).collect();
    assert_eq!(present(&store, 50, 0..65), want);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 1,
            expired: 1
        }
    );
}

/// Adding an id whose session expired replaces it without any eviction,
/// even in a full store; adding a live id is refused and changes nothing.
#[test]
fn add_over_expired_id_replaces_it() {
    let store = filled(64, |id| if id == 7 { 5 } else { 1_000 });
    assert_eq!(
        store.add(5, 1_000, &id_bytes(8), b"other"),
        Err(AddError::Exists)
    );
    assert_eq!(
        store_get(&store, 5, &id_bytes(8)).as_deref(),
        Some(&b"data"[..])
    );
    store.add(5, 1_000, &id_bytes(7), b"again").unwrap();
    assert_eq!(
        store_get(&store, 5, &id_bytes(7)).as_deref(),
        Some(&b"again"[..])
    );
    assert_eq!(store.len(5), 64);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired: 1
        }
    );
}

/// Expiry is exact to the millisecond: a session added at t with timeout d
/// is live at t + d - 1 and gone at t + d; timeout 0 is never live.
#[test]
fn expiry_boundary() {
    let store = MemoryStore::new(64);
    store.add(100, 1_000, b"a", b"x").unwrap();
    store.add(100, 0, b"zero", b"x").unwrap();
    assert!(!store.have(100, b"zero"));
    assert!(store.have(1_099, b"a"));
    assert_eq!(store.len(1_099), 1);
    assert_eq!(store.len(1_100), 0);
    assert!(store_get(&store, 1_100, b"a").is_none());
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired: 2
        }
    );
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// 8 threads share one store (large enough never to evict), each working on
/// its own ids with its own clock and its own model: every result matches
/// that thread's model, and in the end the expired counter is the sum of
/// the models' and the store holds exactly the models' entries.
#[test]
fn concurrent_disjoint_ids_match_per_thread_models() {
    const THREADS: u64 = 8;
    let store = Arc::new(MemoryStore::new(1_000_000));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut model = Model::new(1_000_000);
                let mut seed = 0x5eed_0000 + t;
                let mut next = move || {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    seed >> 33
                };
                let mut now: Millis = 1;
                for step in 0..20_000u64 {
                    let id = format!("t{t}-{}", next() % 200).into_bytes();
                    match next() % 6 {
                        0 | 1 => {
                            let timeout = (next() % 50) as u32;
                            let data = step.to_le_bytes();
                            let got = store.add(now, timeout, &id, &data);
                            assert_eq!(got, model.add(now, timeout, &id, &data));
                        }
                        2 => assert_eq!(store_get(&store, now, &id), model.get(now, &id)),
                        3 => assert_eq!(store.remove(now, &id), model.remove(now, &id)),
                        4 => assert_eq!(store.have(now, &id), model.have(now, &id)),
                        _ => now += next() % 5,
                    }
                }
                model
            })
        })
        .collect();
    let models: Vec<Model> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let expired: u64 = models.iter().map(|m| m.expired).sum();
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired
        }
    );
    // At time 0 every stored entry with a non-zero timeout counts as live.
    let stored: usize = models
        .iter()
        .map(|m| m.entries.iter().filter(|e| e.expiry > 0).count())
        .sum();
    assert_eq!(store.len(0), stored);
}

/// 8 threads add distinct ids into a small shared store (capacity 64) and
/// remove some of their own: the live count never exceeds the capacity, a
/// hit always returns the data that thread stored, and every successful add
/// is accounted for: stored + evicted + removed.
#[test]
fn concurrent_adds_into_small_store_conserve_sessions() {
    const THREADS: u32 = 8;
    const ADDS: u32 = 3_000;
    let store = Arc::new(MemoryStore::new(64));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut removed = 0u64;
                for i in 0..ADDS {
                    let id = format!("t{t}-{i}").into_bytes();
                    let data = format!("data-{t}-{i}").into_bytes();
                    store.add(0, 60_000, &id, &data).unwrap();
                    assert!(store.len(0) <= 64);
                    if let Some(got) = store_get(&store, 0, &id) {
                        assert_eq!(got, data);
                    }
                    if i % 3 == 0 {
                        let old = format!("t{t}-{}", i / 2).into_bytes();
                        if store.remove(0, &old) {
                            removed += 1;
                        }
                    }
                }
                removed
            })
        })
        .collect();
    let removed: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let counts = store.drop_counts();
    assert_eq!(counts.expired, 0);
    assert_eq!(
        u64::from(THREADS * ADDS),
        store.len(0) as u64 + counts.evicted + removed,
        "sessions lost or duplicated"
    );
}
