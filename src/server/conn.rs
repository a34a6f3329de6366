//! Serving one connection: read, decode, answer, until the peer goes away,
//! sends something malformed, stalls or idles too long, or the server stops.
//!
//! Memory is bounded whatever the client does: the read buffer
//! ([`READ_CHUNK`]), the decoder's message being reassembled (at most 32 KiB,
//! in a buffer that grows to at most 64 KiB), the request being handled and
//! its reply (32 KiB each), and the replies not yet sent (sent, waiting, as
//! soon as they reach [`MAX_PENDING`], so at most that plus one reply, in a
//! buffer of at most twice that). A client that sends without reading gets
//! no further than its socket buffers: the thread waits to send, and drops
//! the connection after [`SEND_TIMEOUT`].

use super::{handle_request_outcome, Clock, Outcome, Policy, Stats};
use crate::cache::Store;
use crate::nal::{Deadline, NalError, Stream};
use crate::proto::{Decoder, Role};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a blocked read wakes to see whether the server is stopping.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long the replies to one batch of requests may take to send: a client
/// that leaves them unread longer is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send the rest of a request it started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
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

/// Time limits on a connection beyond the fixed ones.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Timeouts {
    /// Close a connection that has sent nothing for this long, a request
    /// half-received or not (`None`: never).
    pub(super) idle: Option<Duration>,
}

/// A worker's read buffer, kept from one connection to the next so that a
/// connection per operation costs no allocation of it.
pub(super) fn read_buffer() -> Box<[u8]> {
    vec![0u8; READ_CHUNK].into_boxed_slice()
}

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
    /// It sent nothing for the idle timeout.
    Idle,
    /// It left a request half-sent too long.
    Stalled,
}

// The server's shared state, piece by piece, plus the worker's buffer.
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    stream: Stream,
    store: &dyn Store,
    clock: &Clock,
    stats: &Stats,
    stop: &AtomicBool,
    policy: Policy,
    timeouts: Timeouts,
    buf: &mut [u8],
) -> End {
    let _open = stats.metrics().open_connection();
    // Wake often enough to see the stop flag and the idle timeout.
    let wake = timeouts
        .idle
        .map_or(POLL_INTERVAL, |d| d.min(POLL_INTERVAL));
    if stream.set_read_timeout(Some(wake)).is_err() {
        return End::Io;
    }
    let mut decoder = Decoder::new(Role::Server);
    let mut out = Vec::with_capacity(IDLE_BUFFER);
    let mut stop_seen: Option<Instant> = None;
    // When bytes last arrived, and when the request half-received began.
    let mut last_active = Instant::now();
    let mut request_began = last_active;
    loop {
        if stop.load(Ordering::Relaxed) {
            // Finish the request in flight, if any, but not for ever.
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if !decoder.is_mid_message() || since.elapsed() > STOP_GRACE {
                return End::Stopping;
            }
        }
        if let Some(end) = expired(&decoder, last_active, request_began, timeouts) {
            return end;
        }
        let n = match stream.recv(buf) {
            Ok(0) => return End::PeerClosed,
            Ok(n) => {
                last_active = Instant::now();
                n
            }
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
        let mut request_begins_here = !decoder.is_mid_message();
        // Each request is timed from the end of the previous one (or of
        // the read): its decoding and carrying out.
        let mut mark = last_active;
        while !input.is_empty() {
            let Ok((used, msg)) = decoder.decode(input) else {
                stats.metrics().count_protocol_error();
                // Answer what came before the bad bytes, then hang up.
                let _ = sender.send(&mut out);
                return End::Malformed;
            };
            input = &input[used..];
            if let Some(req) = msg {
                request_begins_here = true;
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
        // A request left half-received began in these bytes, unless it had
        // begun before them; time spent sending counts as activity.
        if request_begins_here {
            request_began = last_active;
        }
        last_active = Instant::now();
    }
}

/// Whether the connection has outlived a time limit: a request half-sent
/// for [`REQUEST_TIMEOUT`], or silence for the idle timeout (which also
/// ends a half-sent request).
fn expired(
    decoder: &Decoder,
    last_active: Instant,
    request_began: Instant,
    timeouts: Timeouts,
) -> Option<End> {
    let mid_message = decoder.is_mid_message();
    if mid_message && request_began.elapsed() >= REQUEST_TIMEOUT {
        return Some(End::Stalled);
    }
    match timeouts.idle {
        Some(idle) if last_active.elapsed() >= idle => {
            Some(if mid_message { End::Stalled } else { End::Idle })
        }
        _ => None,
    }
}

/// Sends the replies to one batch of requests, all before one deadline.
struct Sender<'a> {
    stream: &'a Stream,
    deadline: Deadline,
}

impl<'a> Sender<'a> {
    fn new(stream: &'a Stream) -> Self {
        Sender {
            stream,
            deadline: Deadline::after(SEND_TIMEOUT),
        }
    }

    /// Sends and empties `out`. The socket's send calls do not wait; when
    /// the client reads slowly, the wait for room is bounded by what is left
    /// of the batch's time, not by each call.
    fn send(&mut self, out: &mut Vec<u8>) -> Result<(), NalError> {
        self.stream.write_all_before(out, self.deadline)?;
        out.clear();
        Ok(())
    }
}
