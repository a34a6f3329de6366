use super::*;

/// A reproducible stream of numbers for the randomised tests: each call
/// gives one below its argument (xorshift64, from a non-zero `seed`).
pub(super) fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

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
