//! The admin socket: a UNIX socket on which root and the server's own user
//! list, read and delete sessions and read the counters, in the line
//! protocol of [`crate::proto::admin`].
//!
//! One thread serves one connection at a time. Each connection waits at
//! most [`IDLE`] for a request line of at most
//! [`MAX_REQUEST_LINE`](crate::proto::admin::MAX_REQUEST_LINE) bytes, and
//! each write may take at most [`SEND`]; a listing goes page by page, the
//! store locked only while a page is copied. Whoever connects is checked by
//! the credentials the kernel gives (`SO_PEERCRED`) besides the socket
//! file's permissions: only root and the server's effective user id are
//! served, for root passes any file permission.
//!
//! What the admin socket does is not counted with the clients' requests.

use super::inspect::{close_gently, read_until, spawn_acceptor, write_within, Got};
use super::{Report, Server, ServerError, ServerView};
use crate::cache::SessionInfo;
use crate::nal::{peer_credentials, Listener, Stream};
use crate::proto::admin::{
    error_line, ErrorCode, Request, SessionEntry, END, GREETING, MAX_REQUEST_LINE,
};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection may stay without sending a complete request.
const IDLE: Duration = Duration::from_secs(10);
/// How long one write to the peer may take.
const SEND: Duration = Duration::from_secs(10);
/// Sessions copied from the store at a time while listing: about a
/// microsecond each under the store's lock, so a page holds up requests for
/// a fraction of a millisecond.
const PAGE: usize = 256;
/// At most one log line about refused peers per this much time.
const LOG_QUIET: Duration = Duration::from_secs(1);

impl Server {
    /// Starts the thread that serves the admin socket `listener` (a UNIX
    /// listener) until the server stops. `log` gets a line when a peer is
    /// refused (at most one a second). Remove the socket file once the
    /// thread has ended ([`Listener::remove_socket_file`]).
    pub fn spawn_admin(
        &self,
        listener: Arc<Listener>,
        mut log: impl FnMut(&str) + Send + 'static,
    ) -> Result<JoinHandle<()>, ServerError> {
        let mut last_log: Option<Instant> = None;
        spawn_acceptor(
            "dc-admin",
            "admin socket",
            self.view(),
            listener,
            move |view, stream| {
                if let Err(refusal) = serve(view, stream) {
                    if last_log.is_none_or(|t| t.elapsed() >= LOG_QUIET) {
                        last_log = Some(Instant::now());
                        log(&refusal);
                    }
                }
            },
        )
    }
}

/// Whether a peer with user id `uid` may use the admin socket of a process
/// whose effective user id is `euid`.
fn allowed(uid: u32, euid: u32) -> bool {
    uid == 0 || uid == euid
}

/// Serves one connection; `Err` is the line to log about a refused peer.
fn serve(view: &ServerView, mut stream: Stream) -> Result<(), String> {
    let result = session(view, &mut stream);
    close_gently(view, stream);
    result
}

/// Everything said on one connection.
fn session(view: &ServerView, stream: &mut Stream) -> Result<(), String> {
    let (_, euid, _) = crate::sys::process::current_ids();
    match peer_credentials(stream.as_fd()) {
        Ok(c) if allowed(c.uid, euid) => {}
        Ok(c) => {
            let text = format!(
                "uid {} may not use this admin socket (only root and uid {euid} may)",
                c.uid
            );
            write_within(
                stream,
                error_line(ErrorCode::Denied, &text).as_bytes(),
                SEND,
            );
            return Err(format!(
                "admin socket: refused process {} (uid {})",
                c.pid, c.uid
            ));
        }
        Err(e) => {
            let text = "cannot tell who is connecting";
            write_within(stream, error_line(ErrorCode::Denied, text).as_bytes(), SEND);
            return Err(format!("admin socket: refused a peer: {e}"));
        }
    }
    if !write_within(stream, format!("{GREETING}\n").as_bytes(), SEND) {
        return Ok(());
    }
    let mut lines = LineReader::default();
    loop {
        let line = match lines.next(view, stream) {
            Line::Text(l) => l,
            Line::Invalid => {
                let e = error_line(ErrorCode::BadRequest, "a request is a line of ASCII text");
                if !write_within(stream, e.as_bytes(), SEND) {
                    return Ok(());
                }
                continue;
            }
            Line::TooLong => {
                let text = format!("a request line is at most {MAX_REQUEST_LINE} bytes");
                write_within(
                    stream,
                    error_line(ErrorCode::TooLong, &text).as_bytes(),
                    SEND,
                );
                return Ok(());
            }
            Line::Over => return Ok(()),
        };
        let done = match Request::parse(&line) {
            Err(e) => write_within(
                stream,
                error_line(ErrorCode::BadRequest, &e.to_string()).as_bytes(),
                SEND,
            ),
            Ok(Request::Quit) => {
                write_within(stream, b"OK bye\n", SEND);
                return Ok(());
            }
            Ok(Request::Stats) => stats(view, stream),
            Ok(Request::List) => list(view, stream),
            Ok(Request::Get(id)) => get(view, stream, &id),
            Ok(Request::Remove(id)) => remove(view, stream, &id),
        };
        if !done {
            return Ok(());
        }
    }
}

fn stats(view: &ServerView, stream: &mut Stream) -> bool {
    let report = Report::gather(view.stats(), view.store(), &view.clock());
    let mut text = String::from("OK\n");
    for (name, value) in report.pairs() {
        text.push_str(&format!("{name} {value}\n"));
    }
    text.push_str(END);
    text.push('\n');
    write_within(stream, text.as_bytes(), SEND)
}

/// Sends the listing page by page; false if the connection is to be
/// closed (a write failed, or the server stops mid-listing).
fn list(view: &ServerView, stream: &mut Stream) -> bool {
    let mut from = None;
    let mut page: Vec<SessionInfo> = Vec::with_capacity(PAGE);
    let mut text = String::from("OK\n");
    let mut first = true;
    loop {
        page.clear();
        let now = view.clock().now();
        let next = match view.store().list(now, from, PAGE, &mut page) {
            Ok(next) => next,
            Err(e) if first => {
                let e = error_line(ErrorCode::Unsupported, &e.to_string());
                return write_within(stream, e.as_bytes(), SEND);
            }
            Err(_) => return false,
        };
        first = false;
        for s in &page {
            SessionEntry {
                id: s.id.clone(),
                size: s.size as u64,
                expires_in_ms: s.expiry.saturating_sub(now),
                age_ms: now.saturating_sub(s.added),
            }
            .write_line(&mut text);
        }
        if next.is_none() {
            text.push_str(END);
            text.push('\n');
        }
        if !write_within(stream, text.as_bytes(), SEND) {
            return false;
        }
        text.clear();
        match next {
            None => return true,
            Some(_) if view.is_stopping() => return false,
            Some(cursor) => from = Some(cursor),
        }
    }
}

fn get(view: &ServerView, stream: &mut Stream, id: &[u8]) -> bool {
    let mut data = Vec::new();
    if !view.store().get_into(view.clock().now(), id, &mut data) {
        return not_found(stream);
    }
    let mut reply = format!("OK {}\n", data.len()).into_bytes();
    reply.extend_from_slice(&data);
    write_within(stream, &reply, SEND)
}

fn remove(view: &ServerView, stream: &mut Stream, id: &[u8]) -> bool {
    if view.store().remove(view.clock().now(), id) {
        write_within(stream, b"OK\n", SEND)
    } else {
        not_found(stream)
    }
}

fn not_found(stream: &mut Stream) -> bool {
    let e = error_line(ErrorCode::NotFound, "no session with this id is stored");
    write_within(stream, e.as_bytes(), SEND)
}

/// What [`LineReader::next`] got.
enum Line {
    /// A request line, without its line ending.
    Text(String),
    /// A line that is not ASCII text.
    Invalid,
    /// No line feed within the longest line allowed.
    TooLong,
    /// The peer closed or stayed idle too long, or the server stops.
    Over,
}

/// Splits what a peer sends into lines.
#[derive(Default)]
struct LineReader {
    pending: Vec<u8>,
}

impl LineReader {
    fn next(&mut self, view: &ServerView, stream: &mut Stream) -> Line {
        let until = Instant::now() + IDLE;
        let mut buf = [0u8; 512];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                if end + 1 > MAX_REQUEST_LINE {
                    return Line::TooLong;
                }
                let body = raw[..end].strip_suffix(b"\r").unwrap_or(&raw[..end]);
                return match std::str::from_utf8(body) {
                    Ok(s) if s.is_ascii() => Line::Text(s.to_string()),
                    _ => Line::Invalid,
                };
            }
            if self.pending.len() >= MAX_REQUEST_LINE {
                return Line::TooLong;
            }
            match read_until(view, stream, &mut buf, until) {
                Got::Bytes(n) => self.pending.extend_from_slice(&buf[..n]),
                Got::Over => return Line::Over,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn root_and_the_servers_user_only() {
        assert!(allowed(0, 0));
        assert!(allowed(0, 1000));
        assert!(allowed(1000, 1000));
        assert!(!allowed(1000, 0));
        assert!(!allowed(65534, 1000));
    }
}
