//! The requests a Redis store has begun and not yet handed back: each
//! waits under its number until its answer comes from the background
//! thread, or its deadline passes.

use crate::cache::{Answer, ProgressFn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long an answer nobody collected is kept after its deadline (its
/// connection closed meanwhile).
const KEEP_UNCOLLECTED: Duration = Duration::from_secs(10);
/// Every this many requests begun, answers nobody collected are dropped;
/// and when the background thread goes to sleep, if it did not for this
/// long.
const PURGE_EVERY: u64 = 4096;
const PURGE_PERIOD: Duration = Duration::from_secs(1);
/// Answers told to the progress callback at once, however busy the
/// background thread is.
const TELL_EVERY: usize = 32;
/// How long an answer may wait untold while the background thread is busy.
const TELL_WITHIN: Duration = Duration::from_micros(200);

#[derive(Debug)]
enum Slot {
    Running {
        deadline: Instant,
    },
    Done {
        answer: Answer,
        data: Vec<u8>,
        deadline: Instant,
    },
}

/// The table of begun requests.
#[derive(Default)]
pub(super) struct Pending {
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Slot>>,
    answered: Condvar,
    /// Threads blocked in [`Pending::wait`]: the condition variable is
    /// signalled only when there are some (a signal is a system call).
    sleepers: AtomicUsize,
    progress: OnceLock<ProgressFn>,
    /// Answers recorded since the progress callback was last told.
    untold: AtomicUsize,
    /// When the oldest of them was recorded.
    untold_since: Mutex<Option<Instant>>,
    /// When answers nobody collected are next dropped.
    next_purge: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    fn slots(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        // Every critical section leaves the table consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the callback told of every answer (once; later calls are ignored).
    pub(super) fn on_progress(&self, f: ProgressFn) {
        let _ = self.progress.set(f);
    }

    /// Enters a request answered by `deadline`; its number.
    pub(super) fn open(&self, deadline: Instant) -> u64 {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots();
        if seq % PURGE_EVERY == PURGE_EVERY - 1 {
            Self::purge(&mut slots, Instant::now());
        }
        slots.insert(seq, Slot::Running { deadline });
        seq
    }

    /// Records the answer to request `seq` and wakes the threads blocked
    /// in [`Pending::wait`]; the progress callback is not told.
    pub(super) fn record(&self, seq: u64, answer: Answer, data: Vec<u8>) {
        let sleepers = {
            let mut slots = self.slots();
            if let Some(slot) = slots.get_mut(&seq) {
                if let Slot::Running { deadline } = *slot {
                    *slot = Slot::Done {
                        answer,
                        data,
                        deadline,
                    };
                }
            }
            self.sleepers.load(Ordering::Relaxed)
        };
        if sleepers > 0 {
            self.answered.notify_all();
        }
    }

    fn tell(&self) {
        if let Some(f) = self.progress.get() {
            f();
        }
    }

    /// Records the answer to request `seq` and tells whoever waits, the
    /// progress callback at once.
    pub(super) fn answer_now(&self, seq: u64, answer: Answer, data: Vec<u8>) {
        self.record(seq, answer, data);
        self.tell();
    }

    /// Records the answer to request `seq`, from a task of the background
    /// runtime, and wakes the threads blocked in [`Pending::wait`]. The
    /// progress callback (which wakes the engine's workers, and each then
    /// looks at all of its waiting connections) is told once for the
    /// answers of one turn of the runtime, by [`Pending::before_park`]
    /// when the runtime has nothing left to run; and at once when
    /// [`TELL_EVERY`] answers are untold, or the oldest has waited
    /// [`TELL_WITHIN`], so that a runtime that never runs out of work
    /// still tells.
    pub(super) fn answer_in_runtime(&self, seq: u64, answer: Answer, data: Vec<u8>) {
        self.record(seq, answer, data);
        let untold = self.untold.fetch_add(1, Ordering::AcqRel) + 1;
        let now = Instant::now();
        let overdue = {
            let mut since = self.untold_since.lock().unwrap_or_else(|p| p.into_inner());
            match *since {
                Some(t) => now.saturating_duration_since(t) >= TELL_WITHIN,
                None => {
                    *since = Some(now);
                    false
                }
            }
        };
        if untold >= TELL_EVERY || overdue {
            self.tell_untold();
        }
    }

    /// Tells the progress callback of the answers recorded since it was
    /// last told, if any.
    fn tell_untold(&self) {
        // Cleared before telling: an answer recorded after this is told
        // by a later call. The swap orders this call after every answer
        // that counted itself.
        if self.untold.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        *self.untold_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.tell();
    }

    /// What the background runtime's thread does before it sleeps: tells
    /// of the answers not told yet, and drops the answers nobody collected
    /// once a purge is due.
    pub(super) fn before_park(&self) {
        self.tell_untold();
        let now = Instant::now();
        let due = {
            let mut next = self.next_purge.lock().unwrap_or_else(|p| p.into_inner());
            match *next {
                Some(at) if now < at => false,
                _ => {
                    *next = Some(now + PURGE_PERIOD);
                    true
                }
            }
        };
        if due {
            Self::purge(&mut self.slots(), now);
        }
    }

    /// Drops the answers nobody collected (their connection closed) and
    /// the requests long past their deadline.
    fn purge(slots: &mut HashMap<u64, Slot>, now: Instant) {
        slots.retain(|_, slot| match slot {
            Slot::Running { deadline } | Slot::Done { deadline, .. } => {
                now < *deadline + KEEP_UNCOLLECTED
            }
        });
    }

    /// The answer to request `seq` if it came (its data appended to
    /// `out`), [`Answer::Failed`] once its deadline passed or for a number
    /// not entered; `None` while it may still come.
    pub(super) fn take(&self, seq: u64, out: &mut Vec<u8>) -> Option<Answer> {
        let mut slots = self.slots();
        Self::take_from(&mut slots, seq, out)
    }

    fn take_from(slots: &mut HashMap<u64, Slot>, seq: u64, out: &mut Vec<u8>) -> Option<Answer> {
        match slots.get(&seq) {
            None => return Some(Answer::Failed),
            Some(Slot::Running { deadline }) if Instant::now() < *deadline => return None,
            Some(_) => {}
        }
        match slots.remove(&seq) {
            Some(Slot::Done { answer, data, .. }) => {
                out.extend_from_slice(&data);
                Some(answer)
            }
            _ => Some(Answer::Failed),
        }
    }

    /// Waits for the answer to request `seq`, at most until its deadline.
    pub(super) fn wait(&self, seq: u64, out: &mut Vec<u8>) -> Answer {
        let mut slots = self.slots();
        loop {
            if let Some(answer) = Self::take_from(&mut slots, seq, out) {
                return answer;
            }
            let left = match slots.get(&seq) {
                Some(Slot::Running { deadline }) => {
                    deadline.saturating_duration_since(Instant::now())
                }
                _ => Duration::ZERO,
            };
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            slots = self
                .answered
                .wait_timeout(slots, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn answered_taken_once() {
        let p = Pending::default();
        let seq = p.open(Instant::now() + Duration::from_secs(5));
        let mut out = Vec::new();
        assert_eq!(p.take(seq, &mut out), None);
        p.answer_now(seq, Answer::Hit, b"data".to_vec());
        assert_eq!(p.take(seq, &mut out), Some(Answer::Hit));
        assert_eq!(out, b"data");
        assert_eq!(p.take(seq, &mut out), Some(Answer::Failed), "taken already");
    }

    #[test]
    fn deadline_fails_and_late_answer_is_dropped() {
        let p = Pending::default();
        let seq = p.open(Instant::now() + Duration::from_millis(20));
        let mut out = Vec::new();
        assert_eq!(p.wait(seq, &mut out), Answer::Failed);
        p.answer_now(seq, Answer::Hit, b"late".to_vec());
        assert!(out.is_empty());
    }

    #[test]
    fn waiter_is_woken() {
        let p = Arc::new(Pending::default());
        let seq = p.open(Instant::now() + Duration::from_secs(10));
        let q = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q.answer_now(seq, Answer::Ok, Vec::new());
        });
        let began = Instant::now();
        assert_eq!(p.wait(seq, &mut Vec::new()), Answer::Ok);
        assert!(began.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
    }

    /// A pending table whose progress callback counts its calls.
    fn counted() -> (Pending, Arc<AtomicUsize>) {
        let p = Pending::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        p.on_progress(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        (p, calls)
    }

    #[test]
    fn answers_of_a_turn_are_told_once_before_the_runtime_parks() {
        let (p, calls) = counted();
        let deadline = Instant::now() + Duration::from_secs(60);
        let seqs: Vec<u64> = (0..3).map(|_| p.open(deadline)).collect();
        for &seq in &seqs {
            p.answer_in_runtime(seq, Answer::Ok, Vec::new());
        }
        // Recorded at once: a worker that looks finds them.
        assert_eq!(p.take(seqs[0], &mut Vec::new()), Some(Answer::Ok));
        p.before_park();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        p.before_park();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "nothing new to tell");
    }

    #[test]
    fn a_busy_runtime_tells_every_so_many_answers() {
        let (p, calls) = counted();
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..TELL_EVERY * 2 {
            let seq = p.open(deadline);
            p.answer_in_runtime(seq, Answer::Miss, Vec::new());
        }
        assert!(calls.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn uncollected_answers_are_purged_when_the_runtime_parks() {
        let (p, _) = counted();
        let Some(past) = Instant::now().checked_sub(KEEP_UNCOLLECTED + Duration::from_secs(1))
        else {
            return; // The clock began too recently to hold such a deadline.
        };
        let stale = p.open(past);
        p.answer_in_runtime(stale, Answer::Hit, b"left".to_vec());
        let live = p.open(Instant::now() + Duration::from_secs(60));
        p.before_park();
        let slots = p.slots();
        assert!(
            !slots.contains_key(&stale),
            "its connection never collected it"
        );
        assert!(slots.contains_key(&live));
    }
}
