//! Which accepted connections are served: at most `-maxconns` at once, and
//! none while the process is out of file descriptors. A connection that is
//! not served is closed at once, so that its client fails straight away
//! instead of waiting for its timeout. Refusals come in episodes; an
//! operator hears of each episode twice, through [`Notice`]: when it begins
//! and when connections are served again.

use crate::nal::{Listener, Stream};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Connections served at once unless configured otherwise: as many clients
/// as `dc_client` serves. Each one holds a thread and a descriptor.
pub const DEFAULT_MAX_CONNS: usize = 1024;

/// An episode of refusals ends at the first connection served at least this
/// long after the last refusal, so that a server that hovers at a limit
/// reports one episode, not one per connection.
const EPISODE_QUIET: Duration = Duration::from_secs(1);
/// How long a worker waits before accepting again when it found no
/// descriptor left and could not free one.
const DESCRIPTOR_BACKOFF: Duration = Duration::from_millis(100);

/// Something worth telling an operator about the connections refused,
/// passed to the callback of [`Server::on_notice`](super::Server::on_notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A connection was refused because `limit` connections were open;
    /// later ones are refused too until some close.
    ConnLimitReached {
        /// The `-maxconns` limit.
        limit: usize,
    },
    /// Connections are served again after `refused` were refused at the
    /// connection limit.
    ConnLimitCleared {
        /// Connections refused during the episode.
        refused: u64,
    },
    /// Accepting failed for lack of file descriptors: new connections are
    /// refused until some close.
    OutOfDescriptors {
        /// What the system said.
        error: String,
    },
    /// Connections are served again after `refused` were refused for lack
    /// of file descriptors.
    DescriptorsAvailable {
        /// Connections refused (accepted and closed at once) during the
        /// episode.
        refused: u64,
    },
}

impl Notice {
    /// Whether the notice reports a problem (the start of an episode)
    /// rather than the end of one.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Notice::ConnLimitReached { .. } | Notice::OutOfDescriptors { .. }
        )
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ConnLimitReached { limit } => write!(
                f,
                "connections refused: at the -maxconns limit ({limit} open); \
                 new ones are closed at once until some close"
            ),
            Notice::ConnLimitCleared { refused } => write!(
                f,
                "connections served again: {refused} refused at the -maxconns limit"
            ),
            Notice::OutOfDescriptors { error } => write!(
                f,
                "connections refused: out of file descriptors ({error}); \
                 new ones are closed at once until some close"
            ),
            Notice::DescriptorsAvailable { refused } => write!(
                f,
                "connections served again: {refused} refused for lack of file descriptors"
            ),
        }
    }
}

type NoticeFn = Box<dyn Fn(&Notice) + Send + Sync>;

/// The connection count, the limit, the refusal episodes, and a spare
/// descriptor kept for closing connections when none is left.
pub(super) struct Admission {
    limit: AtomicUsize,
    open: AtomicUsize,
    at_limit: Episode,
    no_descriptors: Episode,
    /// A duplicate of a listener's descriptor, held so that, when accept
    /// fails for lack of descriptors, closing it lets one connection be
    /// accepted and closed.
    spare: Mutex<Option<OwnedFd>>,
    notice: OnceLock<NoticeFn>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("limit", &self.limit)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

/// A served connection's place in the count; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Ticket<'a>(&'a Admission);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Serves at most `limit` connections at once; `spare_of` is the
    /// listener whose descriptor is duplicated as the spare.
    pub(super) fn new(limit: usize, spare_of: Option<&Listener>) -> Admission {
        Admission {
            limit: AtomicUsize::new(limit.max(1)),
            open: AtomicUsize::new(0),
            at_limit: Episode::default(),
            no_descriptors: Episode::default(),
            spare: Mutex::new(spare_of.and_then(|l| l.as_fd().try_clone_to_owned().ok())),
            notice: OnceLock::new(),
        }
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.store(limit.max(1), Ordering::Relaxed);
    }

    pub(super) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Connections being served.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Sets the notice callback; only the first call counts.
    pub(super) fn on_notice(&self, f: NoticeFn) {
        let _ = self.notice.set(f);
    }

    fn notify(&self, notice: Notice) {
        if let Some(f) = self.notice.get() {
            f(&notice);
        }
    }

    /// Decides on a connection just accepted: a ticket if it is to be
    /// served, `None` if the caller must close it at once.
    pub(super) fn admit(&self) -> Option<Ticket<'_>> {
        let limit = self.limit();
        if self.open.fetch_add(1, Ordering::AcqRel) >= limit {
            self.open.fetch_sub(1, Ordering::AcqRel);
            if self.at_limit.refused(true) {
                self.notify(Notice::ConnLimitReached { limit });
            }
            return None;
        }
        if let Some(refused) = self.no_descriptors.served() {
            self.notify(Notice::DescriptorsAvailable { refused });
        }
        if let Some(refused) = self.at_limit.served() {
            self.notify(Notice::ConnLimitCleared { refused });
        }
        Some(Ticket(self))
    }

    /// Called when accepting on `listener` failed with `error` while no
    /// other worker waited in accept on it. Out of descriptors, it frees
    /// the spare one and accepts with it (waiting at most the listener's
    /// accept timeout); if a spare can then be had again, descriptors have
    /// freed up meanwhile and the connection is returned to be served;
    /// otherwise it is closed at once (its client fails now instead of
    /// hanging in the backlog) and the spare taken back. When that cannot
    /// be done, and on any other failure (out of memory, say), it waits a
    /// little, so that no worker spins.
    pub(super) fn accept_failed(&self, listener: &Listener, error: &io::Error) -> Option<Stream> {
        if !is_out_of_descriptors(error) {
            thread::sleep(DESCRIPTOR_BACKOFF);
            return None;
        }
        if self.no_descriptors.refused(false) {
            self.notify(Notice::OutOfDescriptors {
                error: error.to_string(),
            });
        }
        // One worker at a time uses the spare; the others wait a little.
        let Ok(mut spare) = self.spare.try_lock() else {
            thread::sleep(DESCRIPTOR_BACKOFF);
            return None;
        };
        let mut served = None;
        if spare.take().is_some() {
            if let Ok(stream) = listener.accept() {
                *spare = listener.as_fd().try_clone_to_owned().ok();
                if spare.is_some() {
                    served = Some(stream);
                } else {
                    drop(stream);
                    self.no_descriptors.refused(true);
                }
            }
        }
        if spare.is_none() {
            *spare = listener.as_fd().try_clone_to_owned().ok();
        }
        if spare.is_none() {
            // Something else took the descriptor: nothing to free with.
            drop(spare);
            thread::sleep(DESCRIPTOR_BACKOFF);
        }
        served
    }
}

/// Whether an accept failed because the process or the system is out of
/// file descriptors.
pub(super) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One kind of refusal: whether an episode is going on, how many
/// connections it refused, and when the last refusal was.
#[derive(Debug, Default)]
struct Episode {
    /// Read without the lock on every admitted connection.
    active: AtomicBool,
    state: Mutex<EpisodeState>,
}

#[derive(Debug, Default)]
struct EpisodeState {
    active: bool,
    refused: u64,
    last: Option<Instant>,
}

impl Episode {
    fn lock(&self) -> MutexGuard<'_, EpisodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a refusal (`counted`: a connection was refused; otherwise
    /// only the condition was seen). True when this starts an episode.
    fn refused(&self, counted: bool) -> bool {
        let mut s = self.lock();
        let starts = !s.active;
        if starts {
            s.active = true;
            s.refused = 0;
            self.active.store(true, Ordering::Release);
        }
        s.refused += u64::from(counted);
        s.last = Some(Instant::now());
        starts
    }

    /// Records a served connection: the episode's refusal count when this
    /// ends one.
    fn served(&self) -> Option<u64> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.lock();
        if !s.active || s.last.is_some_and(|t| t.elapsed() < EPISODE_QUIET) {
            return None;
        }
        s.active = false;
        self.active.store(false, Ordering::Release);
        Some(s.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    fn recorder(a: &Admission) -> Arc<StdMutex<Vec<Notice>>> {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let s = seen.clone();
        a.on_notice(Box::new(move |n| s.lock().unwrap().push(n.clone())));
        seen
    }

    #[test]
    fn the_limit_refuses_and_reports_once_per_episode() {
        let a = Admission::new(2, None);
        let seen = recorder(&a);
        let t1 = a.admit().expect("first");
        let t2 = a.admit().expect("second");
        assert_eq!(a.open(), 2);
        for _ in 0..5 {
            assert!(a.admit().is_none());
        }
        assert_eq!(a.open(), 2);
        drop(t1);
        // Served within a second of the last refusal: the episode goes on.
        let t3 = a.admit().expect("a place was freed");
        assert!(a.admit().is_none());
        assert_eq!(
            *seen.lock().unwrap(),
            [Notice::ConnLimitReached { limit: 2 }]
        );
        drop((t2, t3));
        thread::sleep(EPISODE_QUIET + Duration::from_millis(50));
        let _t4 = a.admit().expect("below the limit");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                Notice::ConnLimitReached { limit: 2 },
                Notice::ConnLimitCleared { refused: 6 }
            ]
        );
        assert!(seen.lock().unwrap()[0].is_problem());
        assert!(!seen.lock().unwrap()[1].is_problem());
    }

    #[test]
    fn notices_read_well() {
        let n = Notice::ConnLimitReached { limit: 1024 };
        assert!(n
            .to_string()
            .starts_with("connections refused: at the -maxconns limit"));
        let n = Notice::DescriptorsAvailable { refused: 3 };
        assert_eq!(
            n.to_string(),
            "connections served again: 3 refused for lack of file descriptors"
        );
    }

    #[test]
    fn only_descriptor_errors_count_as_such() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENOMEM
        )));
    }
}
