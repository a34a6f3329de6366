//! One connection's request/reply exchange: connect with the receive timer
//! armed, encode a request, read and check its reply.

use super::ClientError;
use crate::nal::{read_timer_for, Address, Deadline, NalError, Stream};
use crate::proto::{encode_message, next_request_uid, Command, Decoder, Role};
use crate::tls::{ClientTls, TlsStream};
use std::cell::Cell;
use std::time::Duration;

/// Size of a connection's receive buffer.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Where this thread's round trips read replies into (taken while one
    /// is under way), so that a connection per operation allocates none.
    static READ_BUF: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// A connection to the server.
#[derive(Debug)]
pub(super) struct Conn {
    stream: Wire,
    /// The client timeout the stream's receive timer was armed for.
    armed_for: Duration,
    decoder: Decoder,
    out: Vec<u8>,
}

/// The connection under the protocol: a socket, or TLS over one.
#[derive(Debug)]
enum Wire {
    Plain(Stream),
    Tls(Box<TlsStream>),
}

impl Wire {
    fn write_all_before(&mut self, buf: &[u8], deadline: Deadline) -> Result<(), ClientError> {
        match self {
            Wire::Plain(s) => Ok(s.write_all_before(buf, deadline)?),
            Wire::Tls(s) => Ok(s.write_all_before(buf, deadline)?),
        }
    }

    fn read_before(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, ClientError> {
        match self {
            Wire::Plain(s) => Ok(s.read_before(buf, deadline)?),
            Wire::Tls(s) => Ok(s.read_before(buf, deadline)?),
        }
    }
}

impl Conn {
    /// Connects, with the receive timer armed for `timeout` (see
    /// [`Stream::read_before`]).
    pub(super) fn open(
        address: &Address,
        tls: Option<&ClientTls>,
        deadline: Deadline,
        timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let stream = match tls {
            Some(tls) => Wire::Tls(Box::new(TlsStream::connect(address, tls, deadline)?)),
            None => {
                let mut stream = Stream::connect(address, deadline)?;
                stream
                    .arm_read_timer(read_timer_for(timeout))
                    .map_err(NalError::Io)?;
                Wire::Plain(stream)
            }
        };
        Ok(Conn {
            stream,
            armed_for: timeout,
            decoder: Decoder::new(Role::Client),
            out: Vec::new(),
        })
    }

    /// One request out, one reply in. Any error leaves the connection unfit
    /// for reuse; the caller drops it.
    pub(super) fn round_trip(
        &mut self,
        cmd: Command,
        payload: &[u8],
        deadline: Deadline,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        if timeout != self.armed_for {
            if let Wire::Plain(stream) = &mut self.stream {
                stream
                    .arm_read_timer(read_timer_for(timeout))
                    .map_err(NalError::Io)?;
            }
            self.armed_for = timeout;
        }
        let uid = next_request_uid();
        self.out.clear();
        encode_message(&mut self.out, false, uid, cmd, payload)?;
        self.stream.write_all_before(&self.out, deadline)?;
        // The memory is unavailable only while the thread is exiting.
        let mut buf = READ_BUF
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0; READ_CHUNK].into_boxed_slice());
        let reply = self.read_reply(&mut buf, uid, cmd, deadline);
        let _ = READ_BUF.try_with(|b| b.set(Some(buf)));
        reply
    }

    /// Reads the reply to request `uid`, a `cmd`, into `buf`.
    fn read_reply(
        &mut self,
        buf: &mut [u8],
        uid: u32,
        cmd: Command,
        deadline: Deadline,
    ) -> Result<Vec<u8>, ClientError> {
        loop {
            let n = self.stream.read_before(buf, deadline)?;
            let (used, msg) = self.decoder.decode(&buf[..n])?;
            let Some(msg) = msg else { continue };
            if used != n {
                return Err(ClientError::UnexpectedReply("bytes after the reply"));
            }
            if msg.uid != uid {
                return Err(ClientError::UnexpectedReply(
                    "reply carries another request uid",
                ));
            }
            if msg.command != cmd {
                return Err(ClientError::UnexpectedReply(
                    "reply is for another operation",
                ));
            }
            return Ok(msg.payload);
        }
    }
}
