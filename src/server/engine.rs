//! The `dc_server` engine: listeners and a self-sizing pool of worker
//! threads with blocking sockets.
//!
//! Every worker blocks in `accept` on its listener; the one the kernel wakes
//! serves that connection itself, to its end, with no hand-off. A worker that
//! takes a connection while it was the last idle one starts another, so
//! there is always a thread waiting in `accept`; a worker that finishes a
//! connection while many others are idle exits. A connection per operation
//! (Apache's way) thus costs no thread creation, and every persistent client
//! has a thread of its own.
//!
//! At most [`Server::set_max_conns`] connections are served at once; beyond
//! that, and while the process has no file descriptor left, new connections
//! are accepted and closed at once (see [`Notice`]).

use super::admission::{is_out_of_descriptors, Admission, Notice, DEFAULT_MAX_CONNS};
use super::conn::{read_buffer, serve, Timeouts, POLL_INTERVAL};
use super::{Clock, Policy, Progress, Stats};
use crate::cache::{MemoryStore, Store};
use crate::nal::{Address, Listener, NalError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Workers started waiting in `accept` on each listener.
const SPARE_WORKERS: usize = 2;
/// Idle workers a listener keeps after a burst of connections, so that the
/// next burst does not pay for thread creation again.
const MAX_IDLE_WORKERS: usize = 32;
/// Stack size of a worker (buffers live on the heap).
const WORKER_STACK: usize = 256 * 1024;
/// How often the progress reporter looks at the counters.
const PROGRESS_TICK: Duration = Duration::from_millis(100);

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
struct Shared {
    store: Arc<dyn Store>,
    clock: Clock,
    stats: Stats,
    stop: AtomicBool,
    min_expiry: AtomicU32,
    /// Idle timeout in milliseconds (0: none).
    idle_msecs: AtomicU64,
    admission: Admission,
}

impl Shared {
    fn policy(&self) -> Policy {
        Policy {
            min_expiry_msecs: self.min_expiry.load(Ordering::Relaxed),
        }
    }

    fn timeouts(&self) -> Timeouts {
        let idle = self.idle_msecs.load(Ordering::Relaxed);
        Timeouts {
            idle: (idle > 0).then(|| Duration::from_millis(idle)),
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
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// What the inspection threads (admin socket, metrics page) read from a
/// server: its store, counters and clock, and whether it is stopping.
#[derive(Debug, Clone)]
pub struct ServerView(Arc<Shared>);

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
    pub fn view(&self) -> ServerView {
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
            l.set_accept_timeout(Some(POLL_INTERVAL))
                .map_err(|e| ServerError::Listen(addr.clone(), e.into()))?;
            listeners.push(Arc::new(l));
        }
        let admission = Admission::new(DEFAULT_MAX_CONNS, listeners.first().map(|l| &**l));
        let shared = Shared {
            store,
            clock: Clock::start(),
            stats: Stats::default(),
            stop: AtomicBool::new(false),
            min_expiry: AtomicU32::new(0),
            idle_msecs: AtomicU64::new(0),
            admission,
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

    /// Stores every ADD asking for less than `msecs` milliseconds for
    /// `msecs` instead (0, the default: lifetimes are kept as asked). Takes
    /// effect for connections accepted afterwards.
    pub fn set_min_expiry(&self, msecs: u32) {
        self.shared.min_expiry.store(msecs, Ordering::Relaxed);
    }

    /// Serves at most `max` connections at once (at least 1; by default
    /// 1024). Beyond that a new connection is accepted and closed at once,
    /// so that its client fails straight away.
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

    /// Closes connections that have sent nothing for `idle`, whether or not
    /// a request is half-received (`None`, the default: never). Takes
    /// effect for connections accepted afterwards. Whatever this says, a
    /// request must be finished within 30 s of its first byte.
    pub fn set_idle_timeout(&self, idle: Option<Duration>) {
        let msecs = idle.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.shared.idle_msecs.store(msecs, Ordering::Relaxed);
    }

    /// Calls `f` (from any worker thread) when connections start being
    /// refused, at the connection limit or for lack of file descriptors,
    /// and when they are served again: once each per episode. Only the
    /// first callback set is kept.
    pub fn on_notice(&self, f: impl Fn(&Notice) + Send + Sync + 'static) {
        self.shared.admission.on_notice(Box::new(f));
    }

    /// Starts a thread that passes a progress line (see [`Progress`]) to
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
        let mut pools = Vec::new();
        for listener in &self.listeners {
            let pool = Arc::new(Pool {
                listener: listener.clone(),
                shared: self.shared.clone(),
                idle: AtomicUsize::new(0),
                alive: AtomicUsize::new(0),
                accepting: AtomicUsize::new(0),
            });
            pools.push(pool.clone());
            for _ in 0..SPARE_WORKERS {
                if let Err(e) = pool.spawn_worker() {
                    // Stop the workers already started before giving up.
                    self.stop_handle().stop();
                    wait_for_workers(&pools);
                    return Err(e);
                }
            }
        }
        wait_for_workers(&pools);
        Ok(())
    }
}

/// Workers exit on their own once `stop` is set; waits for that.
fn wait_for_workers(pools: &[Arc<Pool>]) {
    while pools.iter().any(|p| p.alive.load(Ordering::Acquire) > 0) {
        thread::sleep(POLL_INTERVAL / 5);
    }
}

#[derive(Debug)]
struct Pool {
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    idle: AtomicUsize,
    alive: AtomicUsize,
    /// Workers inside `accept` now.
    accepting: AtomicUsize,
}

impl Pool {
    fn spawn_worker(self: &Arc<Self>) -> Result<(), ServerError> {
        self.idle.fetch_add(1, Ordering::AcqRel);
        self.alive.fetch_add(1, Ordering::AcqRel);
        let pool = self.clone();
        let spawned = thread::Builder::new()
            .name("dc-worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || pool.work());
        if let Err(e) = spawned {
            self.idle.fetch_sub(1, Ordering::AcqRel);
            self.alive.fetch_sub(1, Ordering::AcqRel);
            return Err(ServerError::Thread(e));
        }
        Ok(())
    }

    fn work(self: Arc<Self>) {
        let sh = &*self.shared;
        let mut buf = read_buffer();
        loop {
            if sh.stop.load(Ordering::Relaxed) {
                self.idle.fetch_sub(1, Ordering::AcqRel);
                break;
            }
            self.accepting.fetch_add(1, Ordering::AcqRel);
            let accepted = self.listener.accept();
            self.accepting.fetch_sub(1, Ordering::AcqRel);
            let stream = match accepted {
                Ok(s) => s,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                Err(e)
                    if is_out_of_descriptors(&e) && self.accepting.load(Ordering::Acquire) > 0 =>
                {
                    // Linux sets a descriptor aside for each thread waiting
                    // in accept: the descriptors left are held by the other
                    // workers waiting here, which will take the connections.
                    // This worker is one too many.
                    if self.idle.load(Ordering::Acquire) > 1 {
                        self.idle.fetch_sub(1, Ordering::AcqRel);
                        break;
                    }
                    thread::sleep(POLL_INTERVAL / 5);
                    continue;
                }
                Err(e) => {
                    // Out of descriptors or memory: take and close what
                    // waits, or back off briefly.
                    match sh.admission.accept_failed(&self.listener, &e) {
                        Some(s) => s,
                        None => continue,
                    }
                }
            };
            let Some(ticket) = sh.admission.admit() else {
                // At the limit: closing it at once tells the client to fail.
                drop(stream);
                continue;
            };
            sh.stats.count_connection();
            if self.idle.fetch_sub(1, Ordering::AcqRel) == 1 {
                // We were the last one waiting in accept: keep one there.
                // If no thread can be made, this worker returns to accept
                // after its connection, so service degrades but goes on.
                let _ = self.spawn_worker();
            }
            serve(
                stream,
                &*sh.store,
                &sh.clock,
                &sh.stats,
                &sh.stop,
                sh.policy(),
                sh.timeouts(),
                &mut buf,
            );
            drop(ticket);
            if self.idle.fetch_add(1, Ordering::AcqRel) >= MAX_IDLE_WORKERS {
                self.idle.fetch_sub(1, Ordering::AcqRel);
                break;
            }
        }
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }
}
