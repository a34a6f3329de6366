//! The blocking client behind `DC_CTX`: connection policy (persistent or a
//! connection per operation, late connect, retry) and timeouts, here; the
//! flags ([`Flags`]), the errors ([`ClientError`]), the per-address breaker
//! ([`breaker`]), the pool of idle connections with its fork check, the
//! per-thread memory of `reget`, and one connection's request/reply
//! exchange, each in a module of its own.
//!
//! ```no_run
//! use distcache::{Client, Flags};
//! let client = Client::new("UNIX:/run/dc_server.sock", Flags::PERSISTENT)?;
//! client.add(b"session-id", b"session data", 300_000)?;
//! assert_eq!(client.get(b"session-id")?.as_deref(), Some(&b"session data"[..]));
//! # Ok::<(), distcache::ClientError>(())
//! ```

pub mod breaker;
mod error;
mod exchange;
mod flags;
mod pool;
mod reget;

pub use breaker::{stats as breaker_stats, Backoff, BreakerStats, Health};
pub use error::ClientError;
pub use flags::Flags;

use crate::nal::{Address, Deadline, NalError};
use crate::proto::{AddRequest, Command, Status, MAX_TOTAL_DATA};
use crate::sys::clock::millis;
use crate::tls::{is_tls, ClientTls, TlsAddress};
use breaker::{Breaker, Outcome};
use exchange::Conn;
use pool::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The timeout of every operation unless configured otherwise. A healthy
/// server answers in well under a millisecond; this is long enough for a
/// busy one, and short enough that a stalled one costs a TLS handshake one
/// second, once per back-off period (see [`Backoff`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Environment variable that overrides [`DEFAULT_TIMEOUT`], in milliseconds.
pub const TIMEOUT_ENV: &str = "DISTCACHE_TIMEOUT_MS";

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
    pool: Pool,
    /// Distinguishes this client in the per-thread reget memory.
    serial: u64,
    /// The address's record, shared by every client of the process.
    breaker: Breaker,
    /// The back-off periods: minimum and maximum, in milliseconds.
    backoff_ms: (AtomicU64, AtomicU64),
    /// TLS to the server, for a `TLS:` address: credentials and the last
    /// session.
    tls: Option<ClientTls>,
}

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

impl Client {
    /// A client for `address` (see [`Address`] for the syntax).
    ///
    /// With [`Flags::PERSISTENT`] and without [`Flags::PERSISTENT_LATE`] it
    /// connects at once and fails if it cannot; otherwise it does not touch
    /// the network. The timeout is taken from `DISTCACHE_TIMEOUT_MS` when set,
    /// and the breaker's back-off from `DISTCACHE_DOWN_MS` (see [`Backoff`]).
    pub fn new(address: &str, flags: Flags) -> Result<Client, ClientError> {
        let (address, tls) = if is_tls(address) {
            let a = TlsAddress::parse(address).map_err(ClientError::Address)?;
            let tls = a
                .address
                .can_connect()
                .then(|| ClientTls::from_env(&a))
                .transpose()?;
            (a.address, tls)
        } else {
            (Address::parse(address).map_err(ClientError::Address)?, None)
        };
        if !address.can_connect() {
            return Err(ClientError::Address(NalError::NotConnectable(
                address.to_string(),
            )));
        }
        let client = Client {
            flags,
            timeout_ms: AtomicU64::new(env_timeout_ms()),
            pool: Pool::new(),
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            breaker: Breaker::for_address(&address.to_string()),
            backoff_ms: (AtomicU64::new(0), AtomicU64::new(0)),
            address,
            tls,
        };
        client.set_backoff(Backoff::from_env());
        if flags.contains(Flags::PERSISTENT) && !flags.contains(Flags::PERSISTENT_LATE) {
            let conn = client.guarded(|timeout| {
                Conn::open(
                    &client.address,
                    client.tls.as_ref(),
                    Deadline::after(timeout),
                    timeout,
                )
            })?;
            client.pool.checkin(conn, client.pidcheck());
        }
        Ok(client)
    }

    /// Drops the TLS session kept for resumption, so that the next
    /// connection makes a full handshake (for measurements).
    #[doc(hidden)]
    pub fn forget_tls_session(&self) {
        if let Some(tls) = &self.tls {
            tls.forget_session();
        }
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
        self.timeout_ms
            .store(millis(timeout).max(1), Ordering::Relaxed);
    }

    /// The current operation timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets the breaker's back-off for this client's operations
    /// ([`Backoff::OFF`] turns it off for them).
    pub fn set_backoff(&self, backoff: Backoff) {
        self.backoff_ms
            .0
            .store(millis(backoff.min), Ordering::Relaxed);
        self.backoff_ms
            .1
            .store(millis(backoff.max), Ordering::Relaxed);
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
        self.fetch(Command::Get, id)
    }

    /// Fetches a session and deletes it on the server in the same step: of
    /// any number of takes of one id, from any clients, at most one gets
    /// the session. `Ok(None)` when the server has none for `id`. The reply
    /// reads as [`Client::get`]'s, and [`Client::reget`] returns it again.
    ///
    /// A server that does not know the operation (the original's) closes
    /// the connection: that is an error, never a session.
    pub fn take(&self, id: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.fetch(Command::Take, id)
    }

    /// The body of [`Client::get`] and [`Client::take`].
    fn fetch(&self, command: Command, id: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.forget_last_get();
        check_id(id)?;
        let reply = self.transact(command, id)?;
        if reply.len() < 5 {
            return match reply.as_slice() {
                [1] => Ok(None),
                _ => Err(ClientError::UnexpectedReply(
                    "GET or TAKE reply shorter than 5 bytes",
                )),
            };
        }
        reget::remember(self.serial, id, &reply);
        Ok(Some(reply))
    }

    /// The session the calling thread's last operation on this client
    /// fetched with [`Client::get`] or [`Client::take`], if it was for `id`
    /// and found it. No network traffic.
    pub fn reget(&self, id: &[u8]) -> Option<Vec<u8>> {
        reget::recall(self.serial, id)
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
        reget::forget(self.serial);
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
        let open = || Conn::open(&self.address, self.tls.as_ref(), deadline, timeout);
        if !self.flags.contains(Flags::PERSISTENT) {
            return open()?.round_trip(cmd, payload, deadline, timeout);
        }
        let (mut conn, reused) = match self.pool.checkout(self.pidcheck()) {
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
            self.pool.checkin(conn, self.pidcheck());
        }
        result
    }

    /// Whether a forked child must not use its parent's connections:
    /// with `PERSISTENT_PIDCHECK`, and always over TLS, whose state two
    /// processes cannot share.
    fn pidcheck(&self) -> bool {
        self.flags.contains(Flags::PERSISTENT_PIDCHECK) || self.tls.is_some()
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
