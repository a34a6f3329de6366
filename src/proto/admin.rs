//! The admin socket's protocol, with no I/O: lines of ASCII text ended by
//! a line feed. The server (`server::admin`) and the `dc_admin` tool both
//! speak it.
//!
//! ```text
//! server: OK distcache-admin 1          greeting (or "ERR denied ..." and close)
//! client: STATS | LS | GET <hex id> | RM <hex id> | QUIT
//! server: OK                            STATS, LS: lines, then "."
//!         OK <n>                        GET: then exactly <n> bytes of data
//!         OK                            RM
//!         ERR <code> <text>             any request
//! ```
//!
//! A `STATS` line is `<name> <value>` (a whole number); an `LS` line is
//! `<hex id> <size> <expires in, ms> <age, ms>`. Codes are `denied`,
//! `notfound`, `badrequest`, `toolong` and `unsupported`. Request lines are
//! at most [`MAX_REQUEST_LINE`] bytes.

use super::MAX_ID_LEN;
use std::fmt::Write;
use thiserror::Error;

/// The version of this protocol, in the greeting.
pub const VERSION: u32 = 1;
/// The line a server sends first to a peer it serves.
pub const GREETING: &str = "OK distcache-admin 1";
/// Longest request line, line feed included.
pub const MAX_REQUEST_LINE: usize = 1024;
/// Longest reply line a client accepts, line feed included.
pub const MAX_REPLY_LINE: usize = 4096;
/// The line that ends a multi-line reply.
pub const END: &str = ".";

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The server's counters.
    Stats,
    /// Every stored session, without its data.
    List,
    /// One session's data.
    Get(Vec<u8>),
    /// Delete one session.
    Remove(Vec<u8>),
    /// End the connection.
    Quit,
}

/// Why a request line cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Nothing but white space.
    #[error("empty request")]
    Empty,
    /// A command this server does not know.
    #[error("unknown command '{0}' (STATS, LS, GET, RM, QUIT)")]
    Unknown(String),
    /// A command that needs an id got none, or one that takes no argument
    /// got one.
    #[error("{0}")]
    Arguments(&'static str),
    /// An id that is not 1 to 64 bytes in hexadecimal.
    #[error("bad session id: {0}")]
    BadId(&'static str),
}

impl Request {
    /// Parses a request line (without its line feed).
    pub fn parse(line: &str) -> Result<Request, RequestError> {
        let mut words = line.split_ascii_whitespace();
        let Some(command) = words.next() else {
            return Err(RequestError::Empty);
        };
        let arg = words.next();
        if words.next().is_some() {
            return Err(RequestError::Arguments("too many arguments"));
        }
        let no_arg = |r: Request| match arg {
            None => Ok(r),
            Some(_) => Err(RequestError::Arguments("this command takes no argument")),
        };
        let id = || match arg {
            None => Err(RequestError::Arguments("this command needs a session id")),
            Some(hex) => parse_id(hex).map_err(RequestError::BadId),
        };
        match command.to_ascii_uppercase().as_str() {
            "STATS" => no_arg(Request::Stats),
            "LS" => no_arg(Request::List),
            "QUIT" => no_arg(Request::Quit),
            "GET" => Ok(Request::Get(id()?)),
            "RM" => Ok(Request::Remove(id()?)),
            _ => Err(RequestError::Unknown(command.chars().take(32).collect())),
        }
    }

    /// The request as a line, line feed included.
    pub fn line(&self) -> String {
        match self {
            Request::Stats => "STATS\n".into(),
            Request::List => "LS\n".into(),
            Request::Quit => "QUIT\n".into(),
            Request::Get(id) => format!("GET {}\n", hex(id)),
            Request::Remove(id) => format!("RM {}\n", hex(id)),
        }
    }
}

/// The codes of `ERR` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The peer may not use the admin socket.
    Denied,
    /// No session has that id.
    NotFound,
    /// The request cannot be parsed.
    BadRequest,
    /// The request line is too long (the connection is closed).
    TooLong,
    /// The server cannot do this (e.g. its store does not list sessions).
    Unsupported,
}

impl ErrorCode {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::NotFound => "notfound",
            ErrorCode::BadRequest => "badrequest",
            ErrorCode::TooLong => "toolong",
            ErrorCode::Unsupported => "unsupported",
        }
    }

    fn parse(s: &str) -> Option<ErrorCode> {
        [
            ErrorCode::Denied,
            ErrorCode::NotFound,
            ErrorCode::BadRequest,
            ErrorCode::TooLong,
            ErrorCode::Unsupported,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// An `ERR` reply line, line feed included. The text is kept to one line.
pub fn error_line(code: ErrorCode, text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("ERR {} {text}\n", code.as_str())
}

/// The first line of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `OK`, with what follows it (empty if nothing).
    Ok(String),
    /// `ERR`: the code (None if unknown to this client) and the text.
    Err(Option<ErrorCode>, String),
}

/// Parses the first line of a reply (without its line feed); None if it is
/// neither `OK` nor `ERR`.
pub fn parse_status(line: &str) -> Option<Status> {
    if line == "OK" {
        return Some(Status::Ok(String::new()));
    }
    if let Some(rest) = line.strip_prefix("OK ") {
        return Some(Status::Ok(rest.to_string()));
    }
    let rest = line.strip_prefix("ERR ")?;
    let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Status::Err(ErrorCode::parse(code), text.to_string()))
}

/// One session as `LS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The session id.
    pub id: Vec<u8>,
    /// Bytes of session data.
    pub size: u64,
    /// Milliseconds until it expires.
    pub expires_in_ms: u64,
    /// Milliseconds since it was stored.
    pub age_ms: u64,
}

impl SessionEntry {
    /// Appends the `LS` line for this session, line feed included.
    pub fn write_line(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{} {} {} {}",
            hex(&self.id),
            self.size,
            self.expires_in_ms,
            self.age_ms
        );
    }

    /// Parses an `LS` line (without its line feed).
    pub fn parse_line(line: &str) -> Option<SessionEntry> {
        let mut w = line.split(' ');
        let entry = SessionEntry {
            id: parse_id(w.next()?).ok()?,
            size: w.next()?.parse().ok()?,
            expires_in_ms: w.next()?.parse().ok()?,
            age_ms: w.next()?.parse().ok()?,
        };
        w.next().is_none().then_some(entry)
    }
}

/// Parses a `STATS` line (without its line feed) into its name and value.
pub fn parse_stat_line(line: &str) -> Option<(String, u64)> {
    let (name, value) = line.split_once(' ')?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    valid.then_some(())?;
    Some((name.to_string(), value.parse().ok()?))
}

/// Bytes in lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses a session id written in hexadecimal (either case): 1 to 64 bytes.
pub fn parse_id(s: &str) -> Result<Vec<u8>, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.len() % 2 != 0 {
        return Err("an odd number of hexadecimal digits");
    }
    if s.len() / 2 > MAX_ID_LEN {
        return Err("longer than 64 bytes");
    }
    let digit = |c: u8| (c as char).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok((h * 16 + l) as u8),
            _ => Err("not hexadecimal"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Stats,
            Request::List,
            Request::Quit,
            Request::Get(vec![0, 1, 0xab, 0xff]),
            Request::Remove((0..64).collect()),
        ] {
            let line = r.line();
            assert!(line.ends_with('\n') && line.len() <= MAX_REQUEST_LINE);
            assert_eq!(Request::parse(line.trim_end()), Ok(r));
        }
        assert_eq!(Request::parse("get 0A0b"), Ok(Request::Get(vec![10, 11])));
        assert_eq!(Request::parse("  ls  "), Ok(Request::List));
    }

    #[test]
    fn bad_requests_say_why() {
        assert_eq!(Request::parse(" "), Err(RequestError::Empty));
        assert!(matches!(
            Request::parse("FLUSH"),
            Err(RequestError::Unknown(c)) if c == "FLUSH"
        ));
        assert!(matches!(
            Request::parse("GET"),
            Err(RequestError::Arguments(_))
        ));
        assert!(matches!(
            Request::parse("LS x"),
            Err(RequestError::Arguments(_))
        ));
        assert!(matches!(
            Request::parse("RM ab cd"),
            Err(RequestError::Arguments(_))
        ));
        for bad in ["abc", "zz", &"00".repeat(65)] {
            assert!(
                matches!(
                    Request::parse(&format!("GET {bad}")),
                    Err(RequestError::BadId(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn replies_parse() {
        assert_eq!(
            parse_status(GREETING),
            Some(Status::Ok("distcache-admin 1".into()))
        );
        assert_eq!(parse_status("OK"), Some(Status::Ok(String::new())));
        assert_eq!(
            parse_status(error_line(ErrorCode::NotFound, "no\nsuch").trim_end()),
            Some(Status::Err(Some(ErrorCode::NotFound), "no such".into()))
        );
        assert_eq!(
            parse_status("ERR weird"),
            Some(Status::Err(None, String::new()))
        );
        assert_eq!(parse_status("HELLO"), None);
        assert_eq!(
            parse_stat_line("ops.get.ok 12"),
            Some(("ops.get.ok".into(), 12))
        );
        assert_eq!(parse_stat_line("ops.get.ok -1"), None);
        assert_eq!(parse_stat_line("a b 1"), None);
    }

    #[test]
    fn list_lines_round_trip() {
        let e = SessionEntry {
            id: vec![0xde, 0xad],
            size: 3,
            expires_in_ms: 299_000,
            age_ms: 1000,
        };
        let mut line = String::new();
        e.write_line(&mut line);
        assert_eq!(line, "dead 3 299000 1000\n");
        assert_eq!(SessionEntry::parse_line(line.trim_end()), Some(e));
        assert_eq!(SessionEntry::parse_line("dead 3 299000"), None);
        assert_eq!(SessionEntry::parse_line("dead 3 1 2 3"), None);
    }
}
