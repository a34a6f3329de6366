//! The durable store in one process: what survives a close and reopen,
//! damage, compaction, the lock, and the writer's handling of a queue that
//! overflowed. (tests/durable.rs runs it in real dc_server processes.)

use super::files::{create_new_log, Paths};
use super::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn options(capacity: usize, sync: SyncMode) -> DurableOptions {
    DurableOptions {
        capacity,
        max_bytes: None,
        sync,
        queue_limit: DEFAULT_QUEUE_LIMIT,
        log: Logger::new(|_| {}),
    }
}

fn fast() -> SyncMode {
    SyncMode::Interval(Duration::from_millis(5))
}

fn data_for(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

fn get(store: &dyn Store, now: Millis, id: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    store.get_into(now, id, &mut out).then_some(out)
}

fn open(dir: &Path, capacity: usize) -> (DurableStore, LoadReport) {
    DurableStore::open(dir, options(capacity, fast())).expect("open store")
}

#[test]
fn sessions_survive_a_reopen_byte_exact_with_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = open(dir.path(), 1000);
    assert_eq!(report.sessions, 0);
    let added = Instant::now();
    for i in 0..100 {
        let id = format!("session-{i}");
        store
            .add(0, 60_000, id.as_bytes(), &data_for(i, i * 37 % 3000))
            .unwrap();
    }
    store.add(0, 300, b"short", b"lives 300 ms").unwrap();
    for i in 0..10 {
        assert!(store.remove(0, format!("session-{i}").as_bytes()));
    }
    assert!(store.close(Duration::from_secs(10)));
    drop(store);
    std::thread::sleep(Duration::from_millis(400));

    let (store, report) = open(dir.path(), 1000);
    assert_eq!(
        (report.sessions, report.expired, report.corrupt),
        (90, 1, 0)
    );
    for i in 0..100 {
        let id = format!("session-{i}");
        let want = (i >= 10).then(|| data_for(i, i * 37 % 3000));
        assert_eq!(get(&store, 0, id.as_bytes()), want, "{id}");
    }
    assert_eq!(get(&store, 0, b"short"), None);
    // The memory clock starts at the reopen: a session added with 60 s
    // has 60 s less the time since it was added.
    let left = 60_000 - added.elapsed().as_millis() as u64;
    assert!(store.have(left.saturating_sub(500), b"session-50"));
    assert!(!store.have(left + 500, b"session-50"));
}

#[test]
fn one_process_at_a_time_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 10);
    let err = DurableStore::open(dir.path(), options(10, fast())).unwrap_err();
    assert!(
        matches!(err, DurableError::InUse { pid: Some(p), .. } if p == std::process::id()),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    assert!(matches!(
        OfflineStore::open(dir.path()),
        Err(DurableError::InUse { .. })
    ));
    drop(store);
    let (_again, _) = open(dir.path(), 10);
}

#[test]
fn under_sync_always_an_acknowledged_add_is_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = DurableStore::open(dir.path(), options(10_000, SyncMode::Always)).unwrap();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let id = format!("t{t}-{i}");
                    store
                        .add(0, 60_000, id.as_bytes(), &data_for(i, 200))
                        .unwrap();
                    // Read the log through a file of our own: the record
                    // is there once the ADD returns.
                    let log = std::fs::File::open(dir.join(LOG_FILE)).unwrap();
                    let found = replay(&log).unwrap();
                    assert!(found.sessions.contains_key(id.as_bytes()), "{id}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Offsets of `needle` in the log of `dir`.
fn find_in_log(dir: &Path, needle: &[u8]) -> Vec<usize> {
    let log = std::fs::read(dir.join(LOG_FILE)).unwrap();
    log.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_damaged_record_is_discarded_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 100);
    let data = |i: u8| vec![i; 1000];
    for i in 1..=3u8 {
        store.add(0, 60_000, &[b'a', i], &data(i)).unwrap();
    }
    drop(store);
    // Cut the second session's record in half: its second half is
    // overwritten with zeros.
    let at = find_in_log(dir.path(), &data(2))[0];
    let mut log = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    log[at + 500..at + 1000].fill(0);
    std::fs::write(dir.path().join(LOG_FILE), &log).unwrap();

    let (store, report) = open(dir.path(), 100);
    assert_eq!((report.sessions, report.corrupt), (2, 1), "{report}");
    assert!(report.rewritten);
    assert_eq!(get(&store, 0, b"a\x01"), Some(data(1)));
    assert_eq!(get(&store, 0, b"a\x02"), None);
    assert_eq!(get(&store, 0, b"a\x03"), Some(data(3)));
    drop(store);
    // The rewritten log holds no damage any more.
    let (_store, report) = open(dir.path(), 100);
    assert_eq!((report.sessions, report.corrupt), (2, 0), "{report}");
}

#[test]
fn a_torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 100);
    store.add(0, 60_000, b"whole", b"whole session").unwrap();
    drop(store);
    let mut rec = Vec::new();
    Record::Put {
        id: b"torn",
        data: &[9; 100],
        expires_ms: u64::MAX,
        added_ms: 0,
    }
    .encode(&mut rec);
    let path = dir.path().join(LOG_FILE);
    let mut log = std::fs::read(&path).unwrap();
    let good_len = log.len() as u64;
    log.extend_from_slice(&rec[..rec.len() / 2]);
    std::fs::write(&path, &log).unwrap();

    let (store, report) = open(dir.path(), 100);
    assert_eq!((report.sessions, report.corrupt), (1, 0), "{report}");
    assert_eq!(report.torn_bytes, (rec.len() / 2) as u64, "{report}");
    assert!(report.to_string().contains("torn last write"), "{report}");
    assert!(!report.rewritten);
    assert_eq!(report.log_bytes_now, good_len);
    assert_eq!(get(&store, 0, b"torn"), None);
    store
        .add(0, 60_000, b"after", b"appended after the cut")
        .unwrap();
    drop(store);
    let (store, report) = open(dir.path(), 100);
    assert_eq!((report.sessions, report.corrupt), (2, 0), "{report}");
    assert_eq!(
        get(&store, 0, b"after").as_deref(),
        Some(&b"appended after the cut"[..])
    );
}

#[test]
fn a_file_that_is_not_a_log_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_FILE);
    std::fs::write(&path, b"not a log at all").unwrap();
    let err = DurableStore::open(dir.path(), options(10, fast())).unwrap_err();
    assert!(matches!(err, DurableError::NotALog(_)), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a log at all");
}

#[test]
fn a_smaller_capacity_keeps_the_sessions_that_expire_last() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 100);
    for i in 0..100u32 {
        store
            .add(0, 10_000 + i * 100, &i.to_be_bytes(), b"data")
            .unwrap();
    }
    drop(store);
    let (store, report) = open(dir.path(), 10);
    assert_eq!((report.sessions, report.over_capacity), (10, 90));
    for i in 0..100u32 {
        assert_eq!(store.have(0, &i.to_be_bytes()), i >= 90, "{i}");
    }
}

#[test]
fn the_log_stays_near_one_and_a_half_times_the_live_data_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 100_000);
    let mut worst: f64 = 0.0;
    let live_count = 300;
    for i in 0..20_000usize {
        let id = format!("churn-{i}");
        store
            .add(0, 60_000, id.as_bytes(), &data_for(i, 1000))
            .unwrap();
        if i >= live_count {
            assert!(store.remove(0, format!("churn-{}", i - live_count).as_bytes()));
        }
        if i % 100 == 0 {
            // A client no faster than the disk: let the writer catch up.
            let deadline = Instant::now() + Duration::from_secs(10);
            while store.stats().queued_bytes > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let s = store.stats();
            let excess = s.log_bytes as f64 - 1.5 * s.live_bytes as f64;
            worst = worst.max(excess);
        }
    }
    let stats = store.stats();
    assert!(stats.compactions > 0, "{stats:?}");
    // The writer compacts once the log exceeds 1.5 x live + slack; what
    // is appended while it copies (here at most 100 sessions and their
    // tombstones at a time) comes on top.
    assert!(
        worst <= COMPACT_SLACK as f64 + 2.0 * 100.0 * 1100.0,
        "log exceeded 1.5 times the live data by {worst} bytes"
    );
    drop(store);
    let (store, report) = open(dir.path(), 100_000);
    assert_eq!(report.sessions, live_count);
    for i in 20_000 - live_count..20_000 {
        assert_eq!(
            get(&store, 0, format!("churn-{i}").as_bytes()),
            Some(data_for(i, 1000))
        );
    }
}

/// A store's parts in `dir` under `-sync always`, with a writer that runs
/// only when the test steps it, and a queue of 100 bytes: a session of
/// 100 bytes fits alone; a tombstone behind it does not (tombstones may
/// take twice the limit).
fn hand_stepped(dir: &Path) -> (Shared, Writer) {
    let paths = Paths::new(dir);
    let file = create_new_log(&paths.log).unwrap();
    let queue = Arc::new(Queue::new(100, 0));
    let memory = Arc::new(MemoryStore::with_journal(
        100,
        None,
        queue.clone() as Arc<dyn Journal>,
    ));
    let shared = Shared {
        memory,
        queue,
        sync: SyncMode::Always,
        counters: Arc::new(Counters::default()),
    };
    let len = record::FILE_HEADER.len() as u64;
    let writer = Writer::new(paths, file, len, shared.clone(), Logger::new(|_| {}));
    (shared, writer)
}

#[test]
fn a_dropped_tombstone_makes_the_writer_compact_memory_back_onto_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, mut writer) = hand_stepped(dir.path());
    let Shared {
        memory,
        queue,
        counters,
        ..
    } = shared;
    memory.add(0, 60_000, b"x", &[1; 100]).unwrap();
    assert!(writer.step(Duration::ZERO));
    memory.add(0, 60_000, b"y", &[2; 100]).unwrap();
    assert!(memory.remove(0, b"x"), "its tombstone does not fit");
    assert_eq!(
        queue.dropped(),
        Dropped {
            puts: 0,
            removes: 1
        }
    );
    // Without repair, x would come back at the next start.
    assert!(writer.step(Duration::ZERO));
    while counters.compactions.load(Ordering::Relaxed) == 0 {
        assert!(writer.step(Duration::ZERO));
    }
    queue.close();
    while writer.step(Duration::ZERO) {}
    drop(writer);
    let (store, report) = open(dir.path(), 100);
    assert_eq!(report.sessions, 1, "{report}");
    assert!(!store.have(0, b"x"));
    assert_eq!(get(&store, 0, b"y"), Some(vec![2; 100]));
}

#[test]
fn an_offline_store_lists_reads_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path(), 100);
    store.add(0, 60_000, b"keep", b"kept data").unwrap();
    store.add(0, 60_000, b"drop", b"dropped data").unwrap();
    store.add(0, 1, b"old", b"expires at once").unwrap();
    drop(store);
    std::thread::sleep(Duration::from_millis(20));
    let mut offline = OfflineStore::open(dir.path()).unwrap();
    let now = std::time::SystemTime::now();
    let mut listed = offline.sessions();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&[u8]> = listed.iter().map(|s| &s.id[..]).collect();
    assert_eq!(ids, [&b"drop"[..], b"keep", b"old"]);
    assert!(listed[2].is_expired(now) && !listed[1].is_expired(now));
    assert_eq!(listed[1].data_len, 9);
    assert!(listed[1].age(now) < Duration::from_secs(10));
    let (info, data) = offline.get(b"keep").unwrap();
    assert_eq!((data, info.data_len), (&b"kept data"[..], 9));
    assert!(offline.remove(b"drop").unwrap());
    assert!(!offline.remove(b"drop").unwrap());
    assert_eq!(offline.corrupt(), (0, 0));
    drop(offline);
    let (store, report) = open(dir.path(), 100);
    assert_eq!((report.sessions, report.expired), (1, 1));
    assert!(store.have(0, b"keep") && !store.have(0, b"drop"));
    assert!(matches!(
        OfflineStore::open(&dir.path().join("nowhere")),
        Err(DurableError::NoStore(_))
    ));
}

#[test]
fn under_sync_always_a_take_is_answered_once_its_tombstone_is_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = DurableStore::open(dir.path(), options(100, SyncMode::Always)).unwrap();
    let in_log = |id: &[u8]| {
        let log = std::fs::File::open(dir.path().join(LOG_FILE)).unwrap();
        replay(&log).unwrap().sessions.contains_key(id)
    };
    for id in [&b"waited"[..], b"begun"] {
        store.add(0, 60_000, id, b"session").unwrap();
        assert!(in_log(id));
    }
    // The waiting form: once it returns the session, the log no longer
    // holds it.
    let mut out = b"kept".to_vec();
    assert!(store.take_into(1, b"waited", &mut out));
    assert_eq!(out, b"keptsession");
    assert!(!in_log(b"waited"));
    assert!(!store.take_into(1, b"waited", &mut out));
    // The form that does not wait: a receipt to wait on, then the same.
    out.clear();
    let (taken, receipt) = store.take_begin(1, b"begun", &mut out);
    let receipt = receipt.expect("a take under -sync always waits for the disk");
    assert!(taken && out == b"session");
    assert!(
        get(&store, 1, b"begun").is_none(),
        "gone from memory at once"
    );
    assert!(settled(&store, &receipt));
    assert!(!in_log(b"begun"));
    // A miss has nothing to wait for.
    assert_eq!(store.take_begin(1, b"begun", &mut out), (false, None));
}

/// What `receipt` comes to (whether its change reached the disk), waited
/// for within 10 s.
fn settled(store: &DurableStore, receipt: &Receipt) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(synced) = store.synced(receipt) {
            return synced;
        }
        assert!(Instant::now() < deadline, "receipt never settled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

thread_local! {
    /// What a test runs at [`between_change_and_receipt`] on its thread.
    static BETWEEN: std::cell::RefCell<Option<Box<dyn Fn()>>> = const { std::cell::RefCell::new(None) };
}

pub(super) fn between_change_and_receipt() {
    BETWEEN.with(|hook| {
        if let Some(f) = &*hook.borrow() {
            f();
        }
    });
}

/// A REMOVE or TAKE whose tombstone the queue dropped while a compaction
/// began between the removal and its receipt: the compaction took the
/// queue's mark of divergence, and the answer must not follow from it.
#[test]
fn a_dropped_tombstone_is_never_said_done_whatever_starts_meanwhile() {
    for take in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (shared, mut writer) = hand_stepped(dir.path());
        let (memory, queue) = (shared.memory.clone(), shared.queue.clone());
        let store = DurableStore {
            shared,
            writer: Mutex::new(None),
            dir: dir.path().into(),
            _lock: DirLock::acquire(dir.path()).unwrap(),
        };
        memory.add(0, 60_000, b"x", &[1; 100]).unwrap();
        assert!(writer.step(Duration::ZERO));
        memory.add(0, 60_000, b"y", &[2; 100]).unwrap();
        let in_log = |id: &[u8]| {
            let log = std::fs::File::open(dir.path().join(LOG_FILE)).unwrap();
            replay(&log).unwrap().sessions.contains_key(id)
        };
        assert!(in_log(b"x"));

        // The writer begins a compaction (it takes the mark) right after
        // the tombstone was dropped.
        let q = queue.clone();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = started.clone();
        BETWEEN.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                s.store(q.take_diverged(), Ordering::SeqCst);
            }))
        });
        let mut out = Vec::new();
        let (found, receipt) = if take {
            store.take_begin(1, b"x", &mut out)
        } else {
            store.remove_begin(1, b"x")
        };
        BETWEEN.with(|h| h.borrow_mut().take());
        assert!(found && started.load(Ordering::SeqCst), "take: {take}");
        assert_eq!(queue.dropped().removes, 1, "the tombstone was dropped");
        let receipt = receipt.expect("waits for the disk");

        // The batch behind it (y) is written and synced; the compaction
        // has not finished (here: it never runs).
        assert!(writer.step(Duration::ZERO));
        let said_done = settled(&store, &receipt);
        assert!(in_log(b"x"), "take: {take}");
        assert!(
            !said_done,
            "take: {take}: said done while the log still holds the session"
        );

        // The compaction is abandoned, as one that fails is: the mark is
        // set again and the next one brings the disk back in line.
        if started.load(Ordering::SeqCst) {
            queue.mark_diverged();
        }
        for _ in 0..100 {
            if store.shared.counters.compactions.load(Ordering::Relaxed) > 0 {
                break;
            }
            assert!(writer.step(Duration::ZERO));
        }
        assert!(
            store.shared.counters.compactions.load(Ordering::Relaxed) > 0,
            "take: {take}: no compaction in 100 steps"
        );
        assert!(!in_log(b"x") && in_log(b"y"), "take: {take}");
    }
}
