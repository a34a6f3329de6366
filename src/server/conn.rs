//! One client connection of an event-driven worker: a non-blocking socket
//! and the little state it needs between wake-ups.
//!
//! An idle connection holds no buffer: the decoder's header bytes, a few
//! times, and its place in the worker's list of connections by last
//! activity. Buffers exist only while something is partial:
//! - the message being reassembled (in the decoder, at most 32 KiB);
//! - replies the socket did not take yet ([`Conn::out`]): reading stops
//!   while they reach [`MAX_PENDING`], so a client that sends without
//!   reading costs at most that plus one reply;
//! - bytes read but not decoded yet ([`Conn::held`]), when decoding paused
//!   for a reply waiting on the disk (`-sync always`) or on the socket;
//! - the requests in flight ([`Conn::flight`]): one waiting for the disk,
//!   or, with a store that lets them overlap (Redis), up to
//!   [`MAX_IN_FLIGHT`] for different ids, their replies sent in request
//!   order.
//!
//! Replies to every complete request that one read brought are written
//! together, in order, with one `send` when the socket takes them.

use super::handler::{begin_request, finish_waiting, Begun, Request};
use super::{Clock, Outcome, Policy, Stats};
use crate::cache::{Millis, Receipt, Store};
use crate::proto::{AddRequest, Command, Decoder, Role};
use crate::tls::Link;
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// How long the replies a client left unread may wait: then it is dropped.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send the rest of a request it started.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take over the TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping server waits for a half-received request.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(1);
/// Bytes a worker reads at once. Pipelined requests in one read are
/// answered together.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Replies pending on one connection beyond which it is read no further
/// until the client has taken some.
pub(super) const MAX_PENDING: usize = 64 * 1024;
/// Requests of one connection in flight at once, with a store that lets
/// them overlap ([`Store::overlaps`]).
pub(super) const MAX_IN_FLIGHT: usize = 32;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The peer closed its side.
    PeerClosed,
    /// The peer sent bytes that are not valid requests.
    Malformed,
    /// Reading or writing failed.
    Io,
    /// The server is stopping.
    Stopping,
    /// It sent nothing for the idle timeout.
    Idle,
    /// It left a request half-sent, or its replies unread, too long.
    Stalled,
    /// It was the longest idle when a new connection needed its place.
    Displaced,
}

/// What a connection's requests are carried out with: the worker's view of
/// the server for one wake-up.
pub(super) struct Env<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) stats: &'a Stats,
    pub(super) policy: Policy,
    /// The server's clock, read once per wake-up: for the time limits.
    pub(super) now: Millis,
    /// The server's clock itself: each request reads it anew, after its
    /// bytes came in, so that a request never sees the store as it was
    /// before one its client saw answered.
    pub(super) clock: Clock,
    /// The worker's reply buffer: replies are framed here, then sent.
    pub(super) out: &'a mut Vec<u8>,
    /// The worker's buffer for a GET hit's data.
    pub(super) data: &'a mut Vec<u8>,
}

/// A request whose reply waits for the store: an ADD, a REMOVE or a
/// TAKE for the disk, any request for a remote store.
#[derive(Debug)]
struct Waiting {
    uid: u32,
    command: Command,
    receipt: Receipt,
    began: Instant,
    /// A TAKE's session data, sent once its removal is on disk (empty
    /// otherwise, and for a store that gives the data when it answers).
    taken: Vec<u8>,
    /// The session id it is for (empty when it names none).
    id: Vec<u8>,
}

/// A request begun and not yet answered on the wire, in the order the
/// requests came.
#[derive(Debug)]
enum Slot {
    /// Its answer waits for the store.
    Waiting(Waiting),
    /// Answered; its framed reply waits for the replies before it.
    Ready(Vec<u8>),
}

/// The requests of a connection that are in flight, and the next one if
/// it could not begin yet.
#[derive(Debug, Default)]
struct Flight {
    /// Begun and not answered on the wire yet, oldest first; never empty.
    queue: VecDeque<Slot>,
    /// A request decoded that waits to begin.
    parked: Option<Parked>,
}

/// A request decoded while it could not begin yet (one for the same id
/// is in flight, or too many are).
#[derive(Debug)]
struct Parked {
    uid: u32,
    command: Command,
    payload: Vec<u8>,
}

/// The session id a request is for; empty when it names none (an ADD
/// refused or malformed before the store is asked).
fn request_id(command: Command, payload: &[u8]) -> &[u8] {
    match command {
        Command::Add => match AddRequest::parse(payload) {
            Ok(Ok(add)) => add.id,
            _ => &[],
        },
        _ => payload,
    }
}

/// What a connection's socket is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watch {
    /// Not registered yet: a new connection is served once before.
    Nothing,
    /// Bytes coming in.
    Read,
    /// Bytes coming in, and room to send: while replies wait.
    ReadWrite,
}

/// A connection's state between wake-ups.
#[derive(Debug)]
pub(super) struct Conn {
    /// The socket, plain or under TLS.
    pub(super) sock: Link,
    decoder: Decoder,
    /// Replies not yet taken by the socket.
    out: Vec<u8>,
    /// Bytes read but not decoded yet.
    held: Vec<u8>,
    /// The requests in flight; `None` when there is none.
    flight: Option<Box<Flight>>,
    /// What the worker asked the kernel to watch the socket for.
    pub(super) watch: Watch,
    /// When bytes last came in, or replies last went out (server clock).
    pub(super) last_active: Millis,
    /// When the request now half-received began.
    request_began: Millis,
    /// When replies started waiting for the socket.
    out_since: Millis,
    /// The peer closed its sending side while requests were held or in
    /// flight: nothing more is read, and the connection ends once they
    /// are answered.
    peer_closed: bool,
    /// The socket was read empty and no readiness event came since: a
    /// wake-up for the store's answers does not read it again (the kernel
    /// reports new bytes with an event of their own).
    drained: bool,
}

/// How far a connection got in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Nothing more to do until the socket or the store says so.
    Parked,
    /// The connection is over.
    Closed(End),
}

impl Conn {
    pub(super) fn new(sock: Link, now: Millis) -> Conn {
        Conn {
            sock,
            decoder: Decoder::new(Role::Server),
            out: Vec::new(),
            held: Vec::new(),
            flight: None,
            watch: Watch::Nothing,
            last_active: now,
            request_began: now,
            out_since: now,
            peer_closed: false,
            drained: false,
        }
    }

    /// The kernel reported the socket ready: it may hold bytes to read.
    pub(super) fn readable(&mut self) {
        self.drained = false;
    }

    /// Whether the connection is in the middle of an exchange: replies
    /// unsent, or a reply waiting for the disk. Such a connection is never
    /// displaced, and a stopping server lets it finish.
    pub(super) fn is_busy(&self) -> bool {
        !self.out.is_empty() || self.flight.is_some()
    }

    /// Whether replies (or the TLS handshake) wait for the socket to take
    /// them.
    pub(super) fn has_unsent(&self) -> bool {
        !self.out.is_empty() || self.sock.wants_write()
    }

    /// Whether part of a request has come in, or the TLS handshake is
    /// still going on: both are bounded alike.
    pub(super) fn is_mid_request(&self) -> bool {
        self.decoder.is_mid_message() || !self.held.is_empty() || self.sock.is_handshaking()
    }

    /// Whether a reply waits for the disk.
    pub(super) fn is_waiting(&self) -> bool {
        self.flight.is_some()
    }

    /// How many requests are in flight.
    fn in_flight(&self) -> usize {
        self.flight.as_ref().map_or(0, |f| f.queue.len())
    }

    /// Does all that can be done now: finishes a waiting reply if the store
    /// has its answer, decodes held bytes, reads and answers what the
    /// socket has, and sends the replies. `drained_hint`: the readiness
    /// event said no end of stream, so a short read means the socket is
    /// empty.
    pub(super) fn drive(&mut self, env: &mut Env<'_>, buf: &mut [u8], drained_hint: bool) -> Flow {
        match self.run(env, buf, drained_hint) {
            Ok(()) => Flow::Parked,
            Err(end) => {
                if end == End::Malformed {
                    env.stats.metrics().count_protocol_error();
                }
                // Answer what came before the end, if the socket takes it.
                if matches!(end, End::Malformed | End::PeerClosed) {
                    let _ = self.flush(env);
                }
                Flow::Closed(end)
            }
        }
    }

    fn run(&mut self, env: &mut Env<'_>, buf: &mut [u8], drained_hint: bool) -> Result<(), End> {
        // Replies finished now go out even when no more requests may
        // begin yet.
        let more = self.finish_waiting(env)?;
        self.flush(env)?;
        if !more {
            return Ok(());
        }
        if self.out.len() >= MAX_PENDING {
            return Ok(());
        }
        if !self.held.is_empty() {
            // The backlog moves on: its time limit counts from now.
            self.request_began = env.now;
            let held = std::mem::take(&mut self.held);
            if !self.take_input(env, &held)? {
                return self.flush(env);
            }
        }
        if self.peer_closed {
            // What came before the peer's end is all answered.
            return match self.flight.is_none() && self.held.is_empty() {
                true => Err(End::PeerClosed),
                false => Ok(()),
            };
        }
        if self.drained {
            return self.flush(env);
        }
        loop {
            self.flush(env)?;
            if self.out.len() >= MAX_PENDING {
                return Ok(());
            }
            let n = match self.sock.read(buf) {
                Ok(0) if self.flight.is_none() && self.held.is_empty() => {
                    return Err(End::PeerClosed)
                }
                Ok(0) => {
                    // Requests still wait for the store: answer them first.
                    self.peer_closed = true;
                    return Ok(());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(End::Io),
            };
            if !self.decoder.is_mid_message() {
                self.request_began = env.now;
            }
            self.last_active = env.now;
            if !self.take_input(env, &buf[..n])? {
                return self.flush(env);
            }
            if drained_hint && n < buf.len() && self.sock.short_read_drains() {
                self.drained = true;
                return self.flush(env);
            }
        }
    }

    /// The replies to the requests in flight, in order, as far as the
    /// store has answered them; then the parked request, if it may begin
    /// now. True when the connection may take more requests.
    fn finish_waiting(&mut self, env: &mut Env<'_>) -> Result<bool, End> {
        let Some(flight) = self.flight.as_mut() else {
            return Ok(true);
        };
        while let Some(front) = flight.queue.front() {
            match front {
                Slot::Ready(bytes) => env.out.extend_from_slice(bytes),
                Slot::Waiting(w) => {
                    let Some(outcome) = finish_waiting(
                        env.store, &w.receipt, w.uid, w.command, &w.taken, env.out, env.data,
                    ) else {
                        break;
                    };
                    env.stats
                        .metrics()
                        .record(w.command, outcome, w.began.elapsed());
                    self.last_active = env.now;
                }
            }
            flight.queue.pop_front();
        }
        let parked = flight.parked.take();
        if flight.queue.is_empty() {
            self.flight = None;
        }
        if let Some(p) = parked {
            if !self.may_begin(env, p.command, &p.payload) {
                if let Some(flight) = self.flight.as_mut() {
                    flight.parked = Some(p);
                }
                return Ok(false);
            }
            let req = Request {
                uid: p.uid,
                command: p.command,
                payload: &p.payload,
            };
            self.begin(env, req, Instant::now())?;
        }
        Ok(self.may_take_more(env))
    }

    /// Whether another request may begin before those in flight are
    /// answered.
    fn may_take_more(&self, env: &Env<'_>) -> bool {
        let n = self.in_flight();
        n == 0 || env.store.overlaps() && n < MAX_IN_FLIGHT
    }

    /// Whether a request (`command` with `payload`) may begin now: nothing
    /// is in flight, or the store lets requests overlap, there is room,
    /// and none in flight is for the same id (so that each id's requests
    /// are carried out in the order they came).
    fn may_begin(&self, env: &Env<'_>, command: Command, payload: &[u8]) -> bool {
        let Some(flight) = &self.flight else {
            return true;
        };
        if !self.may_take_more(env) {
            return false;
        }
        let id = request_id(command, payload);
        !flight
            .queue
            .iter()
            .any(|s| matches!(s, Slot::Waiting(w) if !id.is_empty() && w.id == id))
    }

    /// Begins `req` (which came in at `mark`): its reply is framed in
    /// `env.out` when nothing is in flight before it, and queued
    /// otherwise.
    fn begin(&mut self, env: &mut Env<'_>, req: Request<'_>, mark: Instant) -> Result<(), End> {
        let now = env.clock.at(mark);
        let queued = self.flight.is_some();
        let mut own = Vec::new();
        let out = if queued { &mut own } else { &mut *env.out };
        let begun = begin_request(env.policy, env.store, now, req, out, env.data, true);
        let finished = Instant::now();
        match begun {
            Ok(Begun::Done(outcome)) => {
                env.stats
                    .metrics()
                    .record(req.command, outcome, finished - mark);
                if let Some(flight) = self.flight.as_mut() {
                    flight.queue.push_back(Slot::Ready(own));
                }
                Ok(())
            }
            Ok(Begun::Waiting(receipt)) => {
                let flight = self.flight.get_or_insert_with(Box::default);
                flight.queue.push_back(Slot::Waiting(Waiting {
                    uid: req.uid,
                    command: req.command,
                    receipt,
                    began: mark,
                    id: request_id(req.command, req.payload).to_vec(),
                    taken: taken_data(req.command, env.data),
                }));
                Ok(())
            }
            Err(_) => {
                env.stats
                    .metrics()
                    .record(req.command, Outcome::Malformed, finished - mark);
                Err(End::Malformed)
            }
        }
    }

    /// Decodes `input` and carries out every complete request, framing the
    /// replies in `env.out`. False when it stopped early (a reply waits for
    /// the disk, or too many replies wait for the socket); what was not
    /// decoded is then kept in `held`.
    fn take_input(&mut self, env: &mut Env<'_>, mut input: &[u8]) -> Result<bool, End> {
        let mut mark = Instant::now();
        while !input.is_empty() {
            // Whole one-frame requests are read where they lie; the
            // decoder copies only what comes in pieces.
            let assembled;
            let (used, req) = match self.decoder.decode_whole(input) {
                Ok(Some(whole)) => {
                    let req = Request {
                        uid: whole.header.uid,
                        command: whole.header.command,
                        payload: whole.payload,
                    };
                    (whole.used, Some(req))
                }
                Ok(None) => {
                    let (used, msg) = self.decoder.decode(input).map_err(|_| End::Malformed)?;
                    assembled = msg;
                    let req = assembled.as_ref().map(|m| Request {
                        uid: m.uid,
                        command: m.command,
                        payload: &m.payload,
                    });
                    (used, req)
                }
                Err(_) => return Err(End::Malformed),
            };
            input = &input[used..];
            let Some(req) = req else { continue };
            if !self.may_begin(env, req.command, req.payload) {
                // Something is in flight, or the request could begin.
                if let Some(flight) = self.flight.as_mut() {
                    flight.parked = Some(Parked {
                        uid: req.uid,
                        command: req.command,
                        payload: req.payload.to_vec(),
                    });
                }
                self.held.extend_from_slice(input);
                return Ok(false);
            }
            self.begin(env, req, mark)?;
            mark = Instant::now();
            if !self.may_take_more(env) {
                // A reply waits (for the disk): the rest is decoded only
                // once it is sent.
                self.held.extend_from_slice(input);
                return Ok(false);
            }
            if env.out.len() + self.out.len() >= MAX_PENDING {
                self.flush(env)?;
                if !self.out.is_empty() {
                    self.held.extend_from_slice(input);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends the replies framed so far: those left from before, then the
    /// new ones in `env.out` (emptied). What the socket does not take stays
    /// in `out`.
    fn flush(&mut self, env: &mut Env<'_>) -> Result<(), End> {
        if self.out.is_empty() {
            if env.out.is_empty() {
                return Ok(());
            }
            let sent = send(&mut self.sock, env.out)?;
            if sent < env.out.len() {
                self.out.extend_from_slice(&env.out[sent..]);
                self.out_since = env.now;
            } else {
                self.last_active = env.now;
            }
            env.out.clear();
            return Ok(());
        }
        self.out.append(env.out);
        let sent = send(&mut self.sock, &self.out)?;
        if sent > 0 {
            self.out.drain(..sent);
            self.out_since = env.now;
            self.last_active = env.now;
        }
        if self.out.is_empty() {
            // Give the memory back: most connections never need it again.
            self.out = Vec::new();
        }
        Ok(())
    }

    /// The time limit the connection has outlived at `now`, if any:
    /// replies unread, or a request half-sent, for 30 s; silence for
    /// `idle`.
    pub(super) fn expired(&self, now: Millis, idle: Option<Millis>) -> Option<End> {
        let over = |since: Millis, limit: Duration| {
            now.saturating_sub(since) >= limit.as_millis() as Millis
        };
        if !self.out.is_empty() && over(self.out_since, SEND_TIMEOUT) {
            return Some(End::Stalled);
        }
        if self.sock.is_handshaking() && over(self.request_began, HANDSHAKE_TIMEOUT) {
            return Some(End::Stalled);
        }
        let mid = self.is_mid_request();
        if mid && over(self.request_began, REQUEST_TIMEOUT) {
            return Some(End::Stalled);
        }
        match idle {
            Some(idle) if !self.is_busy() && now.saturating_sub(self.last_active) >= idle => {
                Some(if mid { End::Stalled } else { End::Idle })
            }
            _ => None,
        }
    }
}

/// The data a waiting TAKE removed, moved out of the worker's buffer to be
/// kept with it; nothing for other requests.
fn taken_data(command: Command, data: &mut Vec<u8>) -> Vec<u8> {
    if command == Command::Take {
        std::mem::take(data)
    } else {
        Vec::new()
    }
}

/// Sends what the socket takes of `bytes` without waiting; how much it took.
fn send(sock: &mut Link, bytes: &[u8]) -> Result<usize, End> {
    let mut sent = 0;
    while sent < bytes.len() {
        match sock.send(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(End::Io),
        }
    }
    Ok(sent)
}
