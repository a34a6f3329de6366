//! Which accepted connections are served: at most `-maxconns` at once, and
//! none while the process is out of file descriptors.
//!
//! At the limit a new connection takes the place of the connection that
//! has been idle or stalled the longest (the worker that holds it closes
//! it); only when every connection is in the middle of an exchange is the
//! new one refused. A connection that is not served is closed at once, so
//! that its client fails straight away instead of waiting for its timeout.
//! Displacements and refusals come in episodes; an operator hears of each
//! episode twice, through [`Notice`]: when it begins and when it ends.

use socket2::Socket;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Connections served at once unless configured otherwise, where the
/// open-file limit allows it (see [`default_max_conns`]).
pub const DEFAULT_MAX_CONNS: usize = 65_536;
/// Descriptors the server needs besides its connections: standard streams,
/// listeners, the poll instances, a spare, syslog, the store, and slack.
pub const RESERVED_FDS: u64 = 64;

/// The connection limit for an open-file limit of `nofile`: every
/// descriptor the server does not keep for itself ([`RESERVED_FDS`], or a
/// quarter of a smaller limit), up to `DEFAULT_MAX_CONNS` and at least 1.
pub fn default_max_conns(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(RESERVED_FDS.min(nofile / 4)).max(1);
    usize::try_from(usable).map_or(DEFAULT_MAX_CONNS, |n| n.min(DEFAULT_MAX_CONNS))
}

/// An episode ends at the first connection served at least this long after
/// its last event, so that a server that hovers at a limit reports one
/// episode, not one per connection.
const EPISODE_QUIET: Duration = Duration::from_secs(1);

/// Something worth telling an operator about the connections displaced or
/// refused, passed to the callback of
/// [`Server::on_notice`](super::Server::on_notice).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// New connections take the places of the longest idle ones because
    /// `limit` connections are open.
    ConnLimitDisplacing {
        /// The `-maxconns` limit.
        limit: usize,
    },
    /// The connection limit was not reached for a while, after `displaced`
    /// idle connections were closed to make room.
    ConnLimitDisplaced {
        /// Connections closed to make room during the episode.
        displaced: u64,
    },
    /// A connection was refused because `limit` connections were open and
    /// every one was busy; later ones are refused too while that lasts.
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
            Notice::ConnLimitReached { .. }
                | Notice::OutOfDescriptors { .. }
                | Notice::ConnLimitDisplacing { .. }
        )
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::ConnLimitDisplacing { limit } => write!(
                f,
                "connections displaced: at the -maxconns limit ({limit} open); \
                 each new one takes the place of the longest idle"
            ),
            Notice::ConnLimitDisplaced { displaced } => write!(
                f,
                "connection limit relieved: {displaced} idle connections displaced \
                 at the -maxconns limit"
            ),
            Notice::ConnLimitReached { limit } => write!(
                f,
                "connections refused: at the -maxconns limit ({limit} open, all busy); \
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

/// The connection count, the limit, the episodes, and a spare descriptor
/// kept for closing connections when none is left.
pub(super) struct Admission {
    limit: AtomicUsize,
    open: AtomicUsize,
    displacing: Episode,
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

/// What to do after accepting failed.
#[derive(Debug)]
pub(super) enum AfterFailure {
    /// Descriptors freed up meanwhile: serve this connection.
    Serve(Socket),
    /// One connection was taken and closed: try again.
    Again,
    /// No connection is waiting any more.
    Drained,
    /// Try again a little later, so that no worker spins.
    Later,
}

/// How long a worker waits before accepting again when it found no
/// descriptor left and could not free one, or accepting failed otherwise.
pub(super) use crate::nal::ACCEPT_BACKOFF;

impl Admission {
    /// Serves at most `limit` connections at once; `spare` is a duplicate
    /// of a listener's descriptor, closed to make room when none is left.
    pub(super) fn new(limit: usize, spare: Option<OwnedFd>) -> Admission {
        Admission {
            limit: AtomicUsize::new(limit.max(1)),
            open: AtomicUsize::new(0),
            displacing: Episode::default(),
            at_limit: Episode::default(),
            no_descriptors: Episode::default(),
            spare: Mutex::new(spare),
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

    /// Takes a place for a connection just accepted if one is free below
    /// the limit; false at the limit.
    pub(super) fn try_take(&self) -> bool {
        let limit = self.limit();
        if self.open.fetch_add(1, Ordering::AcqRel) >= limit {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.served();
        true
    }

    /// Takes a place beyond the limit for a connection whose place an idle
    /// one is giving up (its worker closes it and calls
    /// [`Admission::release`]).
    pub(super) fn take_displacing(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
        if self.displacing.event(true) {
            self.notify(Notice::ConnLimitDisplacing {
                limit: self.limit(),
            });
        }
    }

    /// Records a connection refused at the limit (every one busy).
    pub(super) fn refuse(&self) {
        if self.at_limit.event(true) {
            self.notify(Notice::ConnLimitReached {
                limit: self.limit(),
            });
        }
    }

    /// Gives a connection's place back.
    pub(super) fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Ends the episodes that have been quiet long enough.
    fn served(&self) {
        if let Some(refused) = self.no_descriptors.quiet() {
            self.notify(Notice::DescriptorsAvailable { refused });
        }
        if let Some(refused) = self.at_limit.quiet() {
            self.notify(Notice::ConnLimitCleared { refused });
        }
        if let Some(displaced) = self.displacing.quiet() {
            self.notify(Notice::ConnLimitDisplaced { displaced });
        }
    }

    /// Called when accepting on a listener failed with `error`; `listener`
    /// is that listener's descriptor and `accept` accepts on it without
    /// waiting. Out of descriptors, it frees the spare one and accepts with
    /// it; if a spare can then be had again, descriptors have freed up
    /// meanwhile and the connection is to be served; otherwise it is closed
    /// at once (its client fails now instead of hanging in the backlog) and
    /// the spare taken back.
    pub(super) fn accept_failed(
        &self,
        listener: BorrowedFd<'_>,
        error: &io::Error,
        accept: &mut dyn FnMut() -> io::Result<Socket>,
    ) -> AfterFailure {
        if !is_out_of_descriptors(error) {
            return AfterFailure::Later;
        }
        if self.no_descriptors.event(false) {
            self.notify(Notice::OutOfDescriptors {
                error: error.to_string(),
            });
        }
        // One worker at a time uses the spare; the others try again later.
        let Ok(mut spare) = self.spare.try_lock() else {
            return AfterFailure::Later;
        };
        if spare.take().is_none() {
            // Something else took the descriptor: nothing to free with.
            *spare = listener.try_clone_to_owned().ok();
            return AfterFailure::Later;
        }
        let accepted = accept();
        *spare = listener.try_clone_to_owned().ok();
        match accepted {
            Ok(sock) if spare.is_some() => AfterFailure::Serve(sock),
            Ok(sock) => {
                drop(sock);
                self.no_descriptors.event(true);
                *spare = listener.try_clone_to_owned().ok();
                AfterFailure::Again
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => AfterFailure::Drained,
            Err(_) => AfterFailure::Later,
        }
    }
}

/// Whether an accept failed because the process or the system is out of
/// file descriptors.
pub(super) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One kind of episode: whether one is going on, how many connections it
/// refused or displaced, and when the last was.
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

    /// Records an event (`counted`: a connection was refused or displaced;
    /// otherwise only the condition was seen). True when this starts an
    /// episode.
    fn event(&self, counted: bool) -> bool {
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

    /// Records a served connection: the episode's count when this ends
    /// one.
    fn quiet(&self) -> Option<u64> {
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
        assert!(a.try_take() && a.try_take());
        assert_eq!(a.open(), 2);
        for _ in 0..5 {
            assert!(!a.try_take());
            a.refuse();
        }
        assert_eq!(a.open(), 2);
        a.release();
        // Served within a second of the last refusal: the episode goes on.
        assert!(a.try_take(), "a place was freed");
        assert!(!a.try_take());
        a.refuse();
        assert_eq!(
            *seen.lock().unwrap(),
            [Notice::ConnLimitReached { limit: 2 }]
        );
        a.release();
        a.release();
        std::thread::sleep(EPISODE_QUIET + Duration::from_millis(50));
        assert!(a.try_take(), "below the limit");
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
    fn displacing_goes_over_the_limit_and_reports_once_per_episode() {
        let a = Admission::new(1, None);
        let seen = recorder(&a);
        assert!(a.try_take());
        for _ in 0..3 {
            assert!(!a.try_take());
            a.take_displacing();
            assert_eq!(a.open(), 2, "over by the one being displaced");
            a.release();
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [Notice::ConnLimitDisplacing { limit: 1 }]
        );
        a.release();
        std::thread::sleep(EPISODE_QUIET + Duration::from_millis(50));
        assert!(a.try_take());
        assert_eq!(
            seen.lock().unwrap()[1],
            Notice::ConnLimitDisplaced { displaced: 3 }
        );
    }

    #[test]
    fn the_default_limit_follows_the_open_file_limit() {
        assert_eq!(default_max_conns(1024), 1024 - RESERVED_FDS as usize);
        assert_eq!(default_max_conns(1 << 20), DEFAULT_MAX_CONNS);
        assert_eq!(default_max_conns(64), 48);
        assert_eq!(default_max_conns(1), 1);
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
