//! Serving one connection: read, decode, answer, until the peer goes away,
//! sends something malformed, or the server stops.

use super::{handle_request, Clock, Stats};
use crate::cache::Store;
use crate::nal::Stream;
use crate::proto::{Decoder, Role};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a blocked read wakes to see whether the server is stopping.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a client may leave its replies unread before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const READ_CHUNK: usize = 64 * 1024;

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
) -> End {
    if stream.set_read_timeout(Some(POLL_INTERVAL)).is_err()
        || stream.set_write_timeout(Some(SEND_TIMEOUT)).is_err()
    {
        return End::Io;
    }
    let mut decoder = Decoder::new(Role::Server);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut out = Vec::with_capacity(4096);
    loop {
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
                if stop.load(Ordering::Relaxed) && !decoder.is_mid_message() {
                    return End::Stopping;
                }
                continue;
            }
            Err(_) => return End::Io,
        };
        let mut input = &buf[..n];
        let now = clock.now();
        while !input.is_empty() {
            let Ok((used, msg)) = decoder.decode(input) else {
                // Answer what came before the bad bytes, then hang up.
                let _ = send_all(&stream, &out);
                return End::Malformed;
            };
            input = &input[used..];
            if let Some(req) = msg {
                if handle_request(store, now, &req, &mut out).is_err() {
                    let _ = send_all(&stream, &out);
                    return End::Malformed;
                }
                stats.count_operation();
            }
        }
        if send_all(&stream, &out).is_err() {
            return End::Io;
        }
        out.clear();
    }
}

fn send_all(stream: &Stream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.send(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
