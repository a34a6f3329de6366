//! Serving one connection: read, decode, answer, until the peer goes away,
//! sends something malformed, or the server stops.

use super::{handle_request_outcome, Clock, Outcome, Policy, Stats};
use crate::cache::Store;
use crate::nal::Stream;
use crate::proto::{Decoder, Role};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a blocked read wakes to see whether the server is stopping.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long the replies to one batch of requests may take to send: a client
/// that leaves them unread longer is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping server waits for a half-received request.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Bytes read at once. Pipelined requests in one read are answered together.
const READ_CHUNK: usize = 64 * 1024;
/// Replies are sent once this many bytes are pending, so that small
/// pipelined requests for large sessions cannot make the server hold more
/// than this (plus one reply of at most 32 KiB) per connection.
const MAX_PENDING: usize = 64 * 1024;
/// Capacity the reply buffer shrinks back to between batches.
const IDLE_BUFFER: usize = 4096;

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum End {
    /// The peer closed its side.
    PeerClosed,
    /// The peer sent bytes that are not valid requests.
    Malformed,
    /// Reading or writing failed.
    Io,
    /// The server is stopping.
    Stopping,
}

pub(super) fn serve(
    stream: Stream,
    store: &dyn Store,
    clock: &Clock,
    stats: &Stats,
    stop: &AtomicBool,
    policy: Policy,
) -> End {
    let _open = stats.metrics().open_connection();
    if stream.set_read_timeout(Some(POLL_INTERVAL)).is_err()
        || stream.set_write_timeout(Some(SEND_TIMEOUT)).is_err()
    {
        return End::Io;
    }
    let mut decoder = Decoder::new(Role::Server);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::with_capacity(IDLE_BUFFER);
    let mut stop_seen: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            // Finish the request in flight, if any, but not for ever.
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if !decoder.is_mid_message() || since.elapsed() > STOP_GRACE {
                return End::Stopping;
            }
        }
        let n = match stream.recv(&mut buf) {
            Ok(0) => return End::PeerClosed,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return End::Io,
        };
        let mut input = &buf[..n];
        let now = clock.now();
        let mut sender = Sender::new(&stream);
        // Each request is timed from the end of the previous one (or of
        // the read): its decoding and carrying out.
        let mut mark = Instant::now();
        while !input.is_empty() {
            let Ok((used, msg)) = decoder.decode(input) else {
                stats.metrics().count_protocol_error();
                // Answer what came before the bad bytes, then hang up.
                let _ = sender.send(&mut out);
                return End::Malformed;
            };
            input = &input[used..];
            if let Some(req) = msg {
                let done = handle_request_outcome(policy, store, now, &req, &mut out);
                let finished = Instant::now();
                let outcome = *done.as_ref().unwrap_or(&Outcome::Malformed);
                stats
                    .metrics()
                    .record(req.command, outcome, finished - mark);
                mark = finished;
                if done.is_err() {
                    stats.metrics().count_protocol_error();
                    let _ = sender.send(&mut out);
                    return End::Malformed;
                }
                stats.count_operation();
                if out.len() >= MAX_PENDING {
                    if sender.send(&mut out).is_err() {
                        return End::Io;
                    }
                    mark = Instant::now();
                }
            }
        }
        if sender.send(&mut out).is_err() {
            return End::Io;
        }
        out.shrink_to(IDLE_BUFFER);
    }
}

/// Sends the replies to one batch of requests, all before one deadline.
struct Sender<'a> {
    stream: &'a Stream,
    deadline: Instant,
    /// Whether the socket's send timeout is still the full SEND_TIMEOUT.
    full_timeout: bool,
}

impl<'a> Sender<'a> {
    fn new(stream: &'a Stream) -> Self {
        Sender {
            stream,
            deadline: Instant::now() + SEND_TIMEOUT,
            full_timeout: true,
        }
    }

    /// Sends and empties `out`.
    fn send(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut bytes = &out[..];
        while !bytes.is_empty() {
            match self.stream.send(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n == bytes.len() => break,
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // A partial send: the client reads slowly. Bound what is left
            // of the batch's time, not each call.
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_write_timeout(Some(left))?;
            self.full_timeout = false;
        }
        out.clear();
        Ok(())
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        if !self.full_timeout {
            let _ = self.stream.set_write_timeout(Some(SEND_TIMEOUT));
        }
    }
}
