//! The `dc_server` engine: listeners and a fixed set of worker threads,
//! each an event loop over non-blocking sockets (see `worker/`).
//!
//! A connection is a small state, not a thread: a server holds tens of
//! thousands of them at a few hundred bytes each. New connections go to
//! whichever worker the kernel wakes first.
//!
//! At most [`Server::set_max_conns`] connections are served at once; at the
//! limit a new connection takes the place of the longest idle one, and
//! while the process has no file descriptor left, new connections are
//! accepted and closed at once (see [`Notice`]).

use super::admission::{default_max_conns, Admission, Notice};
use super::worker::{workers, Board};
use super::{Clock, Policy, Progress, Stats};
use crate::cache::{MemoryStore, Millis, Store};
use crate::nal::{Address, Listener, NalError};
use crate::sys::clock::millis;
use crate::tls::ServerTls;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Stack size of a worker (buffers live on the heap).
const WORKER_STACK: usize = 256 * 1024;
/// How often the progress reporter looks at the counters.
const PROGRESS_TICK: Duration = Duration::from_millis(100);
/// The most worker threads.
pub const MAX_THREADS: usize = 1024;

/// What a server is told to do.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on.
    pub listen: Vec<Address>,
    /// Most sessions stored at once.
    pub sessions: usize,
}

/// Why a server could not start or run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No address to listen on was given.
    #[error("no address to listen on")]
    NoListener,
    /// A session capacity of zero.
    #[error("the session capacity must be at least 1")]
    NoCapacity,
    /// A listener could not be set up.
    #[error("can't listen on '{0}': {1}")]
    Listen(Address, #[source] NalError),
    /// A worker thread could not be started.
    #[error("can't start a worker thread: {0}")]
    Thread(#[source] io::Error),
    /// The admin socket or the metrics page could not be set up.
    #[error("can't set up the {0}: {1}")]
    Inspect(&'static str, #[source] io::Error),
}

/// A bound server, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    listeners: Vec<Arc<Listener>>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Clock,
    pub(super) stats: Stats,
    stop: AtomicBool,
    min_expiry: AtomicU32,
    /// Idle timeout in milliseconds (0: none).
    idle_msecs: AtomicU64,
    /// Worker threads (0: one per CPU the process may run on).
    threads: AtomicUsize,
    pub(super) admission: Admission,
    /// The workers' board, once they run.
    board: OnceLock<Arc<Board>>,
    /// Per listener: a worker is taking its connections.
    pub(super) accepting: Vec<AtomicBool>,
    /// Per listener: its TLS credentials, if it speaks TLS.
    tls: Vec<OnceLock<Arc<ServerTls>>>,
}

impl Shared {
    pub(super) fn policy(&self) -> Policy {
        Policy {
            min_expiry_msecs: self.min_expiry.load(Ordering::Relaxed),
        }
    }

    /// The idle timeout in milliseconds, if any.
    pub(super) fn idle_msecs(&self) -> Option<Millis> {
        let idle = self.idle_msecs.load(Ordering::Relaxed);
        (idle > 0).then_some(idle)
    }

    /// The TLS credentials of listener `li`, if it speaks TLS.
    pub(super) fn tls(&self, li: usize) -> Option<&Arc<ServerTls>> {
        self.tls.get(li)?.get()
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(board) = self.board.get() {
            board.wake_all();
        }
    }
}

/// Stops a running server from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Asks the server to stop: no new connections; each worker ends its
    /// connection after answering what it has received, waiting at most a
    /// second for a request that is half-received.
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// What the inspection threads (admin socket, metrics page) read from a
/// server: its store, counters and clock, and whether it is stopping.
#[derive(Debug, Clone)]
pub(crate) struct ServerView(Arc<Shared>);

impl ServerView {
    /// The store the server serves from.
    pub fn store(&self) -> &dyn Store {
        &*self.0.store
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }

    /// The server's clock.
    pub fn clock(&self) -> Clock {
        self.0.clock
    }

    /// Whether the server was asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.0.stop.load(Ordering::Relaxed)
    }
}

impl Server {
    /// A view of the server for threads that report on it.
    pub(crate) fn view(&self) -> ServerView {
        ServerView(self.shared.clone())
    }

    /// Binds every listener of `config` with an in-memory store.
    pub fn bind(config: &ServerConfig) -> Result<Server, ServerError> {
        if config.sessions == 0 {
            return Err(ServerError::NoCapacity);
        }
        Server::bind_with_store(&config.listen, Arc::new(MemoryStore::new(config.sessions)))
    }

    /// Binds the given addresses, serving from `store`.
    pub fn bind_with_store(
        listen: &[Address],
        store: Arc<dyn Store>,
    ) -> Result<Server, ServerError> {
        if listen.is_empty() {
            return Err(ServerError::NoListener);
        }
        let mut listeners = Vec::with_capacity(listen.len());
        for addr in listen {
            let l = Listener::bind(addr).map_err(|e| ServerError::Listen(addr.clone(), e))?;
            l.set_nonblocking(true)
                .map_err(|e| ServerError::Listen(addr.clone(), e.into()))?;
            listeners.push(Arc::new(l));
        }
        let spare = listeners
            .first()
            .and_then(|l| l.as_fd().try_clone_to_owned().ok());
        let admission = Admission::new(default_max_conns(crate::nal::fd_limit()), spare);
        let shared = Shared {
            store,
            clock: Clock::start(),
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            min_expiry: AtomicU32::new(0),
            idle_msecs: AtomicU64::new(0),
            threads: AtomicUsize::new(0),
            admission,
            board: OnceLock::new(),
            accepting: listeners.iter().map(|_| AtomicBool::new(false)).collect(),
            tls: listeners.iter().map(|_| OnceLock::new()).collect(),
        };
        Ok(Server {
            listeners,
            shared: Arc::new(shared),
        })
    }

    /// The listeners, in the order of the addresses given.
    pub fn listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().map(|l| &**l)
    }

    /// The absolute paths of the socket files of the UNIX listeners.
    pub fn socket_paths(&self) -> Vec<&Path> {
        self.listeners().filter_map(Listener::socket_path).collect()
    }

    /// Deletes the socket files of the UNIX listeners (each only if it is
    /// still the one the listener created; see
    /// [`Listener::remove_socket_file`]), so that clients find no server
    /// rather than one that does not answer. Call it once [`Server::run`]
    /// has returned; dropping the server does the same, silently. Returns
    /// the files that could not be deleted, with why.
    pub fn remove_socket_files(&self) -> Vec<(PathBuf, io::Error)> {
        let mut failed = Vec::new();
        for l in self.listeners() {
            if let Err(e) = l.remove_socket_file() {
                failed.push((l.socket_path().unwrap_or(Path::new("")).into(), e));
            }
        }
        failed
    }

    /// Speaks TLS with `tls`'s credentials on listener `index` (in the
    /// order of the addresses given), to connections accepted afterwards.
    /// False if there is no such listener or it was set already.
    pub fn set_tls(&self, index: usize, tls: Arc<ServerTls>) -> bool {
        self.shared
            .tls
            .get(index)
            .is_some_and(|slot| slot.set(tls).is_ok())
    }

    /// Stores every ADD asking for less than `msecs` milliseconds for
    /// `msecs` instead (0, the default: lifetimes are kept as asked). Takes
    /// effect for connections accepted afterwards.
    pub fn set_min_expiry(&self, msecs: u32) {
        self.shared.min_expiry.store(msecs, Ordering::Relaxed);
    }

    /// Serves at most `max` connections at once (at least 1; by default
    /// what the open-file limit allows, up to 65,536). Beyond that a new
    /// connection takes the place of the connection idle or stalled the
    /// longest; when every one is busy, it is closed at once, so that its
    /// client fails straight away.
    pub fn set_max_conns(&self, max: usize) {
        self.shared.admission.set_limit(max);
    }

    /// The most connections served at once.
    pub fn max_conns(&self) -> usize {
        self.shared.admission.limit()
    }

    /// Connections being served now.
    pub fn open_conns(&self) -> usize {
        self.shared.admission.open()
    }

    /// Serves with `threads` worker threads (0, the default: one per CPU
    /// the process may run on). Takes effect at [`Server::run`].
    pub fn set_threads(&self, threads: usize) {
        self.shared
            .threads
            .store(threads.min(MAX_THREADS), Ordering::Relaxed);
    }

    /// The worker threads [`Server::run`] starts.
    pub fn threads(&self) -> usize {
        match self.shared.threads.load(Ordering::Relaxed) {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Closes connections that have sent nothing for `idle`, whether or not
    /// a request is half-received (`None`, the default: never). Takes
    /// effect for connections accepted afterwards. Whatever this says, a
    /// request must be finished within 30 s of its first byte.
    pub fn set_idle_timeout(&self, idle: Option<Duration>) {
        let msecs = idle.map_or(0, |d| millis(d).max(1));
        self.shared.idle_msecs.store(msecs, Ordering::Relaxed);
    }

    /// Calls `f` (from any worker thread) when connections start being
    /// refused, at the connection limit or for lack of file descriptors,
    /// and when they are served again: once each per episode. Only the
    /// first callback set is kept.
    pub fn on_notice(&self, f: impl Fn(&Notice) + Send + Sync + 'static) {
        self.shared.admission.on_notice(Box::new(f));
    }

    /// Starts a thread that passes a progress line (see `Progress`) to
    /// `sink` whenever one is due, until the server stops. `every` is the
    /// operation step that also triggers a line (0: none); counters are
    /// looked at ten times a second.
    pub fn spawn_progress(
        &self,
        every: u64,
        mut sink: impl FnMut(&str) + Send + 'static,
    ) -> Result<thread::JoinHandle<()>, ServerError> {
        let shared = self.shared.clone();
        thread::Builder::new()
            .name("dc-progress".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let mut progress = Progress::new(every, Instant::now());
                while !shared.stop.load(Ordering::Relaxed) {
                    thread::sleep(PROGRESS_TICK);
                    let ops = shared.stats.operations();
                    let sessions = || shared.store.len(shared.clock.now());
                    if let Some(line) = progress.check(Instant::now(), ops, sessions) {
                        sink(&line);
                    }
                }
            })
            .map_err(ServerError::Thread)
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The store the server serves from.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The server's clock.
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// A handle that stops [`Server::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Serves until stopped; returns once every worker has finished. The
    /// listeners stay open (and their socket files in place) until the
    /// server is dropped or [`Server::remove_socket_files`] is called.
    pub fn run(&self) -> Result<(), ServerError> {
        let (workers, board) =
            workers(self.threads(), &self.listeners, &self.shared).map_err(ServerError::Thread)?;
        // Replies waiting for the store are looked at when it progresses,
        // by the workers that have some.
        let wake = board.clone();
        self.shared
            .store
            .on_progress(Arc::new(move || wake.wake_awaiting()));
        let _ = self.shared.board.set(board);
        let mut handles = Vec::with_capacity(workers.len());
        let mut failed = None;
        for w in workers {
            let spawned = thread::Builder::new()
                .name("dc-worker".into())
                .stack_size(WORKER_STACK)
                .spawn(move || w.run());
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    failed = Some(ServerError::Thread(e));
                    self.shared.stop();
                    break;
                }
            }
        }
        if let Some(board) = self.shared.board.get() {
            // Each worker looks at the stop flag on its first wake-up.
            if self.shared.is_stopping() {
                board.wake_all();
            }
        }
        for h in handles {
            let _ = h.join();
        }
        if let Some(board) = self.shared.board.get() {
            for _ in 0..board.close_handed() {
                self.shared.admission.release();
                self.shared.stats.metrics().connection_closed();
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
