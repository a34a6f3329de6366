//! The requests a Redis store has begun and not yet handed back: each
//! waits under its number until its answer comes from the background
//! thread, or its deadline passes.

use crate::cache::{Answer, ProgressFn};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long an answer nobody collected is kept after its deadline (its
/// connection closed meanwhile).
const KEEP_UNCOLLECTED: Duration = Duration::from_secs(10);
/// Every this many requests begun, answers nobody collected are dropped.
const PURGE_EVERY: u64 = 4096;

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
    /// A call of the progress callback is scheduled on the background
    /// thread and has not begun: answers recorded meanwhile are told by it.
    telling: AtomicBool,
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
            let now = Instant::now();
            slots.retain(|_, slot| match slot {
                Slot::Running { deadline } | Slot::Done { deadline, .. } => {
                    now < *deadline + KEEP_UNCOLLECTED
                }
            });
        }
        slots.insert(seq, Slot::Running { deadline });
        seq
    }

    /// Records the answer to request `seq` and wakes the threads blocked
    /// in [`Pending::wait`]; the progress callback is not told.
    fn record(&self, seq: u64, answer: Answer, data: Vec<u8>) {
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
    #[cfg(test)]
    pub(super) fn answer(&self, seq: u64, answer: Answer, data: Vec<u8>) {
        self.record(seq, answer, data);
        self.tell();
    }

    /// Records the answer to request `seq`, from a task of the background
    /// runtime, and tells whoever waits. The progress callback (which
    /// wakes every engine worker, and each then looks at all of its
    /// waiting connections) is told once for all the answers that come in
    /// one turn of the runtime: by a task that runs after the tasks
    /// already queued, most of them the other answers of the replies read
    /// with this one.
    pub(super) fn answer_in_runtime(self: &Arc<Self>, seq: u64, answer: Answer, data: Vec<u8>) {
        self.record(seq, answer, data);
        if self.progress.get().is_none() || self.telling.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            // Cleared before telling: an answer recorded after this
            // schedules a call of its own. The swap (not a store) orders
            // this call after every answer that found it scheduled.
            me.telling.swap(false, Ordering::AcqRel);
            me.tell();
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

    #[test]
    fn answered_taken_once() {
        let p = Pending::default();
        let seq = p.open(Instant::now() + Duration::from_secs(5));
        let mut out = Vec::new();
        assert_eq!(p.take(seq, &mut out), None);
        p.answer(seq, Answer::Hit, b"data".to_vec());
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
        p.answer(seq, Answer::Hit, b"late".to_vec());
        assert!(out.is_empty());
    }

    #[test]
    fn waiter_is_woken() {
        let p = Arc::new(Pending::default());
        let seq = p.open(Instant::now() + Duration::from_secs(10));
        let q = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q.answer(seq, Answer::Ok, Vec::new());
        });
        let began = Instant::now();
        assert_eq!(p.wait(seq, &mut Vec::new()), Answer::Ok);
        assert!(began.elapsed() < Duration::from_secs(10));
        t.join().unwrap();
    }
}
