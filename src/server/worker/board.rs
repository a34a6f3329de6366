//! The board the workers share: what each tells the others (how long its
//! longest idle connection has been idle, how many it serves) and what
//! each asks of the others (to close a connection to make room, to serve
//! one handed to it).

use crate::tls::Link;
use mio::Waker;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the workers tell each other.
#[derive(Debug)]
pub(in crate::server) struct Board {
    slots: Vec<Slot>,
}

/// One worker's place on the board.
#[derive(Debug)]
struct Slot {
    waker: Arc<Waker>,
    /// Last activity of the worker's longest idle connection that may be
    /// displaced (`u64::MAX`: none).
    oldest: AtomicU64,
    /// Connections other workers asked this one to close to make room.
    displace: AtomicUsize,
    /// Connections the worker serves, as it last said (and others added).
    open: AtomicUsize,
    /// Connections other workers accepted and handed to this one.
    handed: Mutex<Vec<Link>>,
    /// The worker may have requests waiting for the store: only such a
    /// worker is woken when the store progresses.
    awaits: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the list consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Board {
    /// A board for the workers woken by `wakers`, in order.
    pub(super) fn new(wakers: Vec<Arc<Waker>>) -> Board {
        let slots = wakers
            .into_iter()
            .map(|waker| Slot {
                waker,
                oldest: AtomicU64::new(u64::MAX),
                displace: AtomicUsize::new(0),
                open: AtomicUsize::new(0),
                handed: Mutex::new(Vec::new()),
                awaits: AtomicBool::new(false),
            })
            .collect();
        Board { slots }
    }

    /// Whether one worker serves alone.
    pub(super) fn is_alone(&self) -> bool {
        self.slots.len() == 1
    }

    /// Closes the connections handed to workers that had stopped: once
    /// every worker has, no one else will.
    pub(in crate::server) fn close_handed(&self) -> usize {
        self.slots
            .iter()
            .map(|s| std::mem::take(&mut *lock(&s.handed)).len())
            .sum()
    }

    /// Wakes every worker (to see the stop flag, say).
    pub(in crate::server) fn wake_all(&self) {
        for s in &self.slots {
            let _ = s.waker.wake();
        }
    }

    /// Wakes the workers that may have requests waiting for the store.
    pub(in crate::server) fn wake_awaiting(&self) {
        for s in &self.slots {
            if s.awaits.load(Ordering::SeqCst) {
                let _ = s.waker.wake();
            }
        }
    }

    /// Worker `me` says whether it may have requests waiting for the
    /// store. It says so before it looks at them again, so that an answer
    /// that comes later wakes it, and one that came earlier is found.
    pub(super) fn set_awaits(&self, me: usize, awaits: bool) {
        self.slots[me].awaits.store(awaits, Ordering::SeqCst);
    }

    /// Worker `me` says when its longest idle displaceable connection was
    /// last active (`u64::MAX`: none) and how many it serves.
    pub(super) fn publish(&self, me: usize, oldest: u64, open: usize) {
        let slot = &self.slots[me];
        slot.oldest.store(oldest, Ordering::Relaxed);
        slot.open.store(open, Ordering::Relaxed);
    }

    /// Worker `me` says it has nothing left to displace.
    pub(super) fn withdraw(&self, me: usize) {
        self.slots[me].oldest.store(u64::MAX, Ordering::Relaxed);
    }

    /// How many connections other workers asked `me` to close since it
    /// last looked.
    pub(super) fn take_displace(&self, me: usize) -> usize {
        self.slots[me].displace.swap(0, Ordering::AcqRel)
    }

    /// The connections other workers handed to `me` since it last looked.
    pub(super) fn take_handed(&self, me: usize) -> Vec<Link> {
        std::mem::take(&mut *lock(&self.slots[me].handed))
    }

    /// What `read` says of each worker other than `me`.
    fn others<'a, T>(
        &'a self,
        me: usize,
        read: impl Fn(&Slot) -> T + 'a,
    ) -> impl Iterator<Item = (usize, T)> + 'a {
        self.slots
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != me)
            .map(move |(i, s)| (i, read(s)))
    }

    /// The worker other than `me` whose longest idle displaceable
    /// connection has been idle the longest, and its last activity.
    pub(super) fn oldest_elsewhere(&self, me: usize) -> Option<(usize, u64)> {
        self.others(me, |s| s.oldest.load(Ordering::Relaxed))
            .filter(|&(_, t)| t != u64::MAX)
            .min_by_key(|&(_, t)| t)
    }

    /// The worker other than `me` that serves the fewest connections, and
    /// how many it serves.
    pub(super) fn lightest_elsewhere(&self, me: usize) -> Option<(usize, usize)> {
        self.others(me, |s| s.open.load(Ordering::Relaxed))
            .min_by_key(|&(_, open)| open)
    }

    /// Asks worker `w` to close its longest idle connection at its next
    /// wake-up.
    pub(super) fn ask_displace(&self, w: usize) {
        let slot = &self.slots[w];
        slot.displace.fetch_add(1, Ordering::AcqRel);
        let _ = slot.waker.wake();
    }

    /// Hands a connection just accepted to worker `w` to serve.
    pub(super) fn hand(&self, w: usize, link: Link) {
        let slot = &self.slots[w];
        slot.open.fetch_add(1, Ordering::Relaxed);
        lock(&slot.handed).push(link);
        let _ = slot.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    /// Whether `poll` has an event now (the wakers write before they
    /// return, so nothing is waited for).
    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        !events.is_empty()
    }

    #[test]
    fn progress_wakes_only_the_workers_that_await_it() {
        let mut polls: Vec<Poll> = (0..2).map(|_| Poll::new().unwrap()).collect();
        let wakers = polls
            .iter()
            .map(|p| Arc::new(Waker::new(p.registry(), Token(0)).unwrap()))
            .collect();
        let board = Board::new(wakers);
        board.set_awaits(1, true);
        board.wake_awaiting();
        assert!(!woken(&mut polls[0]));
        assert!(woken(&mut polls[1]));
        board.set_awaits(1, false);
        board.wake_awaiting();
        assert!(!woken(&mut polls[1]), "nothing awaited any more");
        board.wake_all();
        assert!(woken(&mut polls[0]) && woken(&mut polls[1]));
    }
}
