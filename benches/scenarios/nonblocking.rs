//! Writing and reading the nonblocking streams of the event-loop clients
//! (gwload, peerload, events).

use mio::event::Source;
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::time::Instant;

/// Writes what it can of `out` from `*written` on, counting what it
/// wrote in `written`; returns once all is written or the stream would
/// block.
pub fn write_some<W: Write + ?Sized>(
    stream: &mut W,
    out: &[u8],
    written: &mut usize,
) -> Result<(), String> {
    while *written < out.len() {
        match stream.write(&out[*written..]) {
            Ok(0) => return Err("the server closed a connection".into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Reads into `buf` what has come: how many bytes, or `None` when nothing
/// more has (the stream would block).
pub fn read_some<R: Read + ?Sized>(
    stream: &mut R,
    buf: &mut [u8],
) -> Result<Option<usize>, String> {
    loop {
        match stream.read(buf) {
            Ok(0) => return Err("the server closed a connection".into()),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Registers `stream` with `poll` under `token`, for reading and writing.
pub fn register<S: Source + ?Sized>(
    poll: &Poll,
    stream: &mut S,
    token: usize,
) -> Result<(), String> {
    poll.registry()
        .register(
            stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| e.to_string())
}

/// A nonblocking connection to the UNIX socket at `path`, registered with
/// `poll` under `token`.
pub fn connect_unix(poll: &Poll, path: &str, token: usize) -> Result<UnixStream, String> {
    let s = std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut stream = UnixStream::from_std(s);
    register(poll, &mut stream, token)?;
    Ok(stream)
}

/// Waits for events, until `stop` at the latest. The events of a wake-up
/// that comes late (a busy machine) are still read: replies to requests
/// sent in time count.
pub fn poll_until(poll: &mut Poll, events: &mut Events, stop: Instant) -> Result<(), String> {
    let timeout = stop.saturating_duration_since(Instant::now());
    poll.poll(events, Some(timeout)).map_err(|e| e.to_string())
}
