//! The metrics page: a small HTTP/1.1 server answering `GET /metrics` with
//! [`exposition`]'s text.
//!
//! One thread serves one connection at a time and one request per
//! connection (`Connection: close`). The request head must arrive within
//! [`REQUEST_WAIT`] and hold at most [`MAX_REQUEST`] bytes; a body is never
//! read. `GET` and `HEAD` of `/metrics` (any query string ignored) get the
//! page, other paths 404, other methods 405, anything else 400.

use super::exposition::{exposition, CONTENT_TYPE};
use super::inspect::{close_gently, read_until, spawn_acceptor, write_within, Got};
use super::{Report, Server, ServerError, ServerView};
use crate::nal::{Listener, Stream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the request head may take to arrive.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// How long the response may take to send.
const SEND: Duration = Duration::from_secs(5);
/// Longest request head.
const MAX_REQUEST: usize = 8192;

impl Server {
    /// Starts the thread that serves the metrics page on `listener` (a TCP
    /// listener) until the server stops.
    pub fn spawn_metrics(&self, listener: Arc<Listener>) -> Result<JoinHandle<()>, ServerError> {
        spawn_acceptor("dc-metrics", "metrics page", self.view(), listener, serve)
    }
}

fn serve(view: &ServerView, mut stream: Stream) {
    let until = Instant::now() + REQUEST_WAIT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let response = loop {
        if let Some(end) = head_end(&head) {
            break respond(view, &head[..end]);
        }
        if head.len() >= MAX_REQUEST {
            break Response::text(400, "Bad Request", "request too large\n");
        }
        match read_until(view, &mut stream, &mut buf, until) {
            Got::Bytes(n) => head.extend_from_slice(&buf[..n]),
            Got::Over => return,
        }
    };
    if write_within(&mut stream, &response.bytes(), SEND) {
        close_gently(view, stream);
    }
}

/// Where the request head ends (after its blank line), if it has.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: body.into(),
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The response to a request whose head is `head`.
fn respond(view: &ServerView, head: &[u8]) -> Response {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Response::text(400, "Bad Request", "bad request\n");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "bad request line\n");
    };
    if !version.starts_with("HTTP/1.") || target.is_empty() {
        return Response::text(400, "Bad Request", "bad request line\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Response::text(405, "Method Not Allowed", "only GET and HEAD\n");
            r.extra = "Allow: GET, HEAD\r\n";
            return r;
        }
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut r = if path == "/metrics" {
        let report = Report::gather(view.stats(), view.store(), &view.clock());
        Response {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            extra: "",
            body: exposition(&report),
            head_only: false,
        }
    } else {
        Response::text(404, "Not Found", "not found: try /metrics\n")
    };
    r.head_only = head_only;
    r
}

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    fn the_head_ends_at_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
