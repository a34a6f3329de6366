//! What the two inspection threads (admin socket, metrics page) share: a
//! loop that accepts one connection at a time until the server stops, and
//! reads and writes bounded in time.

use super::{ServerError, ServerView};
use crate::nal::{AcceptFailure, Deadline, Listener, NalError, Stream, ACCEPT_BACKOFF};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How often a waiting inspection thread looks whether the server stops.
const TICK: Duration = Duration::from_millis(250);
/// Stack size of an inspection thread.
const STACK: usize = 256 * 1024;

/// Starts a thread named `name` that accepts connections on `listener` and
/// hands each to `serve`, one at a time, until the server stops; `what`
/// names the service in errors.
pub(super) fn spawn_acceptor(
    name: &str,
    what: &'static str,
    view: ServerView,
    listener: Arc<Listener>,
    mut serve: impl FnMut(&ServerView, Stream) + Send + 'static,
) -> Result<thread::JoinHandle<()>, ServerError> {
    listener
        .set_accept_timeout(Some(TICK))
        .map_err(|e| ServerError::Inspect(what, e))?;
    thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(move || {
            while !view.is_stopping() {
                match listener.accept() {
                    Ok(stream) => serve(&view, stream),
                    Err(e) => match AcceptFailure::of(&e) {
                        // The accept timed out (the tick), or try again.
                        AcceptFailure::Empty | AcceptFailure::Again => {}
                        // Out of descriptors or memory: back off briefly.
                        AcceptFailure::Other => thread::sleep(ACCEPT_BACKOFF),
                    },
                }
            }
        })
        .map_err(|e| ServerError::Inspect(what, e))
}

/// What a bounded read got.
pub(super) enum Got {
    /// Some bytes.
    Bytes(usize),
    /// The peer closed, the read failed, the time is up, or the server is
    /// stopping: the connection is to be dropped.
    Over,
}

/// Reads some bytes into `buf`, waiting until `until` at most, and less if
/// the server stops meanwhile.
pub(super) fn read_until(
    view: &ServerView,
    stream: &mut Stream,
    buf: &mut [u8],
    until: Instant,
) -> Got {
    loop {
        if view.is_stopping() {
            return Got::Over;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Got::Over;
        }
        match stream.read_before(buf, Deadline::after(left.min(TICK))) {
            Ok(n) => return Got::Bytes(n),
            Err(NalError::TimedOut) => continue,
            Err(_) => return Got::Over,
        }
    }
}

/// Writes all of `bytes` within `limit`; false if that failed.
pub(super) fn write_within(stream: &mut Stream, bytes: &[u8], limit: Duration) -> bool {
    stream
        .write_all_before(bytes, Deadline::after(limit))
        .is_ok()
}

/// Most bytes [`close_gently`] reads and drops.
const DRAIN_BYTES: usize = 64 * 1024;
/// Longest time [`close_gently`] waits for the peer to close.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Ends a connection so that the peer gets all that was sent: shuts down
/// the sending side, then reads and drops what the peer still sends (at
/// most [`DRAIN_BYTES`], for at most [`DRAIN_WAIT`]) until it closes.
/// Closing with unread bytes would make the system reset the connection,
/// and the peer could lose the reply (an error saying why it was refused).
pub(super) fn close_gently(view: &ServerView, mut stream: Stream) {
    if stream.shutdown_write().is_err() {
        return;
    }
    let until = Instant::now() + DRAIN_WAIT;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match read_until(view, &mut stream, &mut buf, until) {
            Got::Bytes(n) => drained += n,
            Got::Over => return,
        }
    }
}
