//! The protocols of scenario 8's servers, as its load generator speaks
//! them: GET of a value (distcache's wire format, memcached's text
//! protocol, Redis's RESP), the checking of each reply against the value
//! stored (a miss, an error or other bytes are errors), and the storing of
//! the values in the text protocols.

use crate::load::PRELOADED;
use crate::wire;
use distcache::internals::proto::{encode_message, Command, Decoder, Role};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long a blocking read or write may take before the run fails.
const IO_LIMIT: Duration = Duration::from_secs(5);
/// The longest status line a reply may start with.
const MAX_LINE: usize = 512;

/// The protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Distcache,
    Memcache,
    Resp,
}

impl Proto {
    pub fn parse(name: &str) -> Result<Proto, String> {
        match name {
            "distcache" => Ok(Proto::Distcache),
            "memcache" => Ok(Proto::Memcache),
            "resp" => Ok(Proto::Resp),
            other => Err(format!("unknown protocol '{other}'")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Distcache => "distcache",
            Proto::Memcache => "memcache",
            Proto::Resp => "resp",
        }
    }

    /// Appends the GET of value `i` (`uid` numbers it on distcache's wire).
    pub fn get(self, out: &mut Vec<u8>, i: u64, uid: u32) -> Result<(), String> {
        match self {
            Proto::Distcache => {
                encode_message(out, false, uid, Command::Get, &wire::id(PRELOADED, i))
                    .map_err(|e| e.to_string())
            }
            Proto::Memcache => {
                out.extend_from_slice(b"get ");
                out.extend_from_slice(&text_key(i));
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Proto::Resp => {
                out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$32\r\n");
                out.extend_from_slice(&text_key(i));
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
        }
    }

    /// Appends the storing of value `i` in a text protocol (RESP unless
    /// memcached's).
    fn set(self, out: &mut Vec<u8>, i: u64) {
        let data = wire::data(i);
        match self {
            Proto::Memcache => {
                out.extend_from_slice(b"set ");
                out.extend_from_slice(&text_key(i));
                out.extend_from_slice(format!(" 0 0 {}\r\n", data.len()).as_bytes());
            }
            _ => {
                out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$32\r\n");
                out.extend_from_slice(&text_key(i));
                out.extend_from_slice(format!("\r\n${}\r\n", data.len()).as_bytes());
            }
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// The key of value `i` in the text protocols: 32 printable bytes (their
/// keys take no spaces or control characters), as long as the session ids
/// on distcache's wire.
pub fn text_key(i: u64) -> [u8; wire::ID_LEN] {
    let mut key = *b"dcbench:000000000000000000000000";
    let mut n = i;
    let mut at = key.len();
    while n > 0 && at > 8 {
        at -= 1;
        key[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    key
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn show(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn parse_len(digits: &[u8]) -> Option<usize> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Where a text reply's first line ends: `Ok(None)` until it is all in.
fn first_line(buf: &[u8]) -> Result<Option<usize>, String> {
    match find_crlf(buf) {
        Some(eol) => Ok(Some(eol)),
        None if buf.len() > MAX_LINE => Err(format!("a reply line without its end: {}", show(buf))),
        None => Ok(None),
    }
}

/// Checks the value `data` and what follows it against value `i`; the
/// length of the whole reply, or `Ok(None)` until it is all in.
fn check_value(
    buf: &[u8],
    start: usize,
    len: usize,
    trailer: &[u8],
    i: u64,
) -> Result<Option<usize>, String> {
    let end = start + len;
    let total = end + trailer.len();
    if buf.len() < total {
        return Ok(None);
    }
    if &buf[start..end] != wire::data(i) {
        return Err(format!("GET of value {i} returned other bytes"));
    }
    if &buf[end..total] != trailer {
        return Err(format!(
            "GET of value {i}: the value is followed by other bytes"
        ));
    }
    Ok(Some(total))
}

/// A memcached reply to `get` of value `i`: `VALUE key flags bytes`, the
/// data, `END`.
fn memcache_reply(buf: &[u8], i: u64) -> Result<Option<usize>, String> {
    let Some(eol) = first_line(buf)? else {
        return Ok(None);
    };
    let line = &buf[..eol];
    if line == b"END" {
        return Err(format!("GET of value {i} missed"));
    }
    let mut fields = line
        .strip_prefix(b"VALUE ")
        .ok_or_else(|| format!("GET of value {i}: unexpected reply '{}'", show(line)))?
        .split(|&b| b == b' ');
    let key = fields.next().unwrap_or_default();
    let _flags = fields.next();
    let len = fields
        .next()
        .and_then(parse_len)
        .ok_or_else(|| format!("GET of value {i}: malformed line '{}'", show(line)))?;
    if key != text_key(i) {
        return Err(format!(
            "GET of value {i}: the value of key '{}'",
            show(key)
        ));
    }
    check_value(buf, eol + 2, len, b"\r\nEND\r\n", i)
}

/// A RESP reply to `GET` of value `i`: a bulk string.
fn resp_reply(buf: &[u8], i: u64) -> Result<Option<usize>, String> {
    let Some(eol) = first_line(buf)? else {
        return Ok(None);
    };
    let line = &buf[..eol];
    if line == b"$-1" {
        return Err(format!("GET of value {i} missed"));
    }
    let len = line
        .strip_prefix(b"$")
        .and_then(parse_len)
        .ok_or_else(|| format!("GET of value {i}: unexpected reply '{}'", show(line)))?;
    check_value(buf, eol + 2, len, b"\r\n", i)
}

/// The reply being read on one connection.
pub struct Reply {
    proto: Proto,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Reply {
    pub fn new(proto: Proto) -> Reply {
        Reply {
            proto,
            decoder: Decoder::new(Role::Client),
            buf: Vec::with_capacity(2 * wire::DATA_LEN),
        }
    }

    /// Takes bytes read from the connection: `Ok(true)` once the reply to
    /// the GET of value `i` (numbered `uid`) is complete and right. Bytes
    /// past it are an error: only one request is in flight.
    pub fn feed(&mut self, input: &[u8], i: u64, uid: u32) -> Result<bool, String> {
        if self.proto == Proto::Distcache {
            let (used, msg) = self.decoder.decode(input).map_err(|e| e.to_string())?;
            let Some(reply) = msg else {
                return Ok(false);
            };
            if used != input.len() {
                return Err("bytes beyond the reply to the one request in flight".into());
            }
            if reply.uid != uid || reply.command != Command::Get {
                return Err("a reply for another request".into());
            }
            if reply.payload.len() < 5 {
                return Err(format!("GET of session {i} missed"));
            }
            if reply.payload != wire::data(i) {
                return Err(format!("GET of session {i} returned other bytes"));
            }
            return Ok(true);
        }
        self.buf.extend_from_slice(input);
        let done = match self.proto {
            Proto::Memcache => memcache_reply(&self.buf, i)?,
            _ => resp_reply(&self.buf, i)?,
        };
        match done {
            None => Ok(false),
            Some(used) if used == self.buf.len() => {
                self.buf.clear();
                Ok(true)
            }
            Some(_) => Err("bytes beyond the reply to the one request in flight".into()),
        }
    }
}

pub fn connect(path: &str) -> Result<UnixStream, String> {
    let s = UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
    s.set_read_timeout(Some(IO_LIMIT))
        .and_then(|()| s.set_write_timeout(Some(IO_LIMIT)))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Stores values 0..`count` through one connection, 16 requests at a time,
/// in a text protocol; each must be acknowledged.
pub fn preload_text(proto: Proto, path: &str, count: u64) -> Result<(), String> {
    let ack: &[u8] = match proto {
        Proto::Memcache => b"STORED",
        Proto::Resp => b"+OK",
        Proto::Distcache => return Err("preload_text takes a text protocol".into()),
    };
    let mut s = connect(path)?;
    let mut out = Vec::with_capacity(32 * 1024);
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut next = 0;
    while next < count {
        let end = (next + 16).min(count);
        out.clear();
        for i in next..end {
            proto.set(&mut out, i);
        }
        s.write_all(&out).map_err(|e| format!("preload: {e}"))?;
        let mut acked = next;
        while acked < end {
            while let Some(eol) = find_crlf(&pending) {
                if &pending[..eol] != ack {
                    return Err(format!("preload: '{}' to a SET", show(&pending[..eol])));
                }
                pending.drain(..eol + 2);
                acked += 1;
            }
            if acked == end {
                break;
            }
            let n = s.read(&mut buf).map_err(|e| format!("preload: {e}"))?;
            if n == 0 {
                return Err("preload: the server closed the connection".into());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        if !pending.is_empty() {
            return Err("preload: more replies than requests".into());
        }
        next = end;
    }
    Ok(())
}

/// Asks for value `i`, which was never stored, and requires the checks
/// of the runs to call the reply a miss: they can tell a hit from a miss.
pub fn expect_miss(proto: Proto, path: &str, i: u64) -> Result<(), String> {
    let mut s = connect(path)?;
    let mut out = Vec::new();
    proto.get(&mut out, i, 1)?;
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut reply = Reply::new(proto);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        match reply.feed(&buf[..n], i, 1) {
            Ok(false) => {}
            Ok(true) => return Err(format!("value {i} was found though never stored")),
            Err(e) if e.ends_with("missed") => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The version a memcached or redis-server at `path` reports.
pub fn version(proto: Proto, path: &str) -> Result<String, String> {
    let (ask, prefix): (&[u8], &[u8]) = match proto {
        Proto::Memcache => (b"version\r\n", b"VERSION "),
        _ => (b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n", b"redis_version:"),
    };
    let mut s = connect(path)?;
    s.write_all(ask).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 64 * 1024 {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("asking the version: {e}"))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let at = got.windows(prefix.len()).position(|w| w == prefix);
        if let Some(at) = at {
            let rest = &got[at + prefix.len()..];
            if let Some(eol) = find_crlf(rest) {
                return Ok(show(&rest[..eol]));
            }
        }
    }
    Err(format!("no version in '{}'", show(&got)))
}
