//! The proxy's one connection to the server: connecting and reconnecting,
//! the requests in flight under the proxy's own uids, and the replies.
//!
//! A server that stalls (no progress on requests in flight, or a connection
//! attempt that does not finish, within the timeout) is marked down for a
//! back-off period, as the client library does (see
//! [`crate::client::breaker`]): every request is answered at once until it
//! is over. Then the proxy reconnects and lets one request through; until
//! that request's reply comes back, the others are still answered at once.
//! The reply marks the server up; another stall doubles the back-off. A
//! refused connection is tried again every retry period.

use super::ProxyConfig;
use crate::client::Backoff;
use crate::nal::{Address, Stream};
use crate::proto::{encode_message, Command, Decoder, Message, Role};
use crate::tls::{ClientTls, Upstream};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests are forwarded only while fewer than this many bytes wait to be
/// written to the server; the rest wait in their clients.
const MAX_PENDING_OUT: usize = 256 * 1024;

/// A request forwarded to the server, waiting for its reply.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    /// The client's slot and connection id.
    pub(super) slot: usize,
    pub(super) client: u64,
    /// The command, which the reply must repeat.
    pub(super) command: Command,
}

#[derive(Debug)]
enum State {
    /// No connection; the next attempt is due at this instant.
    Down { retry_at: Instant },
    /// A connection attempt in progress since `started`.
    Connecting { stream: Stream, started: Instant },
    /// Connected (for TLS, perhaps still in the handshake).
    Up { stream: Upstream },
}

/// What became of the connection in a call that can change it.
#[derive(Debug)]
pub(super) enum Change {
    /// The connection is now up.
    Up,
    /// An attempt to connect failed.
    Unreachable(String),
    /// An established connection (or an attempt in progress) was lost;
    /// these requests will never be answered.
    Lost(String, Vec<InFlight>),
}

#[derive(Debug)]
pub(super) struct Backend {
    address: Address,
    /// TLS to the server, for a `TLS:` address.
    tls: Option<Arc<ClientTls>>,
    retry: Duration,
    timeout: Duration,
    max_in_flight: usize,
    down: Backoff,
    /// The back-off period the server was last given; zero once a reply
    /// came after it.
    backoff: Duration,
    /// Whether the connection is on trial after a stall: one request at a
    /// time until a reply comes.
    trial: bool,
    /// Times the server was marked down.
    stalls: u64,
    state: State,
    next_uid: u32,
    in_flight: HashMap<u32, InFlight>,
    out: Vec<u8>,
    sent: usize,
    decoder: Decoder,
    /// When the server last made progress (bytes read or written) while
    /// it had work, or when it was last given work after having none.
    progress: Instant,
}

impl Backend {
    /// A server leg to `config.server` that makes its first attempt at
    /// once.
    pub(super) fn new(config: &ProxyConfig, now: Instant) -> Backend {
        Backend {
            address: config.server.clone(),
            tls: config.tls.clone(),
            retry: config.retry,
            timeout: config.server_timeout,
            max_in_flight: config.max_in_flight,
            down: config.down,
            backoff: Duration::ZERO,
            trial: false,
            stalls: 0,
            state: State::Down { retry_at: now },
            next_uid: 1,
            in_flight: HashMap::new(),
            out: Vec::new(),
            sent: 0,
            decoder: Decoder::new(Role::Client),
            progress: now,
        }
    }

    pub(super) fn address(&self) -> &Address {
        &self.address
    }

    /// Whether requests can go to the server; otherwise the proxy answers
    /// them itself. A connection attempt still in progress does not count:
    /// a server whose host does not answer must not hold requests for the
    /// whole connect timeout. Nor does a connection on trial with its one
    /// request in flight.
    pub(super) fn is_available(&self) -> bool {
        matches!(self.state, State::Up { .. }) && !(self.trial && self.busy())
    }

    /// Whether another request may be forwarded now.
    pub(super) fn has_room(&self) -> bool {
        self.is_available()
            && self.in_flight.len() < self.max_in_flight
            && self.out.len() - self.sent < MAX_PENDING_OUT
    }

    fn busy(&self) -> bool {
        !self.in_flight.is_empty() || self.sent < self.out.len()
    }

    /// The descriptor to watch and for what (read, write), if any.
    pub(super) fn interest(&self) -> Option<(RawFd, bool, bool)> {
        match &self.state {
            State::Down { .. } => None,
            State::Connecting { stream, .. } => Some((raw(stream), false, true)),
            State::Up { stream } => {
                let write = self.sent < self.out.len() && stream.can_send();
                Some((stream.raw_fd(), true, write || stream.wants_write()))
            }
        }
    }

    /// When [`Backend::tick`] has something to do.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Connecting { started, .. } => Some(*started + self.timeout),
            State::Up { .. } => self.busy().then(|| self.progress + self.timeout),
        }
    }

    /// Attempts a connection when one is due, and gives up on a server that
    /// stalled or a connection attempt that takes too long.
    pub(super) fn tick(&mut self, now: Instant) -> Option<Change> {
        match &self.state {
            State::Down { retry_at } if now >= *retry_at => self.connect(now),
            State::Connecting { started, .. } if now >= *started + self.timeout => {
                Some(self.stalled("connection attempt timed out".into(), now))
            }
            State::Up { .. } if self.busy() && now >= self.progress + self.timeout => {
                Some(self.stalled(format!("no reply for {} ms", self.timeout.as_millis()), now))
            }
            _ => None,
        }
    }

    fn connect(&mut self, now: Instant) -> Option<Change> {
        match Stream::connect_start(&self.address) {
            Ok((stream, true)) => {
                let stream = match Upstream::connected(stream, self.tls.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return Some(self.fail(e.to_string(), now)),
                };
                self.state = State::Up { stream };
                self.progress = now;
                // On trial, up only once a reply comes.
                (!self.trial).then_some(Change::Up)
            }
            Ok((stream, false)) => {
                self.state = State::Connecting {
                    stream,
                    started: now,
                };
                self.progress = now;
                // Reported once the attempt ends.
                None
            }
            Err(e) => {
                self.state = State::Down {
                    retry_at: now + self.retry,
                };
                Some(Change::Unreachable(e.to_string()))
            }
        }
    }

    /// Drops the connection of a server that stalled, and marks it down
    /// for the next back-off period (unless the back-off is off).
    fn stalled(&mut self, reason: String, now: Instant) -> Change {
        let change = self.fail(reason, now);
        if !self.down.is_off() {
            self.backoff = self.down.after(self.backoff);
            self.trial = true;
            self.stalls += 1;
            self.state = State::Down {
                retry_at: now + self.backoff,
            };
        }
        change
    }

    /// While the server is marked down (and not yet found up again): the
    /// back-off period it was last given, and how many times it has been
    /// marked down since the proxy started.
    pub(super) fn marked_down(&self) -> Option<(Duration, u64)> {
        self.trial.then_some((self.backoff, self.stalls))
    }

    /// Drops the connection: nothing in flight will be answered.
    fn fail(&mut self, reason: String, now: Instant) -> Change {
        let was_up = matches!(self.state, State::Up { .. });
        self.state = State::Down {
            retry_at: now + self.retry,
        };
        self.out = Vec::new();
        self.sent = 0;
        self.decoder = Decoder::new(Role::Client);
        let lost: Vec<InFlight> = self.in_flight.drain().map(|(_, f)| f).collect();
        if was_up || !lost.is_empty() {
            Change::Lost(reason, lost)
        } else {
            Change::Unreachable(reason)
        }
    }

    /// Queues a request for the server under the next uid of the proxy's
    /// own counter. Call only when [`Backend::has_room`].
    pub(super) fn forward(
        &mut self,
        command: Command,
        payload: &[u8],
        to: InFlight,
        now: Instant,
    ) -> bool {
        if !self.busy() {
            self.progress = now;
        }
        let uid = self.take_uid();
        if self.sent > 0 && self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        if encode_message(&mut self.out, false, uid, command, payload).is_err() {
            return false;
        }
        self.in_flight.insert(uid, to);
        true
    }

    /// The next uid not in flight (1, 2, 3, ...; 0 is skipped on wrapping).
    fn take_uid(&mut self) -> u32 {
        loop {
            let uid = self.next_uid;
            self.next_uid = self.next_uid.wrapping_add(1).max(1);
            if !self.in_flight.contains_key(&uid) {
                return uid;
            }
        }
    }

    /// Writes queued requests while the socket takes them.
    pub(super) fn flush(&mut self, now: Instant) -> Option<Change> {
        let State::Up { stream } = &mut self.state else {
            return None;
        };
        let mut failure = None;
        while self.sent < self.out.len() {
            match stream.send(&self.out[self.sent..]) {
                Ok(0) => {
                    failure = Some("connection closed".to_string());
                    break;
                }
                Ok(n) => {
                    self.sent += n;
                    self.progress = now;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > MAX_PENDING_OUT {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        failure.map(|why| self.fail(why, now))
    }

    /// Handles readiness of the server's socket: finishes a connection
    /// attempt, writes queued requests, reads replies into `replies`.
    pub(super) fn ready(
        &mut self,
        readable: bool,
        writable: bool,
        scratch: &mut [u8],
        replies: &mut Vec<(InFlight, Message)>,
        now: Instant,
    ) -> Option<Change> {
        if let State::Connecting { stream, .. } = &self.state {
            if !writable {
                return None;
            }
            return match stream.connect_result() {
                Ok(()) => {
                    let State::Connecting { stream, .. } =
                        std::mem::replace(&mut self.state, State::Down { retry_at: now })
                    else {
                        return None;
                    };
                    let stream = match Upstream::connected(stream, self.tls.as_deref()) {
                        Ok(s) => s,
                        Err(e) => return Some(self.fail(e.to_string(), now)),
                    };
                    self.state = State::Up { stream };
                    self.progress = now;
                    let up = (!self.trial).then_some(Change::Up);
                    self.flush(now).or(up)
                }
                Err(e) => Some(self.fail(e.to_string(), now)),
            };
        }
        if writable {
            if let Some(change) = self.flush(now) {
                return Some(change);
            }
        }
        if readable {
            return self.read(scratch, replies, now);
        }
        None
    }

    /// Reads what the server sent and takes the replies in it, until
    /// nothing more is there.
    fn read(
        &mut self,
        scratch: &mut [u8],
        replies: &mut Vec<(InFlight, Message)>,
        now: Instant,
    ) -> Option<Change> {
        loop {
            let State::Up { stream } = &mut self.state else {
                return None;
            };
            match stream.recv(scratch) {
                Ok(0) => return Some(self.fail("the server closed the connection".into(), now)),
                Ok(n) => {
                    self.progress = now;
                    if let Some(change) = self.take_replies(&scratch[..n], replies, now) {
                        return Some(change);
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Some(self.fail(e.to_string(), now)),
            }
            // TLS may hold the rest of what came in, and the socket would
            // not say so.
            if !matches!(&self.state, State::Up { stream } if stream.has_pending()) {
                return None;
            }
        }
    }

    /// Takes the replies in `input`, bytes just read from the server.
    fn take_replies(
        &mut self,
        mut input: &[u8],
        replies: &mut Vec<(InFlight, Message)>,
        now: Instant,
    ) -> Option<Change> {
        while !input.is_empty() {
            let (used, msg) = match self.decoder.decode(input) {
                Ok(r) => r,
                Err(e) => return Some(self.fail(format!("invalid reply: {e}"), now)),
            };
            input = &input[used..];
            let Some(msg) = msg else { continue };
            let Some(to) = self.in_flight.remove(&msg.uid) else {
                return Some(self.fail(
                    format!("reply for request uid {} not in flight", msg.uid),
                    now,
                ));
            };
            if to.command != msg.command {
                // Its client is answered with the others in flight.
                self.in_flight.insert(msg.uid, to);
                return Some(self.fail("reply for another operation".into(), now));
            }
            replies.push((to, msg));
        }
        if self.trial && !replies.is_empty() {
            // The probe was answered: the server is up.
            self.trial = false;
            self.backoff = Duration::ZERO;
            return Some(Change::Up);
        }
        None
    }
}

fn raw(stream: &Stream) -> RawFd {
    stream.as_fd().as_raw_fd()
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration for a server at `addr`, with `retry`, `timeout`,
    /// at most `max_in_flight` requests in flight and `down`.
    fn config(
        addr: Address,
        retry: Duration,
        timeout: Duration,
        max_in_flight: usize,
        down: Backoff,
    ) -> ProxyConfig {
        let mut config = ProxyConfig::new(addr.clone(), addr);
        config.retry = retry;
        config.server_timeout = timeout;
        config.max_in_flight = max_in_flight;
        config.down = down;
        config
    }

    fn backend() -> Backend {
        let addr = Address::parse("UNIX:/nonexistent/dc.sock").expect("address");
        let s = Duration::from_secs;
        Backend::new(
            &config(addr, s(1), s(1), 2, Backoff::default()),
            Instant::now(),
        )
    }

    fn to(slot: usize) -> InFlight {
        InFlight {
            slot,
            client: slot as u64,
            command: Command::Have,
        }
    }

    #[test]
    fn uids_count_from_one_and_skip_zero_and_those_in_flight() {
        let mut b = backend();
        assert_eq!((b.take_uid(), b.take_uid()), (1, 2));
        b.next_uid = u32::MAX;
        assert_eq!(b.take_uid(), u32::MAX);
        assert_eq!(b.take_uid(), 1, "0 is never used");
        b.in_flight.insert(2, to(0));
        assert_eq!(b.take_uid(), 3, "a uid still in flight is skipped");
    }

    #[test]
    fn unreachable_server_takes_no_requests_and_in_flight_is_bounded() {
        let mut b = backend();
        let now = Instant::now();
        assert!(matches!(b.tick(now), Some(Change::Unreachable(_))));
        assert!(!b.is_available() && !b.has_room());
        assert_eq!(b.deadline(), Some(now + Duration::from_secs(1)));

        // As if connected: two requests fill the table of two.
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        b.state = State::Up {
            stream: Upstream::Plain(Stream::from_unix(ours)),
        };
        assert!(b.has_room());
        assert!(b.forward(Command::Have, b"a", to(0), now));
        assert!(b.forward(Command::Have, b"b", to(1), now));
        assert!(!b.has_room());
        // Nothing answered within the timeout: both are given back.
        match b.tick(now + Duration::from_secs(2)) {
            Some(Change::Lost(_, lost)) => assert_eq!(lost.len(), 2),
            other => panic!("expected a lost connection, got {other:?}"),
        }
        assert!(!b.is_available());
    }

    #[test]
    fn a_stalled_server_is_marked_down_and_probed_with_one_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("silent.sock");
        // Connections complete in the kernel; nothing ever answers.
        let _silent = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let addr = Address::parse(&format!("UNIX:{}", path.display())).expect("address");
        let s = Duration::from_secs;
        let down = Backoff {
            min: s(1),
            max: s(3),
        };
        let now = Instant::now();
        let mut b = Backend::new(&config(addr, s(5), s(1), 8, down), now);
        assert!(matches!(b.tick(now), Some(Change::Up)));
        assert!(b.forward(Command::Have, b"a", to(0), now));
        assert!(b.flush(now).is_none());
        match b.tick(now + s(1)) {
            Some(Change::Lost(_, lost)) => assert_eq!(lost.len(), 1),
            other => panic!("expected the stalled request back, got {other:?}"),
        }
        assert_eq!(b.marked_down(), Some((s(1), 1)));
        assert!(!b.is_available());
        assert_eq!(b.deadline(), Some(now + s(2)), "the back-off, not -retry");

        // After the back-off: connected again, but up only once a reply
        // comes; one request at a time until then.
        let t = now + s(2);
        assert!(b.tick(t).is_none());
        assert!(b.is_available());
        assert!(b.forward(Command::Have, b"b", to(1), t));
        assert!(!b.is_available() && !b.has_room());
        assert!(b.flush(t).is_none());
        assert!(matches!(b.tick(t + s(1)), Some(Change::Lost(..))));
        assert_eq!(b.marked_down(), Some((s(2), 2)), "the back-off doubles");

        // A probe answered marks the server up.
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        b.state = State::Up {
            stream: Upstream::Plain(Stream::from_unix(ours)),
        };
        let t = t + s(3);
        assert!(b.forward(Command::Have, b"c", to(2), t));
        assert!(b.flush(t).is_none());
        let mut reply = Vec::new();
        let uid = *b.in_flight.keys().next().expect("in flight");
        encode_message(&mut reply, true, uid, Command::Have, &[0]).expect("encode");
        std::io::Write::write_all(&mut theirs, &reply).expect("reply");
        let mut scratch = vec![0; 1024];
        let mut replies = Vec::new();
        let change = b.ready(true, false, &mut scratch, &mut replies, t);
        assert!(matches!(change, Some(Change::Up)), "{change:?}");
        assert_eq!(replies.len(), 1);
        assert_eq!(b.marked_down(), None);
        assert!(b.is_available());
    }
}
