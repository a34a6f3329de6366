//! One local client connection: it reads one request at a time, holds it
//! until the reply is written back, then reads the next.

use crate::nal::Stream;
use crate::proto::{encode_message, Command, Decoder, Role};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// How long a client may take to send the rest of a request it started.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may leave a reply unread before it is dropped.
pub(super) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The client closed its side (or reset the connection).
    Closed,
    /// It sent bytes that are not a valid request.
    Malformed,
    /// A socket error.
    Io,
    /// Idle longer than the configured idle timeout.
    Idle,
    /// A half-sent request or an unread reply outlived its bound.
    Stalled,
}

/// Where the client is in its request/reply cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for (the rest of) a request.
    Reading,
    /// A whole request is held; it waits to be forwarded or for its reply.
    Waiting,
    /// Writing the reply.
    Replying,
}

#[derive(Debug)]
pub(super) struct Local {
    /// Tells this connection apart from any other that later gets the same
    /// slot, so that a late reply never reaches the wrong client.
    pub(super) id: u64,
    stream: Stream,
    decoder: Decoder,
    /// Bytes read past the end of the current request (pipelined ones).
    leftover: Vec<u8>,
    /// uid and command of the request being served.
    request: Option<(u32, Command)>,
    /// Its payload, until it is forwarded.
    payload: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    phase: Phase,
    /// When bytes last arrived or a reply was last finished.
    last_active: Instant,
    /// When the current partial request or reply started.
    since: Instant,
}

impl Local {
    pub(super) fn new(id: u64, stream: Stream, now: Instant) -> Local {
        Local {
            id,
            stream,
            decoder: Decoder::new(Role::Server),
            leftover: Vec::new(),
            request: None,
            payload: Vec::new(),
            out: Vec::new(),
            sent: 0,
            phase: Phase::Reading,
            last_active: now,
            since: now,
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.stream.as_fd().as_raw_fd()
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    /// What to wait for: bytes while reading, room while replying (and, in
    /// every phase, the client going away).
    pub(super) fn interest(&self) -> (bool, bool) {
        (self.phase == Phase::Reading, self.phase == Phase::Replying)
    }

    /// The request held, if any: (client uid, command).
    pub(super) fn request(&self) -> Option<(u32, Command)> {
        self.request
    }

    /// Hands the request's payload over for forwarding.
    pub(super) fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }

    /// Reads what the client sent. `Ok(true)` when a whole request is now
    /// held (the caller queues it).
    pub(super) fn read(&mut self, scratch: &mut [u8], now: Instant) -> Result<bool, End> {
        if self.phase != Phase::Reading {
            return Ok(false);
        }
        let n = match self.stream.recv(scratch) {
            Ok(0) => return Err(End::Closed),
            Ok(n) => n,
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if is_reset(&e) => return Err(End::Closed),
            Err(_) => return Err(End::Io),
        };
        if !self.decoder.is_mid_message() {
            self.since = now;
        }
        self.last_active = now;
        self.take_request(&scratch[..n])
    }

    /// Decodes a request from bytes read earlier but not used yet.
    /// `Ok(true)` when a whole request is now held.
    pub(super) fn resume(&mut self, now: Instant) -> Result<bool, End> {
        if self.phase != Phase::Reading || self.leftover.is_empty() {
            return Ok(false);
        }
        self.since = now;
        let bytes = std::mem::take(&mut self.leftover);
        self.take_request(&bytes)
    }

    fn take_request(&mut self, mut input: &[u8]) -> Result<bool, End> {
        while !input.is_empty() {
            let (used, msg) = self.decoder.decode(input).map_err(|_| End::Malformed)?;
            input = &input[used..];
            if let Some(msg) = msg {
                self.leftover.extend_from_slice(input);
                self.request = Some((msg.uid, msg.command));
                self.payload = msg.payload;
                self.phase = Phase::Waiting;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Starts writing the reply to the held request, and writes what the
    /// socket takes now. `Ok(true)` once it is all written (the client is
    /// then reading again).
    pub(super) fn reply(&mut self, payload: &[u8], now: Instant) -> Result<bool, End> {
        let Some((uid, command)) = self.request else {
            return Ok(false);
        };
        self.out.clear();
        self.sent = 0;
        // Payloads come from a decoded message or are one byte, so they
        // always fit in a message.
        encode_message(&mut self.out, true, uid, command, payload).map_err(|_| End::Io)?;
        self.payload = Vec::new();
        self.phase = Phase::Replying;
        self.since = now;
        self.flush(now)
    }

    /// Writes what it can of the reply. `Ok(true)` once it is all written.
    pub(super) fn flush(&mut self, now: Instant) -> Result<bool, End> {
        if self.phase != Phase::Replying {
            return Ok(false);
        }
        while self.sent < self.out.len() {
            match self.stream.send(&self.out[self.sent..]) {
                Ok(0) => return Err(End::Io),
                Ok(n) => self.sent += n,
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if is_reset(&e) => return Err(End::Closed),
                Err(_) => return Err(End::Io),
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        self.request = None;
        self.phase = Phase::Reading;
        self.last_active = now;
        Ok(true)
    }

    /// When this client must be dropped unless something happens first.
    pub(super) fn deadline(&self, idle: Option<Duration>) -> Option<Instant> {
        match self.phase {
            Phase::Reading => {
                let partial = (self.decoder.is_mid_message() || !self.leftover.is_empty())
                    .then(|| self.since + REQUEST_TIMEOUT);
                let idle = idle.map(|d| self.last_active + d);
                partial.into_iter().chain(idle).min()
            }
            Phase::Waiting => None,
            Phase::Replying => Some(self.since + REPLY_TIMEOUT),
        }
    }

    /// Whether a deadline has passed, and which.
    pub(super) fn expired(&self, now: Instant, idle: Option<Duration>) -> Option<End> {
        let deadline = self.deadline(idle)?;
        if now < deadline {
            return None;
        }
        let idle_out = self.phase == Phase::Reading
            && idle.is_some_and(|d| now >= self.last_active + d)
            && !self.decoder.is_mid_message();
        Some(if idle_out { End::Idle } else { End::Stalled })
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
