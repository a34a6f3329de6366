//! The blocking client behind `DC_CTX`: connection policy (persistent or a
//! connection per operation, late connect, retry, fork check), timeouts,
//! the per-address breaker ([`breaker`]), and the request/reply exchange.
//!
//! ```no_run
//! use distcache::{Client, Flags};
//! let client = Client::new("UNIX:/run/dc_server.sock", Flags::PERSISTENT)?;
//! client.add(b"session-id", b"session data", 300_000)?;
//! assert_eq!(client.get(b"session-id")?.as_deref(), Some(&b"session data"[..]));
//! # Ok::<(), distcache::ClientError>(())
//! ```

pub mod breaker;

pub use breaker::{stats as breaker_stats, Backoff, BreakerStats, Health};

use crate::nal::{read_timer_for, Address, Deadline, NalError, Stream};
use crate::proto::{
    encode_message, next_request_uid, AddRequest, Command, Decoder, ProtoError, Role, Status,
    MAX_TOTAL_DATA,
};
use breaker::{Breaker, Outcome};
use std::cell::{Cell, RefCell};
use std::ops::BitOr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;
use thiserror::Error;

/// The timeout of every operation unless configured otherwise. A healthy
/// server answers in well under a millisecond; this is long enough for a
/// busy one, and short enough that a stalled one costs a TLS handshake one
/// second, once per back-off period (see [`breaker`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Environment variable that overrides [`DEFAULT_TIMEOUT`], in milliseconds.
pub const TIMEOUT_ENV: &str = "DISTCACHE_TIMEOUT_MS";
/// Idle persistent connections kept for reuse, at most.
const MAX_IDLE: usize = 32;
/// Size of a connection's receive buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Connection flags, with the values of the C `DC_CTX_FLAG_*` macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u32);

impl Flags {
    /// Keep connections open and reuse them (otherwise one per operation).
    pub const PERSISTENT: Flags = Flags(0x0001);
    /// In a forked child, never use the parent's connections.
    pub const PERSISTENT_PIDCHECK: Flags = Flags(0x0002);
    /// After a reused connection fails, reconnect and retry once.
    pub const PERSISTENT_RETRY: Flags = Flags(0x0004);
    /// Connect at the first operation rather than at construction.
    pub const PERSISTENT_LATE: Flags = Flags(0x0008);

    /// No flags: a new connection for every operation.
    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// Flags from their C bit values (unknown bits are ignored).
    pub const fn from_bits(bits: u32) -> Flags {
        Flags(bits & 0x000f)
    }
    /// The C bit values.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether all of `other`'s bits are set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The address string could not be used.
    #[error("bad address: {0}")]
    Address(#[source] NalError),
    /// Connecting, sending or receiving failed, or timed out.
    #[error("network: {0}")]
    Network(#[from] NalError),
    /// The server's bytes are not a valid reply.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtoError),
    /// The reply names another request, or holds an unexpected payload.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(&'static str),
    /// The server refused the operation with this status.
    #[error("server refused the operation: {0:?}")]
    Refused(Status),
    /// The request does not fit in one message (8 + id + data > 32768).
    #[error("request larger than 32768 bytes")]
    TooLarge,
    /// An id or session of zero length.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The address timed out or refused a connection recently, so the
    /// operation was not tried (see [`breaker`]).
    #[error("server marked down; next attempt in {} ms", .retry_in.as_millis())]
    Down {
        /// How long until an operation may probe the address again.
        retry_in: Duration,
    },
}

impl ClientError {
    fn is_disconnect(&self) -> bool {
        matches!(self, ClientError::Network(e) if e.is_disconnect())
    }

    /// What this failure says about the server's address.
    fn outcome(&self) -> Outcome {
        match self {
            ClientError::Network(e) if is_dead(e) => Outcome::Dead,
            ClientError::Protocol(_)
            | ClientError::UnexpectedReply(_)
            | ClientError::Refused(_) => Outcome::Reached,
            _ => Outcome::Unknown,
        }
    }
}

/// Whether a transport error marks its address down: a timeout, or a
/// connection refused (no listener at the port or the socket path, or no
/// route to the host). A full UNIX backlog does not: that server is busy,
/// and its refusal costs nothing.
fn is_dead(e: &NalError) -> bool {
    match e {
        NalError::TimedOut => true,
        NalError::Io(e) => {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) || matches!(
                e.raw_os_error(),
                Some(libc::EHOSTUNREACH | libc::ENETUNREACH)
            )
        }
        _ => false,
    }
}

/// A blocking distcache client; safe to share between threads.
///
/// Every operation is bounded by the client's timeout. Without
/// [`Flags::PERSISTENT`] each operation uses a connection of its own, so
/// threads never wait for each other. With it, idle connections are kept and
/// reused, and a thread that finds none idle opens another.
#[derive(Debug)]
pub struct Client {
    address: Address,
    flags: Flags,
    timeout_ms: AtomicU64,
    pool: Mutex<Pool>,
    /// Distinguishes this client in the per-thread reget memory.
    serial: u64,
    /// The address's record, shared by every client of the process.
    breaker: Breaker,
    /// The back-off periods: minimum and maximum, in milliseconds.
    backoff_ms: (AtomicU64, AtomicU64),
}

#[derive(Debug)]
struct Pool {
    pid: u32,
    idle: Vec<Conn>,
}

#[derive(Debug)]
struct Conn {
    stream: Stream,
    /// The client timeout the stream's receive timer was armed for.
    armed_for: Duration,
    decoder: Decoder,
    out: Vec<u8>,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Clients whose last fetched session a thread remembers for `reget`.
const REGET_SLOTS: usize = 4;

/// What one thread fetched last from each of the clients it used most
/// recently (most recent first): (client serial, id, data).
type LastGets = Vec<(u64, Vec<u8>, Vec<u8>)>;

/// The serial of a slot whose memory was forgotten (serials start at 1);
/// its buffers are kept for the next `get`.
const FORGOTTEN: u64 = 0;

thread_local! {
    static LAST_GET: RefCell<LastGets> = const { RefCell::new(Vec::new()) };
    /// Where this thread's round trips read replies into (taken while one
    /// is under way), so that a connection per operation allocates none.
    static READ_BUF: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

impl Client {
    /// A client for `address` (see [`Address`] for the syntax).
    ///
    /// With [`Flags::PERSISTENT`] and without [`Flags::PERSISTENT_LATE`] it
    /// connects at once and fails if it cannot; otherwise it does not touch
    /// the network. The timeout is taken from `DISTCACHE_TIMEOUT_MS` when set,
    /// and the breaker's back-off from `DISTCACHE_DOWN_MS` (see [`breaker`]).
    pub fn new(address: &str, flags: Flags) -> Result<Client, ClientError> {
        let address = Address::parse(address).map_err(ClientError::Address)?;
        if !address.can_connect() {
            return Err(ClientError::Address(NalError::NotConnectable(
                address.to_string(),
            )));
        }
        let client = Client {
            flags,
            timeout_ms: AtomicU64::new(env_timeout_ms()),
            pool: Mutex::new(Pool {
                pid: std::process::id(),
                idle: Vec::new(),
            }),
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            breaker: Breaker::for_address(&address.to_string()),
            backoff_ms: (AtomicU64::new(0), AtomicU64::new(0)),
            address,
        };
        client.set_backoff(Backoff::from_env());
        if flags.contains(Flags::PERSISTENT) && !flags.contains(Flags::PERSISTENT_LATE) {
            let conn = client.guarded(|timeout| {
                Conn::open(&client.address, Deadline::after(timeout), timeout)
            })?;
            client.checkin(conn);
        }
        Ok(client)
    }

    /// The address this client connects to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The flags given at construction.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Bounds every later operation (connect, send and receive together).
    /// A zero duration is raised to one millisecond.
    pub fn set_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// The current operation timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets the breaker's back-off for this client's operations
    /// ([`Backoff::OFF`] turns it off for them).
    pub fn set_backoff(&self, backoff: Backoff) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.backoff_ms.0.store(ms(backoff.min), Ordering::Relaxed);
        self.backoff_ms.1.store(ms(backoff.max), Ordering::Relaxed);
    }

    /// The breaker's back-off for this client's operations.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            min: Duration::from_millis(self.backoff_ms.0.load(Ordering::Relaxed)),
            max: Duration::from_millis(self.backoff_ms.1.load(Ordering::Relaxed)),
        }
    }

    /// Whether this client's address is down now, as the process's breaker
    /// records it.
    pub fn health(&self) -> Health {
        self.breaker.health()
    }

    /// Stores a session for `timeout_msecs` milliseconds.
    pub fn add(&self, id: &[u8], data: &[u8], timeout_msecs: u32) -> Result<(), ClientError> {
        self.forget_last_get();
        check_id(id)?;
        if data.is_empty() {
            return Err(ClientError::InvalidArgument("empty session data"));
        }
        let mut payload = Vec::new();
        AddRequest {
            timeout_msecs,
            id,
            data,
        }
        .encode(&mut payload)
        .map_err(|_| ClientError::TooLarge)?;
        match self.transact(Command::Add, &payload)?.as_slice() {
            [0] => Ok(()),
            [code] => Err(Status::from_wire(*code).map_or(
                ClientError::UnexpectedReply("unknown ADD status"),
                ClientError::Refused,
            )),
            _ => Err(ClientError::UnexpectedReply(
                "ADD reply is not one status byte",
            )),
        }
    }

    /// Fetches a session; `Ok(None)` when the server has none for `id`.
    ///
    /// As with the original library, a reply shorter than 5 bytes is not
    /// taken as session data: a miss is the single byte 0x01, which a session
    /// of 1..4 bytes could not be told apart from.
    pub fn get(&self, id: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.forget_last_get();
        check_id(id)?;
        let reply = self.transact(Command::Get, id)?;
        if reply.len() < 5 {
            return match reply.as_slice() {
                [1] => Ok(None),
                _ => Err(ClientError::UnexpectedReply(
                    "GET reply shorter than 5 bytes",
                )),
            };
        }
        // The memory is unavailable only while the thread is exiting.
        let _ = LAST_GET.try_with(|l| {
            let mut l = l.borrow_mut();
            // Reuse a forgotten slot's buffers (this client's own, most
            // likely), else those of the least recent client.
            let reuse = l
                .iter()
                .position(|(serial, _, _)| *serial == FORGOTTEN)
                .or_else(|| (l.len() >= REGET_SLOTS).then(|| l.len() - 1));
            let (_, mut last_id, mut data) =
                reuse.map_or((FORGOTTEN, Vec::new(), Vec::new()), |i| l.remove(i));
            last_id.clear();
            last_id.extend_from_slice(id);
            data.clear();
            data.extend_from_slice(&reply);
            l.insert(0, (self.serial, last_id, data));
        });
        Ok(Some(reply))
    }

    /// The session the calling thread's last operation on this client
    /// fetched with [`Client::get`], if that `get` was for `id` and found it.
    /// No network traffic.
    pub fn reget(&self, id: &[u8]) -> Option<Vec<u8>> {
        LAST_GET
            .try_with(|l| {
                l.borrow()
                    .iter()
                    .find(|(serial, _, _)| *serial == self.serial)
                    .filter(|(_, last_id, _)| last_id == id)
                    .map(|(_, _, data)| data.clone())
            })
            .ok()
            .flatten()
    }

    /// Deletes a session; false when the server had none for `id`.
    pub fn remove(&self, id: &[u8]) -> Result<bool, ClientError> {
        self.forget_last_get();
        check_id(id)?;
        found_reply(&self.transact(Command::Remove, id)?)
    }

    /// Whether the server holds a session for `id`.
    pub fn have(&self, id: &[u8]) -> Result<bool, ClientError> {
        self.forget_last_get();
        check_id(id)?;
        found_reply(&self.transact(Command::Have, id)?)
    }

    fn forget_last_get(&self) {
        // The memory is unavailable only while the thread is exiting.
        let _ = LAST_GET.try_with(|l| {
            for slot in l.borrow_mut().iter_mut() {
                if slot.0 == self.serial {
                    slot.0 = FORGOTTEN;
                }
            }
        });
    }

    /// Runs `op`, which uses the network for at most `timeout`, if the
    /// breaker lets it, and tells the breaker what it found.
    fn guarded<T>(
        &self,
        op: impl FnOnce(Duration) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let timeout = self.timeout();
        let backoff = self.backoff();
        let ticket = self
            .breaker
            .admit(backoff, timeout)
            .map_err(|retry_in| ClientError::Down { retry_in })?;
        let result = op(timeout);
        let outcome = match &result {
            Ok(_) => Outcome::Reached,
            Err(e) => e.outcome(),
        };
        self.breaker.report(ticket, outcome, backoff);
        result
    }

    /// Sends one request and returns the reply's payload.
    fn transact(&self, cmd: Command, payload: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.guarded(|timeout| self.exchange(cmd, payload, timeout))
    }

    /// One request and its reply, within `timeout`, by the connection
    /// policy of the flags.
    fn exchange(
        &self,
        cmd: Command,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let deadline = Deadline::after(timeout);
        let open = || Conn::open(&self.address, deadline, timeout);
        if !self.flags.contains(Flags::PERSISTENT) {
            return open()?.round_trip(cmd, payload, deadline, timeout);
        }
        let (mut conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (open()?, false),
        };
        let result = match conn.round_trip(cmd, payload, deadline, timeout) {
            // A reused connection the server closed meanwhile (an idle
            // timeout, a restart) is worth one fresh attempt.
            Err(e)
                if reused && e.is_disconnect() && self.flags.contains(Flags::PERSISTENT_RETRY) =>
            {
                conn = open()?;
                conn.round_trip(cmd, payload, deadline, timeout)
            }
            other => other,
        };
        if result.is_ok() {
            self.checkin(conn);
        }
        result
    }

    /// The pool, if no other thread holds it this instant. The pool is never
    /// waited for: a process forked while another thread held the lock
    /// would wait forever. A contended pool means a fresh connection.
    fn try_pool(&self) -> Option<MutexGuard<'_, Pool>> {
        match self.pool.try_lock() {
            Ok(pool) => Some(pool),
            // The pool is a list of idle connections; a panic elsewhere
            // cannot leave it inconsistent.
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Takes an idle connection. A forked child with PIDCHECK set first
    /// drops (closes its copies of) the connections it inherited.
    fn checkout(&self) -> Option<Conn> {
        let mut pool = self.try_pool()?;
        if self.flags.contains(Flags::PERSISTENT_PIDCHECK) {
            let pid = std::process::id();
            if pool.pid != pid {
                pool.idle.clear();
                pool.pid = pid;
            }
        }
        pool.idle.pop()
    }

    /// Keeps a connection for reuse (or closes it when the pool is full,
    /// busy, or belongs to another process).
    fn checkin(&self, conn: Conn) {
        let Some(mut pool) = self.try_pool() else {
            return;
        };
        if self.flags.contains(Flags::PERSISTENT_PIDCHECK) && pool.pid != std::process::id() {
            return;
        }
        if pool.idle.len() < MAX_IDLE {
            pool.idle.push(conn);
        }
    }
}

fn env_timeout_ms() -> u64 {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_TIMEOUT.as_millis() as u64)
}

fn check_id(id: &[u8]) -> Result<(), ClientError> {
    if id.is_empty() {
        return Err(ClientError::InvalidArgument("empty session id"));
    }
    if id.len() > MAX_TOTAL_DATA {
        return Err(ClientError::TooLarge);
    }
    Ok(())
}

/// The reply to REMOVE or HAVE: 0x00 found, 0x01 not found.
fn found_reply(reply: &[u8]) -> Result<bool, ClientError> {
    match reply {
        [0] => Ok(true),
        [1] => Ok(false),
        _ => Err(ClientError::UnexpectedReply(
            "expected a found/not-found byte",
        )),
    }
}

impl Conn {
    /// Connects, with the receive timer armed for `timeout` (see
    /// [`Stream::read_before`]).
    fn open(address: &Address, deadline: Deadline, timeout: Duration) -> Result<Conn, ClientError> {
        let mut stream = Stream::connect(address, deadline)?;
        stream
            .arm_read_timer(read_timer_for(timeout))
            .map_err(NalError::Io)?;
        Ok(Conn {
            stream,
            armed_for: timeout,
            decoder: Decoder::new(Role::Client),
            out: Vec::new(),
        })
    }

    /// One request out, one reply in. Any error leaves the connection unfit
    /// for reuse; the caller drops it.
    fn round_trip(
        &mut self,
        cmd: Command,
        payload: &[u8],
        deadline: Deadline,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        if timeout != self.armed_for {
            self.stream
                .arm_read_timer(read_timer_for(timeout))
                .map_err(NalError::Io)?;
            self.armed_for = timeout;
        }
        let uid = next_request_uid();
        self.out.clear();
        encode_message(&mut self.out, false, uid, cmd, payload)?;
        self.stream.write_all_before(&self.out, deadline)?;
        // The memory is unavailable only while the thread is exiting.
        let mut buf = READ_BUF
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0; READ_CHUNK].into_boxed_slice());
        let reply = self.read_reply(&mut buf, uid, cmd, deadline);
        let _ = READ_BUF.try_with(|b| b.set(Some(buf)));
        reply
    }

    /// Reads the reply to request `uid`, a `cmd`, into `buf`.
    fn read_reply(
        &mut self,
        buf: &mut [u8],
        uid: u32,
        cmd: Command,
        deadline: Deadline,
    ) -> Result<Vec<u8>, ClientError> {
        loop {
            let n = self.stream.read_before(buf, deadline)?;
            let (used, msg) = self.decoder.decode(&buf[..n])?;
            let Some(msg) = msg else { continue };
            if used != n {
                return Err(ClientError::UnexpectedReply("bytes after the reply"));
            }
            if msg.uid != uid {
                return Err(ClientError::UnexpectedReply(
                    "reply carries another request uid",
                ));
            }
            if msg.command != cmd {
                return Err(ClientError::UnexpectedReply(
                    "reply is for another operation",
                ));
            }
            return Ok(msg.payload);
        }
    }
}
