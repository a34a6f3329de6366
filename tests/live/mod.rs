//! What the limit and abuse tests say to a `dc_server`: HAVE requests and
//! their replies, connections with deadlines, reads to the close.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One request frame at protocol level 0x00110000 (FACTS.md section 1).
pub fn request(op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    crate::replay::encode_msg(false, uid, op, payload)
}

/// A HAVE request for `id`.
pub fn have(uid: u32, id: &[u8]) -> Vec<u8> {
    request(3, uid, id)
}

/// The reply a server sends to a HAVE of an id it does not hold.
pub fn have_miss(uid: u32) -> Vec<u8> {
    crate::replay::encode_msg(true, uid, 3, &[1])
}

/// Connects with read and write timeouts of `timeout`.
pub fn connect(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// How a connection answered one HAVE.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The right reply.
    Served,
    /// Closed (EOF, reset or broken pipe) without a reply.
    Closed,
    /// Anything else (a timeout, wrong bytes).
    Other(String),
}

/// Sends a HAVE of an id nobody stores and reads the reply.
pub fn ask(s: &mut UnixStream, uid: u32) -> Answer {
    if let Err(e) = s.write_all(&have(uid, b"never-stored")) {
        return closed_or(e);
    }
    let want = have_miss(uid);
    let mut got = vec![0u8; want.len()];
    let mut n = 0;
    while n < got.len() {
        match s.read(&mut got[n..]) {
            Ok(0) => return Answer::Closed,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return closed_or(e),
        }
    }
    if got == want {
        Answer::Served
    } else {
        Answer::Other(format!("wrong reply {got:02x?}"))
    }
}

fn closed_or(e: io::Error) -> Answer {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Answer::Closed,
        _ => Answer::Other(e.to_string()),
    }
}

/// Reads until EOF (or a reset), at most `limit`; the bytes read, or an
/// error when the connection stayed open.
pub fn read_to_close(s: &mut UnixStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({} bytes read)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
