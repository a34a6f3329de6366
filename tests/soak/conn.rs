//! A worker's connection: the library's client, or a raw connection that
//! speaks the wire format by hand (the only one that reads back sessions of
//! 1 to 4 bytes).

use super::TIMEOUT;
use distcache::internals::proto::Status;
use distcache::{Client, ClientError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

pub const PROTO_LEVEL: [u8; 4] = [0x00, 0x11, 0x00, 0x00];

pub fn request(op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = payload.chunks(2048).collect();
    let mut out = Vec::with_capacity(payload.len() + 14 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&PROTO_LEVEL);
        out.push(0);
        out.extend_from_slice(&uid.to_be_bytes());
        out.extend_from_slice(&[0, op, u8::from(i + 1 == chunks.len())]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

pub enum RawStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl RawStream {
    pub fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            RawStream::Unix(s) => s,
            RawStream::Tcp(s) => s,
        }
    }
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection speaking the protocol by hand, kept open.
pub struct Raw {
    stream: RawStream,
    uid: u32,
}

impl Raw {
    pub fn connect(address: &str) -> Raw {
        let stream = if let Some(path) = address.strip_prefix("UNIX:") {
            let s = UnixStream::connect(path).expect("raw connect");
            s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
            RawStream::Unix(s)
        } else {
            let hostport = address.strip_prefix("IP:").expect("IP: address");
            let s = TcpStream::connect(hostport).expect("raw connect");
            s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_nodelay(true).expect("nodelay");
            RawStream::Tcp(s)
        };
        Raw { stream, uid: 0 }
    }

    /// One request, one reply (its payload); every header field checked.
    pub fn call(&mut self, op: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.uid = self.uid.wrapping_add(1);
        let io = self.stream.io();
        io.write_all(&request(op, self.uid, payload))
            .map_err(|e| format!("send: {e}"))?;
        let mut reply = Vec::new();
        for _ in 0..16 {
            let mut h = [0u8; 14];
            io.read_exact(&mut h).map_err(|e| format!("receive: {e}"))?;
            let uid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            if h[..4] != PROTO_LEVEL || h[4] != 1 || uid != self.uid || h[9] != 0 || h[10] != op {
                return Err(format!("bad reply header {h:02x?} for uid {}", self.uid));
            }
            let len = usize::from(u16::from_be_bytes([h[12], h[13]]));
            let at = reply.len();
            reply.resize(at + len, 0);
            io.read_exact(&mut reply[at..])
                .map_err(|e| format!("receive: {e}"))?;
            match h[11] {
                1 => return Ok(reply),
                0 => {}
                c => return Err(format!("complete byte {c}")),
            }
        }
        Err("a reply of more than 16 frames".into())
    }
}

pub enum Conn {
    Lib(Client),
    Raw(Raw),
}

impl Conn {
    /// Ok(true) stored, Ok(false) an existing session was in the way.
    pub fn add(&mut self, id: &[u8], data: &[u8], ms: u32) -> Result<bool, String> {
        match self {
            Conn::Lib(c) => match c.add(id, data, ms) {
                Ok(()) => Ok(true),
                Err(ClientError::Refused(Status::AddMatchingSession)) => Ok(false),
                Err(e) => Err(e.to_string()),
            },
            Conn::Raw(r) => {
                let mut p = Vec::with_capacity(8 + id.len() + data.len());
                p.extend_from_slice(&ms.to_be_bytes());
                p.extend_from_slice(&(id.len() as u32).to_be_bytes());
                p.extend_from_slice(id);
                p.extend_from_slice(data);
                match r.call(0, &p)?.as_slice() {
                    [0x00] => Ok(true),
                    [0x65] => Ok(false),
                    other => Err(format!("ADD reply {other:02x?}")),
                }
            }
        }
    }

    pub fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            Conn::Lib(c) => c.get(id).map_err(|e| e.to_string()),
            // A miss is the single byte 0x01, and no session is [0x01].
            Conn::Raw(r) => r
                .call(1, id)
                .map(|reply| (reply != [0x01]).then_some(reply)),
        }
    }

    pub fn found(&mut self, op: u8, id: &[u8]) -> Result<bool, String> {
        match self {
            Conn::Lib(c) if op == 2 => c.remove(id).map_err(|e| e.to_string()),
            Conn::Lib(c) => c.have(id).map_err(|e| e.to_string()),
            Conn::Raw(r) => match r.call(op, id)?.as_slice() {
                [0x00] => Ok(true),
                [0x01] => Ok(false),
                other => Err(format!("op {op} reply {other:02x?}")),
            },
        }
    }
}
