//! Writing and reading the nonblocking streams of the event-loop clients
//! (gwload, peerload, events).

use std::io::{self, Read, Write};

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
