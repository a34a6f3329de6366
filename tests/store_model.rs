//! Model-based tests of `distcache::MemoryStore`.
//!
//! The model is a plain `Vec` of (id, data, expiry, insertion seq) that
//! follows the original distcache's rule, as documented in src/cache:
//! expiry = now + timeout, and a session is live while expiry > now; every
//! operation (add, get, remove, have, len) first drops every expired session
//! (expiry <= now), counting each as expired; ADD of a live id fails with
//! `Exists`; otherwise an ADD that, after that purge, finds `capacity`
//! sessions stored evicts the clamp(capacity / 30, 1, 2000) sessions with the
//! smallest (expiry, insertion order), counting them as evicted, and then
//! inserts. Sessions are listed (`Store::list`, page by page) soonest
//! expiry first, ties in insertion order, each with its size, expiry and
//! the time it was added; `data_bytes` is the sum of the live sessions'
//! data lengths.
//!
//! With a byte capacity, a session counts for the length of its id plus the
//! length of its data; an ADD (of an id not live) of a session larger than
//! the whole byte capacity fails with `Refused` and changes nothing but the
//! purge; otherwise, after the session-capacity eviction above, the ADD
//! evicts the sessions with the smallest (expiry, insertion order) one by
//! one, counting each as evicted, while the stored bytes plus the new
//! session's would exceed the byte capacity.

use distcache::internals::cache::MAX_EVICTION_BATCH;
use distcache::{AddError, DropCounts, MemoryStore, Millis, SessionInfo, Store};
use proptest::prelude::*;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ModelEntry {
    id: Vec<u8>,
    data: Vec<u8>,
    expiry: Millis,
    seq: u64,
    added: Millis,
}

#[derive(Debug, Clone)]
struct Model {
    capacity: usize,
    max_bytes: Option<u64>,
    entries: Vec<ModelEntry>,
    next_seq: u64,
    evicted: u64,
    expired: u64,
}

impl Model {
    fn new(capacity: usize) -> Model {
        Model::with_max_bytes(capacity, None)
    }

    fn with_max_bytes(capacity: usize, max_bytes: Option<u64>) -> Model {
        Model {
            capacity,
            max_bytes,
            entries: Vec::new(),
            next_seq: 0,
            evicted: 0,
            expired: 0,
        }
    }

    fn batch(&self) -> usize {
        (self.capacity / 30).clamp(1, MAX_EVICTION_BATCH)
    }

    /// Drops every session expired at `now` (and counts it): the first step
    /// of every operation.
    fn purge(&mut self, now: Millis) {
        let before = self.entries.len();
        self.entries.retain(|e| e.expiry > now);
        self.expired += (before - self.entries.len()) as u64;
    }

    /// Purges, then finds the (now necessarily live) entry for `id`.
    fn find(&mut self, now: Millis, id: &[u8]) -> Option<usize> {
        self.purge(now);
        self.entries.iter().position(|e| e.id == id)
    }

    fn add(&mut self, now: Millis, timeout: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        if self.find(now, id).is_some() {
            return Err(AddError::Exists);
        }
        let size = (id.len() + data.len()) as u64;
        if self.max_bytes.is_some_and(|max| size > max) {
            return Err(AddError::Refused);
        }
        self.entries.sort_by_key(|e| (e.expiry, e.seq));
        if self.entries.len() >= self.capacity {
            let k = self.batch().min(self.entries.len());
            self.entries.drain(..k);
            self.evicted += k as u64;
        }
        if let Some(max) = self.max_bytes {
            while self.bytes() + size > max {
                self.entries.remove(0);
                self.evicted += 1;
            }
        }
        self.entries.push(ModelEntry {
            id: id.to_vec(),
            data: data.to_vec(),
            expiry: now.saturating_add(Millis::from(timeout)),
            seq: self.next_seq,
            added: now,
        });
        self.next_seq += 1;
        Ok(())
    }

    fn get(&mut self, now: Millis, id: &[u8]) -> Option<Vec<u8>> {
        self.find(now, id).map(|i| self.entries[i].data.clone())
    }

    fn have(&mut self, now: Millis, id: &[u8]) -> bool {
        self.find(now, id).is_some()
    }

    /// A get and a remove in one step.
    fn take(&mut self, now: Millis, id: &[u8]) -> Option<Vec<u8>> {
        let i = self.find(now, id)?;
        Some(self.entries.remove(i).data)
    }

    fn remove(&mut self, now: Millis, id: &[u8]) -> bool {
        match self.find(now, id) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    fn len(&mut self, now: Millis) -> usize {
        self.purge(now);
        self.entries.len()
    }

    /// Bytes of ids and data held (no purge).
    fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| (e.id.len() + e.data.len()) as u64)
            .sum()
    }

    /// What a listing at `now` holds, in its order.
    fn listing(&mut self, now: Millis) -> Vec<SessionInfo> {
        self.purge(now);
        let mut sorted: Vec<&ModelEntry> = self.entries.iter().collect();
        sorted.sort_by_key(|e| (e.expiry, e.seq));
        sorted
            .into_iter()
            .map(|e| SessionInfo {
                id: e.id.clone(),
                size: e.data.len(),
                expiry: e.expiry,
                added: e.added,
            })
            .collect()
    }

    fn data_bytes(&mut self, now: Millis) -> u64 {
        self.purge(now);
        self.entries.iter().map(|e| e.data.len() as u64).sum()
    }

    fn drops(&self) -> DropCounts {
        DropCounts {
            evicted: self.evicted,
            expired: self.expired,
        }
    }
}

/// The whole listing of the store at `now`, `page` sessions at a time.
fn store_listing(store: &MemoryStore, now: Millis, page: usize) -> Vec<SessionInfo> {
    let mut out = Vec::new();
    let mut from = None;
    loop {
        let before = out.len();
        from = store.list(now, from, page, &mut out).expect("lists");
        assert!(out.len() - before <= page, "a page too long");
        if from.is_none() {
            return out;
        }
        assert_eq!(
            out.len() - before,
            page,
            "a short page that is not the last"
        );
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
    Take(u16),
    Len,
    Advance(Millis),
}

/// Short timeouts (0 included) so that sessions expire while the sequence
/// runs, and few distinct values so that equal expiries (ties) are common.
fn timeout() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 5 => 1u32..40, 2 => 40u32..300]
}

/// Mostly short steps of the clock, and a few long ones that expire much of
/// the store at once.
fn advance() -> impl Strategy<Value = Millis> {
    prop_oneof![4 => 0u64..5, 1 => 5u64..60]
}

fn op_with<T, A>(ids: u16, timeout: T, advance: A) -> impl Strategy<Value = Op>
where
    T: Strategy<Value = u32>,
    A: Strategy<Value = Millis>,
{
    op_with_data(ids, timeout, advance, 6)
}

/// As [`op_with`], with session data of 0 to `max_data - 1` bytes.
fn op_with_data<T, A>(
    ids: u16,
    timeout: T,
    advance: A,
    max_data: usize,
) -> impl Strategy<Value = Op>
where
    T: Strategy<Value = u32>,
    A: Strategy<Value = Millis>,
{
    prop_oneof![
        5 => (0..ids, timeout, 0usize..max_data)
            .prop_map(|(id, timeout, data_len)| Op::Add { id, timeout, data_len }),
        2 => (0..ids).prop_map(Op::Get),
        1 => (0..ids).prop_map(Op::Remove),
        1 => (0..ids).prop_map(Op::Have),
        1 => (0..ids).prop_map(Op::Take),
        1 => Just(Op::Len),
        2 => advance.prop_map(Op::Advance),
    ]
}

fn op(ids: u16) -> impl Strategy<Value = Op> {
    op_with(ids, timeout(), advance())
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
    run_against_model_with_bytes(cap, None, ops)
}

/// [`run_against_model`] for a store that also has a byte capacity (when
/// `max_bytes` is given); the stored bytes are compared too.
fn run_against_model_with_bytes(
    cap: usize,
    max_bytes: Option<u64>,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let store = MemoryStore::with_max_bytes(cap, max_bytes);
    prop_assert_eq!(store.capacity(), cap);
    prop_assert_eq!(store.max_bytes(), max_bytes);
    prop_assert_eq!(
        store.eviction_batch(),
        (cap / 30).clamp(1, MAX_EVICTION_BATCH)
    );
    let mut model = Model::with_max_bytes(cap, max_bytes);
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
            Op::Take(id) => {
                let id = id_bytes(id);
                let mut out = Vec::new();
                let taken = store.take_into(now, &id, &mut out).then_some(out);
                prop_assert_eq!(taken, model.take(now, &id), "step {}", step);
            }
            Op::Len => {
                prop_assert_eq!(store.is_empty(now), model.len(now) == 0, "step {}", step);
            }
            Op::Advance(dt) => {
                // No check here: the next operation is the first to see the
                // new time, so it is the one that must purge.
                now += dt;
                continue;
            }
        }
        // The operation itself, before `len` purges anything.
        prop_assert_eq!(
            store.drop_counts(),
            model.drops(),
            "drops after step {} {:?}",
            step,
            op
        );
        prop_assert_eq!(
            store.len(now),
            model.len(now),
            "len after step {} {:?}",
            step,
            op
        );
        prop_assert!(store.len(now) <= cap);
        prop_assert_eq!(store.bytes(now), model.bytes(), "bytes after step {}", step);
        if let Some(max) = max_bytes {
            prop_assert!(store.bytes(now) <= max);
        }
        prop_assert_eq!(
            store_listing(&store, now, step % 7 + 1),
            model.listing(now),
            "listing after step {} {:?}",
            step,
            op
        );
        prop_assert_eq!(store.data_bytes(now), Some(model.data_bytes(now)));
        prop_assert_eq!(
            store.drop_counts(),
            model.drops(),
            "drops after len after step {} {:?}",
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
    /// with timeouts long enough for the store to fill up, so that batch
    /// eviction alternates with purges of expired sessions (which, when they
    /// free a place, spare the live ones); the long timeouts are whole tenths
    /// of a second and the clock mostly creeps, so that evictions meet ties.
    #[test]
    fn memory_store_matches_model_batch_eviction(
        (cap, ops) in (60usize..=100).prop_flat_map(|cap| {
            let timeout = prop_oneof![
                1 => Just(0u32),
                2 => 1u32..40,
                5 => (3u32..30).prop_map(|t| t * 100),
            ];
            let advance = prop_oneof![6 => 0u64..3, 1 => 3u64..40];
            let op = op_with((cap * 2) as u16, timeout, advance);
            (Just(cap), prop::collection::vec(op, 500..1500))
        })
    ) {
        run_against_model(cap, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// A byte capacity as well as a session capacity: ids of 4 to 8 bytes
    /// and data of 0 to 39, against byte capacities from below one session
    /// (every ADD refused) to above what the session capacity allows (only
    /// the session capacity evicts), so that either limit, or both, evicts.
    #[test]
    fn memory_store_matches_model_byte_capacity(
        (cap, max_bytes, ops) in (1usize..=40, 1u64..=600).prop_flat_map(|(cap, max_bytes)| {
            let ids = (cap * 3 + 4) as u16;
            let op = op_with_data(ids, timeout(), advance(), 40);
            (Just(cap), Just(max_bytes), prop::collection::vec(op, 1..300))
        })
    ) {
        run_against_model_with_bytes(cap, Some(max_bytes), &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Long lifetimes, so that the store fills and the byte capacity, not
    /// expiry, makes the room; session capacity out of the way.
    #[test]
    fn memory_store_matches_model_byte_eviction(
        (max_bytes, ops) in (20u64..=400).prop_flat_map(|max_bytes| {
            let timeout = prop_oneof![1 => 1u32..40, 5 => (3u32..30).prop_map(|t| t * 100)];
            let advance = prop_oneof![6 => 0u64..3, 1 => 3u64..40];
            let op = op_with_data(200, timeout, advance, 40);
            (Just(max_bytes), prop::collection::vec(op, 100..600))
        })
    ) {
        run_against_model_with_bytes(1_000, Some(max_bytes), &ops)?;
    }
}

// ---------------------------------------------------------------------------
// Targeted cases (FACTS.md section 2)
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
/// (ids 0..=16); a store of fewer than 60 evicts 1.
#[test]
fn eviction_drops_soonest_expiring_batch() {
    for (cap, batch) in [
        (64usize, 2u16),
        (100, 3),
        (512, 17),
        (10, 1),
        (1, 1),
        (30, 1),
        (59, 1),
        (60, 2),
        (89, 2),
        (90, 3),
    ] {
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

/// Ties on expiry are broken by when the session was added, not by its id
/// or its timeout: id 0, removed and added again later with the same expiry
/// (a shorter timeout from a later time), is the youngest of the tie.
#[test]
fn eviction_ties_follow_insertion_order() {
    let store = filled(64, |_| 60_000);
    assert!(store.remove(10, &id_bytes(0)));
    store.add(10, 59_990, &id_bytes(0), b"again").unwrap();
    assert_eq!(store.len(10), 64);
    store.add(10, 60_000, &id_bytes(64), b"new").unwrap();
    let want: Vec<u16> = [0].into_iter().chain(3..=64).collect();
    assert_eq!(present(&store, 10, 0..65), want);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 2,
            expired: 0
        }
    );
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

/// Expired sessions are purged before the ADD looks at the size of the
/// store: three expired sessions leave room, and no live one is evicted.
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

/// A single expired session is enough: its purge leaves the store below
/// capacity, so the ADD evicts nothing even though the batch is 2. The next
/// ADD finds the store full of live sessions and evicts a whole batch.
#[test]
fn full_store_with_one_expired_session_evicts_nothing() {
    let store = filled(64, |id| if id == 40 { 10 } else { 1_000 + u32::from(id) });
    store.add(50, 10_000, &id_bytes(64), b"new").unwrap();
    let want: Vec<u16> = (0..65).filter(|&id| id != 40).collect();
    assert_eq!(present(&store, 50, 0..65), want);
    assert_eq!(store.len(50), 64);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired: 1
        }
    );
    store.add(50, 10_000, &id_bytes(65), b"new").unwrap();
    let want: Vec<u16> = (2..66).filter(|&id| id != 40).collect();
    assert_eq!(present(&store, 50, 0..66), want);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 2,
            expired: 1
        }
    );
}

/// Adding a live id is refused and, even in a full store, changes nothing
/// but the purge; adding an id whose session expired stores the new one
/// without any eviction.
#[test]
fn add_over_live_and_expired_ids() {
    let store = filled(64, |id| if id == 7 { 5 } else { 1_000 });
    assert_eq!(
        store.add(4, 1_000, &id_bytes(8), b"other"),
        Err(AddError::Exists)
    );
    assert_eq!(store.len(4), 64);
    assert_eq!(store.drop_counts(), DropCounts::default());
    // At 5 the refused ADD still purges id 7, which it did not touch.
    assert_eq!(
        store.add(5, 1_000, &id_bytes(8), b"other"),
        Err(AddError::Exists)
    );
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired: 1
        }
    );
    assert_eq!(
        store_get(&store, 5, &id_bytes(8)).as_deref(),
        Some(&b"data"[..])
    );
    assert!(!store.have(5, &id_bytes(7)));
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

/// Every operation, whatever id it names, first purges every expired
/// session: `a` expires at 10 and `b` at 20, and each kind of operation on
/// another id drops (and counts) them at those times, and only then.
#[test]
fn every_operation_purges_all_expired() {
    type Operation = fn(&MemoryStore, Millis);
    let operations: [(&str, Operation); 6] = [
        ("add", |s, now| {
            let id = format!("other-{now}").into_bytes();
            s.add(now, 1_000, &id, b"x").unwrap();
        }),
        ("add of a live id", |s, now| {
            assert_eq!(s.add(now, 1_000, b"c", b"y"), Err(AddError::Exists));
        }),
        ("get_into", |s, now| {
            assert_eq!(store_get(s, now, b"other"), None)
        }),
        ("remove", |s, now| assert!(!s.remove(now, b"other"))),
        ("have", |s, now| assert!(!s.have(now, b"other"))),
        ("len", |s, now| {
            let live = match now {
                ..10 => 3,
                10..20 => 2,
                _ => 1,
            };
            assert_eq!(s.len(now), live);
        }),
    ];
    for (name, operation) in operations {
        let store = MemoryStore::new(64);
        store.add(0, 10, b"a", b"x").unwrap();
        store.add(0, 20, b"b", b"x").unwrap();
        store.add(0, 1_000, b"c", b"x").unwrap();
        for (now, expired) in [(9, 0), (10, 1), (19, 1), (20, 2), (25, 2)] {
            operation(&store, now);
            assert_eq!(
                store.drop_counts(),
                DropCounts {
                    evicted: 0,
                    expired
                },
                "{name} at {now}"
            );
        }
        assert_eq!(store_get(&store, 25, b"c").as_deref(), Some(&b"x"[..]));
    }
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

/// A store of 100 bytes full of ten 10-byte sessions (4-byte ids, 6 bytes
/// of data) whose timeouts increase with the id: a 29-byte newcomer (5-byte
/// id) evicts the three that expire soonest (70 + 29 <= 100), and no more.
#[test]
fn byte_capacity_evicts_soonest_expiring_until_the_session_fits() {
    let store = MemoryStore::with_max_bytes(1_000, Some(100));
    for id in 0..10u16 {
        store
            .add(0, 1_000 + u32::from(id), &id_bytes(id), b"sixsix")
            .unwrap();
    }
    assert_eq!(store.bytes(0), 100);
    store.add(1, 5_000, &id_bytes(10), &[7; 24]).unwrap();
    assert_eq!(present(&store, 1, 0..11), (3..=10).collect::<Vec<_>>());
    assert_eq!(store.bytes(1), 99);
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 3,
            expired: 0
        }
    );
}

/// A session larger than the whole byte capacity is refused and evicts
/// nothing; one exactly as large evicts everything else and is stored.
#[test]
fn byte_capacity_refuses_a_session_larger_than_itself() {
    let store = MemoryStore::with_max_bytes(1_000, Some(100));
    store.add(0, 1_000, b"a", b"x").unwrap();
    store.add(0, 2_000, b"b", b"y").unwrap();
    assert_eq!(
        store.add(0, 1_000, b"big", &[0; 98]),
        Err(AddError::Refused)
    );
    assert_eq!(store.len(0), 2);
    assert_eq!(store.bytes(0), 4);
    assert_eq!(store.drop_counts(), DropCounts::default());
    store.add(0, 1_000, b"fit", &[0; 97]).unwrap();
    assert_eq!(present(&store, 0, 0..1), Vec::<u16>::new());
    assert!(!store.have(0, b"a") && !store.have(0, b"b") && store.have(0, b"fit"));
    assert_eq!(store.bytes(0), 100);
    assert_eq!(store.drop_counts().evicted, 2);
    // An id already stored is reported as such, whatever its size.
    assert_eq!(
        store.add(0, 1_000, b"fit", &[0; 500]),
        Err(AddError::Exists)
    );
}

/// Removal and expiry give their bytes back; the session capacity still
/// evicts its batch first, and the byte capacity then only what it must.
#[test]
fn byte_capacity_follows_removal_expiry_and_the_session_capacity() {
    let store = MemoryStore::with_max_bytes(60, Some(1_000));
    for id in 0..60u16 {
        let timeout = if id == 0 { 10 } else { 1_000 + u32::from(id) };
        store.add(0, timeout, &id_bytes(id), &[1; 10]).unwrap();
    }
    let full: u64 = (0..60u16).map(|id| id_bytes(id).len() as u64 + 10).sum();
    assert_eq!(store.bytes(0), full);
    assert!(store.remove(0, &id_bytes(59)));
    assert_eq!(store.bytes(0), full - 15);
    assert_eq!(store.bytes(10), full - 15 - 14, "id 0 expired");
    assert_eq!(store.drop_counts().expired, 1);
    // 58 live sessions; two more fill the session capacity.
    store.add(10, 5_000, b"x1", &[2; 10]).unwrap();
    store.add(10, 5_000, b"x2", &[2; 10]).unwrap();
    assert_eq!(store.len(10), 60);
    assert_eq!(store.drop_counts().evicted, 0);
    // Full: the batch of 2 (ids 1 and 2) goes; then 200 more bytes need
    // the byte capacity to evict the next soonest-expiring ones too.
    let before = store.bytes(10);
    store.add(10, 5_000, b"large", &[3; 195]).unwrap();
    let evicted = store.drop_counts().evicted;
    assert!(evicted > 2, "only the batch was evicted");
    assert!(store.bytes(10) <= 1_000);
    // Before the last eviction the newcomer did not fit.
    assert!(store.bytes(10) + 15 > 1_000, "evicted more than it had to");
    assert!(!store.have(10, &id_bytes(1)) && !store.have(10, &id_bytes(2)));
    let gone: Vec<u16> = (1..59u16)
        .filter(|&id| !store.have(10, &id_bytes(id)))
        .collect();
    assert_eq!(gone, (1..=evicted as u16).collect::<Vec<_>>());
    assert_eq!(store.bytes(10), before - 14 * evicted + 200);
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

/// A small linear congruential generator: the tests' deterministic "random"
/// numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// 8 threads share one store (large enough never to evict), each working on
/// its own ids with its own model. Since every operation purges every
/// expired session, whoever's it is, the threads share one clock: they run
/// in phases, separated by a barrier, all at the same `now`, which moves
/// forward between phases. Every result matches that thread's model, the
/// store holds at least that thread's live sessions, and in the end the live
/// count and the expired counter are the sums of the models'.
#[test]
fn concurrent_disjoint_ids_match_per_thread_models() {
    const THREADS: usize = 8;
    const PHASES: u64 = 2_500;
    const OPS_PER_PHASE: u64 = 8;
    let store = Arc::new(MemoryStore::new(1_000_000));
    let barrier = Arc::new(Barrier::new(THREADS));
    let failed = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                let mut model = Model::new(1_000_000);
                let mut rng = Lcg(0x5eed_0000 + t as u64);
                // The same sequence of clock steps in every thread.
                let mut clock = Lcg(0xc10c);
                let mut now: Millis = 1;
                for phase in 0..PHASES {
                    let ops = panic::catch_unwind(AssertUnwindSafe(|| {
                        for i in 0..OPS_PER_PHASE {
                            let step = phase * OPS_PER_PHASE + i;
                            let id = format!("t{t}-{}", rng.next() % 200).into_bytes();
                            match rng.next() % 6 {
                                0 | 1 => {
                                    let timeout = (rng.next() % 50) as u32;
                                    let data = step.to_le_bytes();
                                    let got = store.add(now, timeout, &id, &data);
                                    assert_eq!(got, model.add(now, timeout, &id, &data));
                                }
                                2 => assert_eq!(store_get(&store, now, &id), model.get(now, &id)),
                                3 => assert_eq!(store.remove(now, &id), model.remove(now, &id)),
                                4 => assert_eq!(store.have(now, &id), model.have(now, &id)),
                                _ => assert!(store.len(now) >= model.len(now)),
                            }
                        }
                    }));
                    // A failing thread still meets the others at the barrier,
                    // so that they stop there too instead of waiting forever.
                    if let Err(failure) = ops {
                        failed.store(true, Ordering::SeqCst);
                        barrier.wait();
                        panic::resume_unwind(failure);
                    }
                    barrier.wait();
                    if failed.load(Ordering::SeqCst) {
                        return None;
                    }
                    now += clock.next() % 5;
                }
                let live = model.len(now);
                Some((model, live, now))
            })
        })
        .collect();
    let mut results: Vec<(Model, usize, Millis)> = Vec::new();
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(result) => results.extend(result),
            Err(e) => failure = Some(e),
        }
    }
    if let Some(failure) = failure {
        panic::resume_unwind(failure);
    }
    assert_eq!(results.len(), THREADS);
    let now = results[0].2;
    assert!(results.iter().all(|r| r.2 == now));
    let live: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(store.len(now), live);
    let expired: u64 = results.iter().map(|r| r.0.expired).sum();
    assert_eq!(
        store.drop_counts(),
        DropCounts {
            evicted: 0,
            expired
        }
    );
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
