//! The bounded queue between the requests and the writer thread. It is the
//! memory store's [`Journal`]: each change is queued, under the memory
//! store's lock, in the order it happened, and never waits.
//!
//! When the writer falls behind and the queue holds `limit` bytes, further
//! sessions added are not queued (they stay in memory, and are missing
//! from the disk until they are added again); tombstones, which are small,
//! are queued up to twice the limit and only then dropped. A dropped
//! tombstone leaves on disk a session that memory no longer holds, so the
//! queue is then marked diverged and the writer compacts the log, keeping
//! only what memory holds. A client's removal learns from the receipt
//! that [`Journal::record`] returns whether its own tombstone was queued,
//! as decided under the queue's lock, and is said done only once that very
//! tombstone is synced.

use super::record::put_len;
use crate::cache::{Change, DropReason, Journal, ProgressFn};
pub(crate) use crate::sys::clock::wall_ms;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed batches remembered for the ADDs waiting on them.
const MAX_FAILED_RANGES: usize = 1024;
/// Bytes an operation costs in the queue beyond its id and data.
const OP_OVERHEAD: usize = 64;

/// Waits on `cv` while `waiting` holds, until `deadline` at most: the
/// guard, or None when `waiting` still held at the deadline. A poisoned
/// lock is taken as it is.
fn wait_until<'a, T>(
    cv: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Instant,
    mut waiting: impl FnMut(&T) -> bool,
) -> Option<MutexGuard<'a, T>> {
    while waiting(&guard) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        guard = cv
            .wait_timeout(guard, left)
            .map_or_else(|p| p.into_inner().0, |(g, _)| g);
    }
    Some(guard)
}

/// A change for the writer to put on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a session.
    Put {
        /// Its id.
        id: Box<[u8]>,
        /// Its data.
        data: Box<[u8]>,
        /// Expiry, wall-clock ms.
        expires_ms: u64,
        /// When added, wall-clock ms.
        added_ms: u64,
    },
    /// Write a tombstone.
    Remove {
        /// The id.
        id: Box<[u8]>,
        /// When, wall-clock ms.
        at_ms: u64,
    },
}

impl Op {
    fn cost(&self) -> usize {
        OP_OVERHEAD
            + match self {
                Op::Put { id, data, .. } => id.len() + data.len(),
                Op::Remove { id, .. } => id.len(),
            }
    }
}

/// Operations taken by the writer, with their receipts `first..=last`.
#[derive(Debug, Default)]
pub struct Batch {
    /// The operations, oldest first.
    pub ops: Vec<Op>,
    /// The receipt of the first.
    pub first: u64,
    /// The receipt of the last.
    pub last: u64,
}

#[derive(Debug)]
struct State {
    ops: Vec<Op>,
    bytes: usize,
    /// The receipt the next queued op gets (receipts start at 1).
    next_receipt: u64,
    /// Bytes the live sessions of the memory store take as records.
    live_bytes: u64,
    closing: bool,
    diverged: bool,
    dropped_puts: u64,
    dropped_removes: u64,
}

#[derive(Debug)]
struct Progress {
    /// Every receipt up to this one is written and synced, or failed.
    done_through: u64,
    /// Ranges of receipts whose write or sync failed, newest last.
    failed: VecDeque<(u64, u64)>,
}

impl Progress {
    /// Whether `receipt` was in a batch that failed.
    fn lost(&self, receipt: u64) -> bool {
        self.failed
            .iter()
            .any(|&(first, last)| (first..=last).contains(&receipt))
    }
}

/// How many changes the queue could not take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Sessions not written because the queue was full.
    pub puts: u64,
    /// Tombstones not written because the queue was full.
    pub removes: u64,
}

/// The callbacks told of the writer's progress.
#[derive(Default)]
struct Watchers(Mutex<Vec<ProgressFn>>);

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watchers")
    }
}

/// The queue. See the module documentation.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    /// The writer waits here for work.
    work: Condvar,
    /// ADDs under `-sync always` wait here for room.
    room: Condvar,
    progress: Mutex<Progress>,
    progressed: Condvar,
    /// Told after every batch the writer finished.
    watchers: Watchers,
    limit: usize,
}

impl Queue {
    /// A queue holding at most about `limit` bytes of sessions, for a store
    /// whose live sessions take `live_bytes` as records.
    pub fn new(limit: usize, live_bytes: u64) -> Queue {
        Queue {
            state: Mutex::new(State {
                ops: Vec::new(),
                bytes: 0,
                next_receipt: 1,
                live_bytes,
                closing: false,
                diverged: false,
                dropped_puts: 0,
                dropped_removes: 0,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            progress: Mutex::new(Progress {
                done_through: 0,
                failed: VecDeque::new(),
            }),
            progressed: Condvar::new(),
            watchers: Watchers::default(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `op` if it fits under `limit` bytes; its receipt, or `None`.
    fn push(&self, st: &mut State, op: Op, limit: usize) -> Option<u64> {
        let cost = op.cost();
        if st.closing || st.bytes + cost > limit && !st.ops.is_empty() {
            return None;
        }
        if st.ops.is_empty() {
            self.work.notify_one();
        }
        st.bytes += cost;
        st.ops.push(op);
        let receipt = st.next_receipt;
        st.next_receipt += 1;
        Some(receipt)
    }

    /// Waits until `timeout` has passed or there is work, then takes every
    /// queued operation. Also says whether the queue is closing.
    pub fn take(&self, timeout: Duration) -> (Batch, bool) {
        let mut st = self.lock();
        if st.ops.is_empty() && !st.closing && !timeout.is_zero() {
            st = self
                .work
                .wait_timeout(st, timeout)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        let ops = std::mem::take(&mut st.ops);
        let last = st.next_receipt - 1;
        let first = last + 1 - ops.len() as u64;
        if st.bytes >= self.limit {
            self.room.notify_all();
        }
        st.bytes = 0;
        (Batch { ops, first, last }, st.closing)
    }

    /// Waits (until `deadline` at most) for the queue to hold less than
    /// its limit; false if it still does not.
    pub fn wait_for_room(&self, deadline: Instant) -> bool {
        let st = wait_until(&self.room, self.lock(), deadline, |st| {
            st.bytes >= self.limit && !st.closing
        });
        st.is_some_and(|st| !st.closing)
    }

    /// The writer reports receipts `first..=last` as synced (`ok`) or lost.
    pub fn finish(&self, first: u64, last: u64, ok: bool) {
        if first > last {
            return;
        }
        let mut p = self.lock_progress();
        p.done_through = p.done_through.max(last);
        if !ok {
            if p.failed.len() == MAX_FAILED_RANGES {
                p.failed.pop_front();
            }
            p.failed.push_back((first, last));
        }
        self.progressed.notify_all();
        drop(p);
        let watchers = self.watchers.0.lock().unwrap_or_else(|p| p.into_inner());
        for f in watchers.iter() {
            f();
        }
    }

    /// Calls `f` after every batch the writer finishes.
    pub fn on_progress(&self, f: ProgressFn) {
        self.watchers
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(f);
    }

    /// Whether `receipt` is synced (`Some(true)`), failed (`Some(false)`),
    /// or not yet known.
    pub fn synced(&self, receipt: u64) -> Option<bool> {
        let p = self.lock_progress();
        (p.done_through >= receipt).then(|| !p.lost(receipt))
    }

    /// Waits (until `deadline` at most) for `receipt` to be synced; false
    /// if it failed or the deadline passed first.
    pub fn wait_synced(&self, receipt: u64, deadline: Instant) -> bool {
        let p = wait_until(&self.progressed, self.lock_progress(), deadline, |p| {
            p.done_through < receipt
        });
        p.is_some_and(|p| !p.lost(receipt))
    }

    /// Every receipt up to this one is synced or failed.
    #[cfg(test)]
    pub fn done_through(&self) -> u64 {
        self.lock_progress().done_through
    }

    /// Stops taking changes and wakes the writer to finish.
    pub fn close(&self) {
        self.lock().closing = true;
        self.work.notify_all();
        self.room.notify_all();
    }

    /// Marks the disk as possibly holding sessions memory does not.
    pub fn mark_diverged(&self) {
        self.lock().diverged = true;
    }

    /// Whether the disk may hold sessions memory does not; clears the mark.
    pub fn take_diverged(&self) -> bool {
        std::mem::take(&mut self.lock().diverged)
    }

    /// Whether the mark is set, without clearing it.
    pub fn is_diverged(&self) -> bool {
        self.lock().diverged
    }

    /// Bytes the live sessions take as records.
    pub fn live_bytes(&self) -> u64 {
        self.lock().live_bytes
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Changes the queue could not take so far.
    pub fn dropped(&self) -> Dropped {
        let st = self.lock();
        Dropped {
            puts: st.dropped_puts,
            removes: st.dropped_removes,
        }
    }
}

impl Journal for Queue {
    fn record(&self, change: Change<'_>) -> Option<u64> {
        let mut st = self.lock();
        match change {
            Change::Added {
                id,
                data,
                lifetime_msecs,
            } => {
                st.live_bytes += put_len(id.len(), data.len()) as u64;
                let now = wall_ms();
                let op = Op::Put {
                    id: id.into(),
                    data: data.into(),
                    expires_ms: now.saturating_add(lifetime_msecs),
                    added_ms: now,
                };
                let receipt = self.push(&mut st, op, self.limit);
                if receipt.is_none() {
                    st.dropped_puts += 1;
                }
                receipt
            }
            Change::Dropped { id, data_len, why } => {
                st.live_bytes = st
                    .live_bytes
                    .saturating_sub(put_len(id.len(), data_len) as u64);
                if why == DropReason::Expired {
                    // The record carries its expiry: nothing to write.
                    return None;
                }
                let op = Op::Remove {
                    id: id.into(),
                    at_ms: wall_ms(),
                };
                let receipt = self.push(&mut st, op, self.limit.saturating_mul(2));
                if receipt.is_none() {
                    st.dropped_removes += 1;
                    st.diverged = true;
                }
                receipt
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added<'a>(id: &'a [u8], data: &'a [u8]) -> Change<'a> {
        Change::Added {
            id,
            data,
            lifetime_msecs: 1000,
        }
    }

    fn removed(id: &[u8], why: DropReason) -> Change<'_> {
        Change::Dropped {
            id,
            data_len: 4,
            why,
        }
    }

    #[test]
    fn receipts_follow_the_order_and_expiry_writes_nothing() {
        let q = Queue::new(1 << 20, 0);
        assert_eq!(q.record(added(b"a", b"data")), Some(1));
        assert_eq!(q.record(removed(b"a", DropReason::Removed)), Some(2));
        assert_eq!(q.record(added(b"b", b"data")), Some(3));
        assert_eq!(q.record(removed(b"b", DropReason::Expired)), None);
        assert_eq!(q.record(removed(b"c", DropReason::Evicted)), Some(4));
        assert_eq!(q.live_bytes(), 0);
        let (batch, closing) = q.take(Duration::ZERO);
        assert!(!closing);
        assert_eq!((batch.first, batch.last, batch.ops.len()), (1, 4, 4));
        assert!(matches!(&batch.ops[0], Op::Put { id, .. } if &**id == b"a"));
        assert!(matches!(&batch.ops[3], Op::Remove { id, .. } if &**id == b"c"));
        let (empty, _) = q.take(Duration::ZERO);
        assert!(empty.ops.is_empty() && empty.first > empty.last);
    }

    #[test]
    fn a_full_queue_drops_adds_first_then_tombstones_and_marks_divergence() {
        let q = Queue::new(1000, 0);
        let data = [0u8; 400];
        assert!(q.record(added(b"a", &data)).is_some());
        assert!(q.record(added(b"b", &data)).is_some());
        assert_eq!(q.record(added(b"c", &data)), None, "over the limit");
        assert!(!q.is_diverged());
        // Tombstones still fit, up to twice the limit.
        let mut taken = 0;
        while q.record(removed(b"x", DropReason::Removed)).is_some() {
            taken += 1;
        }
        assert!(taken > 5, "{taken}");
        assert_eq!(
            q.dropped(),
            Dropped {
                puts: 1,
                removes: 1
            }
        );
        assert!(q.take_diverged());
        assert!(!q.take_diverged(), "cleared");
        // Room again once the writer takes the batch.
        let (batch, _) = q.take(Duration::ZERO);
        assert_eq!(batch.ops.len(), 2 + taken);
        assert!(q.wait_for_room(Instant::now()));
        assert!(q.record(added(b"c", &data)).is_some());
    }

    #[test]
    fn a_removal_learns_what_became_of_its_own_tombstone() {
        let q = Queue::new(100, 0);
        q.record(added(b"a", &[0; 100]));
        // The queue is past twice its limit: the tombstone is dropped, and
        // the removal is told so whatever happens to the mark afterwards.
        assert_eq!(q.record(removed(b"a", DropReason::Removed)), None);
        assert!(q.take_diverged());
        q.take(Duration::ZERO);
        // Room again: queued, under its own receipt.
        assert_eq!(q.record(removed(b"b", DropReason::Removed)), Some(2));
        assert_eq!(q.record(removed(b"c", DropReason::Evicted)), Some(3));
    }

    #[test]
    fn waiters_see_synced_and_failed_batches() {
        let q = std::sync::Arc::new(Queue::new(1 << 20, 0));
        for i in 0..6u8 {
            q.record(added(&[i + 1], b"d"));
        }
        let soon = || Instant::now() + Duration::from_millis(20);
        assert!(!q.wait_synced(1, soon()), "not written yet");
        q.finish(1, 2, true);
        q.finish(3, 4, false);
        assert!(q.wait_synced(1, soon()) && q.wait_synced(2, soon()));
        assert!(!q.wait_synced(3, soon()) && !q.wait_synced(4, soon()));
        let q2 = q.clone();
        let t =
            std::thread::spawn(move || q2.wait_synced(6, Instant::now() + Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        q.finish(5, 6, true);
        assert!(t.join().unwrap());
        assert_eq!(q.done_through(), 6);
    }
}
