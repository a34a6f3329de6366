use super::protocol::{
    parse_stat_line, parse_status, ErrorCode, Request, SessionEntry, Status, END, GREETING,
    MAX_REPLY_LINE,
};
use super::{AdminError, AdminSource};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A connection to a running server's admin socket.
#[derive(Debug)]
pub struct SocketSource {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Duration,
}

impl SocketSource {
    /// Connects to the admin socket at `path` and reads the server's
    /// greeting; every later read and write waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<SocketSource, AdminError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => AdminError::PermissionDenied(path.into()),
            io::ErrorKind::NotFound => AdminError::NoSocket(path.into()),
            io::ErrorKind::ConnectionRefused => AdminError::NotListening(path.into()),
            _ => AdminError::Connect {
                path: path.into(),
                source: e,
            },
        })?;
        let io_err = AdminError::Io;
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut source = SocketSource {
            reader: BufReader::new(stream),
            writer,
            timeout,
        };
        let greeting = source.line()?;
        match parse_status(&greeting) {
            Some(Status::Ok(_)) if greeting == GREETING => Ok(source),
            Some(Status::Err(..)) => Err(source.error(&greeting)),
            _ => Err(AdminError::Protocol(format!(
                "'{greeting}' is not the greeting of a distcache admin socket (version 1)"
            ))),
        }
    }

    fn io(&self, e: io::Error) -> AdminError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                AdminError::TimedOut(self.timeout.as_secs().max(1))
            }
            io::ErrorKind::UnexpectedEof => AdminError::Closed,
            _ => AdminError::Io(e),
        }
    }

    /// The next reply line, without its line feed.
    fn line(&mut self) -> Result<String, AdminError> {
        let mut raw = Vec::new();
        let limit = MAX_REPLY_LINE as u64;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut raw)
            .map_err(|e| self.io(e))?;
        if raw.last() != Some(&b'\n') {
            return Err(if n as u64 >= limit {
                AdminError::Protocol("a reply line is too long".into())
            } else {
                AdminError::Closed
            });
        }
        raw.pop();
        String::from_utf8(raw).map_err(|_| AdminError::Protocol("a reply line is not text".into()))
    }

    /// Sends `request` and reads the first line of its reply: `Ok` with
    /// what follows `OK`, `Err(None)` for "not found", or the error.
    fn ask(&mut self, request: &Request) -> Result<Result<String, ()>, AdminError> {
        self.writer
            .write_all(request.line().as_bytes())
            .map_err(|e| self.io(e))?;
        let line = self.line()?;
        match parse_status(&line) {
            Some(Status::Ok(rest)) => Ok(Ok(rest)),
            Some(Status::Err(Some(ErrorCode::NotFound), _)) => Ok(Err(())),
            _ => Err(self.error(&line)),
        }
    }

    /// The error an unwelcome reply line stands for.
    fn error(&self, line: &str) -> AdminError {
        match parse_status(line) {
            Some(Status::Err(Some(ErrorCode::Denied), text)) => AdminError::Refused(text),
            Some(Status::Err(Some(ErrorCode::Unsupported), text)) => AdminError::Unsupported(text),
            Some(Status::Err(_, text)) => AdminError::Server(text),
            _ => AdminError::Protocol(format!("'{line}'")),
        }
    }

    /// Reads the lines of a multi-line reply up to its end, passing each to
    /// `each`.
    fn body(
        &mut self,
        mut each: impl FnMut(&str) -> Result<(), AdminError>,
    ) -> Result<(), AdminError> {
        loop {
            let line = self.line()?;
            if line == END {
                return Ok(());
            }
            each(&line)?;
        }
    }

    fn expect_ok(&mut self, request: &Request) -> Result<String, AdminError> {
        match self.ask(request)? {
            Ok(rest) => Ok(rest),
            Err(()) => Err(AdminError::Protocol("unexpected 'notfound'".into())),
        }
    }
}

impl AdminSource for SocketSource {
    fn list(
        &mut self,
        each: &mut dyn FnMut(SessionEntry) -> io::Result<()>,
    ) -> Result<(), AdminError> {
        self.expect_ok(&Request::List)?;
        self.body(|line| {
            let entry = SessionEntry::parse_line(line)
                .ok_or_else(|| AdminError::Protocol(format!("bad listing line '{line}'")))?;
            each(entry).map_err(|source| AdminError::Output {
                what: "the listing".into(),
                source,
            })
        })
    }

    fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, AdminError> {
        let Ok(rest) = self.ask(&Request::Get(id.to_vec()))? else {
            return Ok(None);
        };
        let len: usize = rest
            .parse()
            .map_err(|_| AdminError::Protocol(format!("'OK {rest}' gives no length")))?;
        if len > distcache::internals::proto::MAX_TOTAL_DATA {
            return Err(AdminError::Protocol(format!("a session of {len} bytes")));
        }
        let mut data = vec![0; len];
        self.reader.read_exact(&mut data).map_err(|e| self.io(e))?;
        Ok(Some(data))
    }

    fn remove(&mut self, id: &[u8]) -> Result<bool, AdminError> {
        Ok(self.ask(&Request::Remove(id.to_vec()))?.is_ok())
    }

    fn stats(&mut self) -> Result<Vec<(String, u64)>, AdminError> {
        self.expect_ok(&Request::Stats)?;
        let mut out = Vec::new();
        self.body(|line| {
            let pair = parse_stat_line(line)
                .ok_or_else(|| AdminError::Protocol(format!("bad counter line '{line}'")))?;
            out.push(pair);
            Ok(())
        })?;
        Ok(out)
    }
}
