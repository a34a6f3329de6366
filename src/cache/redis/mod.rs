//! [`RedisStore`]: the sessions kept in Redis, a single server or a Redis
//! Cluster, so that any number of servers (gateways) share them.
//!
//! Every operation is begun without waiting ([`Store::begin`]) and goes one
//! of two ways:
//! - **a worker's own links** ([`Store::lane`]): each worker of the server
//!   holds one plain-text connection to each master and writes the
//!   requests that are one command (ADD, GET, HAVE, and REMOVE and TAKE
//!   when they do not wait for a replica) to the master of the key's slot
//!   from its own event loop, the requests of one wake-up together, and
//!   reads the replies there. No other thread takes part, which saves two
//!   thread wake-ups per request.
//! - **the background thread** (a Tokio runtime of one thread) for the
//!   rest: a REMOVE or TAKE that waits for a replica, every request over
//!   TLS, and whatever a worker's link hands on: a `MOVED` or `ASK` (the
//!   slot map is corrected at once), `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`,
//!   and the requests for a node whose link failed less than half a second
//!   ago. Its cluster client multiplexes and pipelines the requests of
//!   every connection over a few connections per node, follows redirects
//!   and failovers, and reconnects; the worker hears of the answer through
//!   the progress callback.
//!
//! Each request is answered within the store's timeout: with Redis's
//! answer, or else [`Answer::Failed`], never a hit or "stored" that Redis
//! did not give. A request already written to Redis is never sent again:
//! if its link fails, or Redis does not answer by its deadline, it is
//! answered as failed (it may have been carried out).
//!
//! | operation | Redis |
//! |---|---|
//! | ADD | `SET key data NX PX ttl` (ttl 0: `EXISTS`, nothing stored) |
//! | GET | `GET` |
//! | HAVE | `EXISTS` |
//! | REMOVE | `DEL`, then `WAIT 1` on the same node (unless `remove_sync` is off) |
//! | TAKE | `GETDEL`, then `WAIT 1` likewise |
//!
//! A key is the prefix followed by the raw session id.

mod backend;
mod job;
mod lane;
mod listing;
mod options;
mod pending;
mod routes;
mod slots;
mod tls;

pub use backend::Kind;
pub use options::{
    is_redis, password_from, RedisOptions, Seed, DEFAULT_PREFIX, DEFAULT_TIMEOUT, SCHEME,
    TLS_SCHEME,
};
pub use tls::{read_ca, read_identity, StoreTls, TlsIdentity};

use super::durable::Logger;
use super::{
    AddError, Answer, BackendCounts, Lane, ListCursor, ListError, Millis, Op, ProgressFn, Receipt,
    SessionInfo, Started, Store,
};
use crate::proto::{MAX_EXPIRY_MS, MAX_ID_LEN, MAX_TOTAL_DATA};
use backend::Backend;
use job::Job;
use pending::Pending;
use routes::Routes;
use slots::SlotMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a Redis store could not start.
#[derive(Debug, Error)]
pub enum RedisError {
    /// The `-store` value is not a Redis address.
    #[error("bad Redis address {0}")]
    Address(String),
    /// The password could not be had.
    #[error("Redis password: {0}")]
    Auth(String),
    /// The background thread could not start.
    #[error("can't start the Redis client thread: {0}")]
    Runtime(std::io::Error),
    /// No seed answered.
    #[error("no Redis seed answered: {0}")]
    Unreachable(String),
    /// A seed answered, but connecting for the requests failed.
    #[error("can't connect to Redis at {0}")]
    Connect(String),
    /// A TLS certificate or key could not be used.
    #[error("Redis TLS: {0}")]
    Tls(String),
}

/// Failures for this long without an answer in between make an outage,
/// which is logged; a shorter blip (one request timing out on a busy
/// machine) is not.
const OUTAGE: Duration = Duration::from_secs(1);

/// Whether Redis is answering, to log each outage once, when it begins
/// and when it ends.
#[derive(Debug, Default)]
struct Health {
    /// Since when requests have failed without an answer in between, and
    /// whether that was logged as an outage.
    failing: Mutex<Option<(Instant, bool)>>,
    /// Whether `failing` may be set: an answer while Redis is well (every
    /// answer, from every worker) need not take the lock.
    maybe_failing: AtomicBool,
}

impl Health {
    fn failed(&self, log: &Logger, why: &str) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        self.maybe_failing.store(true, Ordering::Release);
        match &mut *failing {
            None => *failing = Some((Instant::now(), false)),
            Some((since, logged)) if !*logged && since.elapsed() >= OUTAGE => {
                *logged = true;
                log.warn(&format!(
                    "store: Redis is failing ({why}) since {} ms; requests are answered as \
                     failures until it answers",
                    since.elapsed().as_millis()
                ));
            }
            Some(_) => {}
        }
    }

    fn answered(&self, log: &Logger) {
        if !self.maybe_failing.load(Ordering::Acquire) {
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        self.maybe_failing.store(false, Ordering::Release);
        if let Some((since, logged)) = failing.take() {
            if logged {
                log.warn(&format!(
                    "store: Redis answers again, after {} ms of failures",
                    since.elapsed().as_millis()
                ));
            }
        }
    }
}

/// What the store counts of Redis.
#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    redirects: AtomicU64,
    latency_sum_ns: AtomicU64,
}

impl Counts {
    /// Counts the time of a request begun at `began` that Redis answered.
    fn answered(&self, began: Instant) {
        let ns = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Sessions kept in Redis.
pub struct RedisStore {
    counts: Arc<Counts>,
    /// The slot map for the workers' lanes; `None` when there are no
    /// lanes (TLS, or no master's address known).
    routes: Option<Arc<Routes>>,
    /// The command that logs a lane's link in, if Redis asks for a password.
    login: Option<Vec<u8>>,
    remove_sync: bool,
    runtime: tokio::runtime::Runtime,
    backend: Backend,
    pending: Arc<Pending>,
    health: Arc<Health>,
    prefix: Vec<u8>,
    timeout: Duration,
    log: Logger,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.backend.kind)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Starts the background thread and connects to Redis as `options`
    /// say, within its timeout for each seed.
    pub fn connect(options: RedisOptions) -> Result<RedisStore, RedisError> {
        let pending = Arc::new(Pending::default());
        let parking = pending.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dc-redis")
            // The engine's workers hand requests over one at a time; under
            // load this thread then takes them in batches (one write to
            // each Redis node for many), rather than waking for each.
            .on_thread_start(|| {
                let _ = crate::sys::sched::batch_this_thread();
            })
            // The answers of a turn are told when the turn is over.
            .on_thread_park(move || parking.before_park())
            .enable_all()
            .build()
            .map_err(RedisError::Runtime)?;
        let (backend, note) = runtime.block_on(Backend::connect(&options))?;
        // A timer always due before any request's bound: the runtime's
        // timer wheel wakes its own thread (a system call, and one more
        // turn of its loop) whenever a timer is set that is due before
        // every other, which without this would be every request's bound
        // when no other request is in flight.
        let beat = (options.timeout / 2).max(Duration::from_millis(1));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(beat).await;
            }
        });
        if let Some(note) = note {
            options.log.warn(&format!("store: {note}"));
        }
        let routes =
            lane_routes(&runtime, &backend, &options).map(|map| Arc::new(Routes::new(map)));
        let login = options.password.as_ref().map(|password| {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &options.user {
                auth.arg(user);
            }
            auth.arg(password).get_packed_command()
        });
        Ok(RedisStore {
            counts: Arc::new(Counts::default()),
            routes,
            login,
            remove_sync: options.remove_sync,
            runtime,
            backend,
            pending,
            health: Arc::new(Health::default()),
            prefix: options.prefix,
            timeout: options.timeout,
            log: options.log,
        })
    }

    /// Whether Redis is a single server or a cluster.
    pub fn kind(&self) -> Kind {
        self.backend.kind
    }

    fn key(&self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + id.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(id);
        key
    }

    /// Hands `job` to the background thread; the receipt for its answer.
    fn spawn(&self, job: Job) -> Receipt {
        let deadline = Instant::now() + self.timeout;
        let seq = self.pending.open(deadline);
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.spawn_as(seq, deadline, job);
        Receipt { seq, deadline }
    }

    /// Hands `job`, entered as request `seq` answered by `deadline`, to
    /// the background thread.
    fn spawn_as(&self, seq: u64, deadline: Instant, job: Job) {
        let mut backend = self.backend.clone();
        let pending = self.pending.clone();
        let health = self.health.clone();
        let log = self.log.clone();
        let counts = self.counts.clone();
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.runtime.spawn(async move {
            let began = Instant::now();
            let (answer, data) = match tokio::time::timeout(timeout, backend.run(job)).await {
                Ok(Ok(done)) => {
                    counts.answered(began);
                    health.answered(&log);
                    done
                }
                Ok(Err(e)) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    health.failed(&log, &e.to_string());
                    (Answer::Failed, Vec::new())
                }
                Err(_) => {
                    counts.timeouts.fetch_add(1, Ordering::Relaxed);
                    health.failed(
                        &log,
                        &format!("no answer within {} ms", timeout.as_millis()),
                    );
                    (Answer::Failed, Vec::new())
                }
            };
            pending.answer_in_runtime(seq, answer, data);
        });
    }

    /// Counts an answer Redis gave to a request begun at `began`.
    fn answered(&self, began: Instant) {
        self.counts.answered(began);
        self.health.answered(&self.log);
    }

    /// Counts a request Redis failed (`why`).
    fn failed(&self, why: &str) {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        self.health.failed(&self.log, why);
    }

    /// Counts a request Redis did not answer in time.
    fn timed_out(&self) {
        self.counts.timeouts.fetch_add(1, Ordering::Relaxed);
        let why = format!("no answer within {} ms", self.timeout.as_millis());
        self.health.failed(&self.log, &why);
    }

    /// Asks the cluster for its slot map again (a lane's link failed, or a
    /// node said a slot moved), unless that was done a moment ago.
    fn routes_changed(&self) {
        let Some(routes) = &self.routes else {
            return;
        };
        if !routes.begin_refresh() {
            return;
        }
        let routes = routes.clone();
        let timeout = self.timeout;
        if self.backend.kind == Kind::Single {
            // The server's name may lead elsewhere now (a failover that
            // moved a DNS name).
            let seed = self.backend.seed.clone();
            self.runtime.spawn_blocking(move || {
                if let Some(addr) = reachable(&seed, timeout) {
                    routes.replace(SlotMap::single(addr));
                }
                routes.refreshing.store(false, Ordering::Release);
            });
            return;
        }
        let link = self.backend.main.clone();
        self.runtime.spawn(async move {
            if let Some(map) = cluster_slots(link, timeout).await {
                routes.replace(map);
            }
            routes.refreshing.store(false, Ordering::Release);
        });
    }

    /// The job `op` is, or the answer when it needs no Redis: every limit
    /// is checked before Redis is asked.
    fn job_for(&self, op: Op<'_>) -> Result<Job, Answer> {
        Ok(match op {
            Op::Add {
                timeout_msecs,
                id,
                data,
            } => {
                if !valid_id(id)
                    || timeout_msecs > MAX_EXPIRY_MS
                    || data.is_empty()
                    || data.len() > MAX_TOTAL_DATA
                {
                    return Err(Answer::Refused);
                }
                Job::Add {
                    key: self.key(id),
                    data: data.to_vec(),
                    ttl: timeout_msecs,
                }
            }
            Op::Get(id) | Op::Have(id) | Op::Remove(id) | Op::Take(id) if !valid_id(id) => {
                return Err(Answer::Miss)
            }
            Op::Get(id) => Job::Get(self.key(id)),
            Op::Have(id) => Job::Have(self.key(id)),
            Op::Remove(id) => Job::Remove(self.key(id)),
            Op::Take(id) => Job::Take(self.key(id)),
        })
    }

    /// Carries `op` out and waits for its answer.
    fn run(&self, now: Millis, op: Op<'_>, data: &mut Vec<u8>) -> Answer {
        match self.begin(now, op, data) {
            Started::Done(answer) => answer,
            Started::Waiting(receipt) => self.pending.wait(receipt.seq, data),
        }
    }
}

/// The slot map the workers' lanes start with: the one server's address,
/// or the cluster's `CLUSTER SLOTS`; `None` for no lanes (TLS, which the
/// lanes do not speak, or an address that does not resolve).
fn lane_routes(
    runtime: &tokio::runtime::Runtime,
    backend: &Backend,
    options: &RedisOptions,
) -> Option<SlotMap> {
    if options.tls.is_some() {
        return None;
    }
    match backend.kind {
        Kind::Single => {
            let addr = reachable(&backend.seed, options.timeout)?;
            Some(SlotMap::single(addr))
        }
        Kind::Cluster => {
            let asked = cluster_slots(backend.main.clone(), options.timeout);
            // Without a map the lanes start empty and learn it by the
            // first refresh.
            Some(runtime.block_on(asked).unwrap_or_else(SlotMap::empty))
        }
    }
}

/// The cluster's slot map (`CLUSTER SLOTS`), asked over `link` within
/// `timeout`; `None` when it did not answer.
async fn cluster_slots(mut link: backend::Link, timeout: Duration) -> Option<SlotMap> {
    let ask = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
    let reply = backend::bounded(timeout, link.query::<redis::Value>(&ask))
        .await
        .ok()?;
    Some(SlotMap::from_cluster_slots(&reply))
}

/// The first of the addresses `seed` names that takes a connection within
/// `timeout` (a second at most): `localhost` may name `::1` first while
/// Redis listens on 127.0.0.1 only. Blocks.
fn reachable(seed: &Seed, timeout: Duration) -> Option<SocketAddr> {
    let within = timeout.min(Duration::from_secs(1));
    (seed.host.as_str(), seed.port)
        .to_socket_addrs()
        .ok()?
        .find(|addr| std::net::TcpStream::connect_timeout(addr, within).is_ok())
}

/// Whether `id` is a session id the protocol allows.
fn valid_id(id: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
}

impl Store for RedisStore {
    fn add(&self, now: Millis, timeout_msecs: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        let op = Op::Add {
            timeout_msecs,
            id,
            data,
        };
        match self.run(now, op, &mut Vec::new()) {
            Answer::Ok => Ok(()),
            Answer::Exists => Err(AddError::Exists),
            _ => Err(AddError::Refused),
        }
    }

    fn begin(&self, _now: Millis, op: Op<'_>, _data: &mut Vec<u8>) -> Started {
        match self.job_for(op) {
            Ok(job) => Started::Waiting(self.spawn(job)),
            Err(answer) => Started::Done(answer),
        }
    }

    /// A worker's own links to the masters, for the requests that are one
    /// command (see the store's documentation); none over TLS.
    fn lane(self: Arc<Self>) -> Option<Box<dyn Lane>> {
        self.routes.as_ref()?;
        Some(Box::new(lane::WorkerLane::new(self)?))
    }

    fn finish(&self, receipt: &Receipt, data: &mut Vec<u8>) -> Option<Answer> {
        self.pending.take(receipt.seq, data)
    }

    fn on_progress(&self, f: ProgressFn) {
        self.pending.on_progress(f);
    }

    /// Commands for different keys are independent in Redis.
    fn overlaps(&self) -> bool {
        true
    }

    /// The sessions by `SCAN` (see the `listing` module): unordered, and
    /// each with an age of 0.
    fn list(
        &self,
        now: Millis,
        from: Option<ListCursor>,
        max: usize,
        out: &mut Vec<SessionInfo>,
    ) -> Result<Option<ListCursor>, ListError> {
        let page = listing::page(
            self.backend.clone(),
            self.prefix.clone(),
            now,
            from,
            max.max(1),
        );
        let timeout = self.timeout;
        // The timer is made inside the runtime, which it needs.
        match self
            .runtime
            .block_on(async move { tokio::time::timeout(timeout, page).await })
        {
            Ok(Ok((sessions, next))) => {
                out.extend(sessions);
                Ok(next)
            }
            Ok(Err(_)) | Err(_) => Err(ListError::Unavailable),
        }
    }

    fn backend_counts(&self) -> Option<BackendCounts> {
        let c = &self.counts;
        Some(BackendCounts {
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            redirects: c.redirects.load(Ordering::Relaxed),
            latency_sum_ns: c.latency_sum_ns.load(Ordering::Relaxed),
        })
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        self.run(now, Op::Get(id), out) == Answer::Hit
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.run(now, Op::Remove(id), &mut Vec::new()) == Answer::Ok
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.run(now, Op::Have(id), &mut Vec::new()) == Answer::Ok
    }

    /// The keys in Redis (`DBSIZE`, summed over a cluster's masters): every
    /// prefix's, not only this store's. 0 when Redis does not answer.
    fn len(&self, _now: Millis) -> usize {
        let receipt = self.spawn(Job::Count);
        let mut out = Vec::new();
        match self.pending.wait(receipt.seq, &mut out) {
            Answer::Ok => <[u8; 8]>::try_from(out.as_slice())
                .map(|b| usize::try_from(i64::from_le_bytes(b).max(0)).unwrap_or(usize::MAX))
                .unwrap_or(0),
            _ => 0,
        }
    }
}
