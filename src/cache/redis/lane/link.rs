//! One connection of a worker's lane to one master: the bytes to write,
//! the requests written and waiting for their replies, in order, and the
//! parser of the replies.

use super::Job;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// What a command on a link is for.
pub(super) enum Purpose {
    /// The login (`AUTH`) that opens the link: refused, the link is no use.
    Login,
    /// The link's name (`CLIENT SETNAME`), for `CLIENT LIST`: refused
    /// (an ACL user without the right), the link serves all the same.
    Name,
    /// Request number `.0`.
    Request(u64, Job),
}

/// A command written, or to be written, on a link.
pub(super) struct Sent {
    pub(super) what: Purpose,
    pub(super) deadline: Instant,
    pub(super) began: Instant,
    /// Where its command begins in the link's stream of bytes.
    pub(super) start: u64,
}

/// One connection to one master.
pub(super) struct Link {
    pub(super) addr: SocketAddr,
    pub(super) sock: Option<TcpStream>,
    /// Bytes not written yet.
    pub(super) out: Vec<u8>,
    /// Bytes written since the link was opened.
    pub(super) written: u64,
    /// Bytes given to the link since it was opened.
    pub(super) queued: u64,
    pub(super) sent: VecDeque<Sent>,
    pub(super) parser: redis::Parser,
    /// Until when the lane leaves this node to the background thread.
    pub(super) resting: Option<Instant>,
    /// When a failure of the link was last logged.
    pub(super) logged: Option<Instant>,
    /// While it is connecting: when it is given up if it has not.
    pub(super) connect_by: Option<Instant>,
}

impl Link {
    pub(super) fn new(addr: SocketAddr) -> Link {
        Link {
            addr,
            sock: None,
            out: Vec::new(),
            written: 0,
            queued: 0,
            sent: VecDeque::new(),
            parser: redis::Parser::new(),
            resting: None,
            logged: None,
            connect_by: None,
        }
    }

    /// Puts one command, which `pack` appends to the bytes it is given,
    /// behind what the link has to write.
    pub(super) fn queue(
        &mut self,
        pack: impl FnOnce(&mut Vec<u8>),
        what: Purpose,
        deadline: Instant,
    ) {
        self.sent.push_back(Sent {
            what,
            deadline,
            began: Instant::now(),
            start: self.queued,
        });
        let before = self.out.len();
        pack(&mut self.out);
        self.queued += (self.out.len() - before) as u64;
    }

    /// Writes what the link has to write, as far as the socket takes it.
    pub(super) fn write(&mut self) -> Result<(), String> {
        let link = self;
        let Some(sock) = link.sock.as_mut() else {
            return Ok(());
        };
        let mut done = 0;
        let result = loop {
            if done == link.out.len() {
                break Ok(());
            }
            match sock.write(&link.out[done..]) {
                Ok(0) => break Err("the connection took no more".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                // Not connected yet: written once it is.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.to_string()),
            }
        };
        link.out.drain(..done);
        link.written += done as u64;
        if done > 0 {
            // Connected.
            link.connect_by = None;
        }
        result
    }
}

/// A reader of a link's socket that says when it would block, so that
/// the parser's error for it can be told from a broken reply.
pub(super) struct Source<'a> {
    pub(super) sock: &'a mut TcpStream,
    pub(super) would_block: bool,
}

impl Read for Source<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.sock.read(out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.would_block = true;
                    return Err(e);
                }
                r => return r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    /// A reply that comes in pieces is taken once it is whole: the parser
    /// keeps what it read when the socket has no more.
    #[test]
    fn a_reply_in_pieces_and_two_in_one_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut node = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut sock = TcpStream::from_std(ours);
        let mut parser = redis::Parser::new();
        let mut next = |sock: &mut TcpStream| {
            // The bytes written are on a loopback socket at once, or soon.
            let began = Instant::now();
            loop {
                let mut source = Source {
                    sock: &mut *sock,
                    would_block: false,
                };
                match parser.parse_value(&mut source) {
                    Ok(v) => return Some(v),
                    Err(_) if source.would_block => {
                        if began.elapsed() > std::time::Duration::from_millis(200) {
                            return None;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        };
        node.write_all(b"$5\r\nhel").unwrap();
        assert_eq!(next(&mut sock), None, "not whole yet");
        node.write_all(b"lo\r\n:1\r\n$-1\r\n").unwrap();
        assert_eq!(next(&mut sock), Some(Value::BulkString(b"hello".to_vec())));
        assert_eq!(next(&mut sock), Some(Value::Int(1)));
        assert_eq!(next(&mut sock), Some(Value::Nil));
        node.write_all(b"-MOVED 3999 127.0.0.1:6381\r\n").unwrap();
        match next(&mut sock) {
            Some(Value::ServerError(e)) => {
                assert_eq!(e.code(), "MOVED");
                assert_eq!(e.details(), Some("3999 127.0.0.1:6381"));
            }
            other => panic!("{other:?}"),
        }
    }
}
