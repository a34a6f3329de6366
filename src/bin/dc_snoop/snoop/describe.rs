//! The text dc_snoop prints for each message: the operation, the uid, and
//! what matters of the payload (ids in hex, lengths, status names).

use distcache::internals::proto::admin::hex;
use distcache::internals::proto::{AddRequest, Command, Message, Status};
use std::fmt::Write as _;

/// Most id bytes printed; longer ids are cut short with their length.
const ID_SHOWN: usize = 64;

fn op_name(c: Command) -> &'static str {
    match c {
        Command::Add => "ADD",
        Command::Get => "GET",
        Command::Remove => "REMOVE",
        Command::Have => "HAVE",
        Command::Take => "TAKE",
    }
}

fn id(bytes: &[u8]) -> String {
    if bytes.len() <= ID_SHOWN {
        format!("id={}", hex(bytes))
    } else {
        format!("id={}...({} bytes)", hex(&bytes[..ID_SHOWN]), bytes.len())
    }
}

fn status_name(byte: u8) -> String {
    let name = match Status::from_wire(byte) {
        Some(Status::Ok) => "ok",
        Some(Status::NotFound) => "not-found",
        Some(Status::Disconnected) => "disconnected",
        Some(Status::AddCorrupt) => "corrupt",
        Some(Status::AddMatchingSession) => "exists",
        Some(Status::AddTimeoutRange) => "timeout-range",
        Some(Status::AddIdRange) => "id-range",
        Some(Status::AddDataRange) => "data-range",
        None => "unknown",
    };
    format!("{name}(0x{byte:02x})")
}

/// A request: `uid=U OP` and its fields.
pub fn request(m: &Message) -> String {
    let head = format!("uid={} {}", m.uid, op_name(m.command));
    match m.command {
        Command::Add => match AddRequest::parse(&m.payload) {
            Ok(Ok(a)) => format!(
                "{head} {} data_len={} timeout_ms={}",
                id(a.id),
                a.data.len(),
                a.timeout_msecs
            ),
            Ok(Err(status)) => format!(
                "{head} invalid, payload_len={} (the server answers {})",
                m.payload.len(),
                status_name(status.wire())
            ),
            Err(e) => format!("{head} malformed: {e} (the server closes the connection)"),
        },
        _ => format!("{head} {}", id(&m.payload)),
    }
}

/// A reply: `uid=U OP` and its outcome.
pub fn reply(m: &Message) -> String {
    let head = format!("uid={} {}", m.uid, op_name(m.command));
    match (m.command, m.payload.as_slice()) {
        (_, []) => format!("{head} empty (what a proxy sends when its server is down)"),
        (Command::Get | Command::Take, [0x01]) => format!("{head} miss"),
        (Command::Get | Command::Take, [b]) => format!("{head} status={}", status_name(*b)),
        (Command::Get | Command::Take, data) => format!("{head} hit data_len={}", data.len()),
        (Command::Remove | Command::Have, [0x00]) => format!("{head} found"),
        (Command::Remove | Command::Have, [0x01]) => format!("{head} not-found"),
        (_, [b]) => format!("{head} status={}", status_name(*b)),
        (_, p) => format!("{head} unexpected payload_len={}", p.len()),
    }
}

/// A classic hex dump of `bytes`: offset, 16 bytes in hex, and the
/// printable ones as text; each line indented and ending in a newline.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "    {:04x} ", i * 16);
        for b in line {
            let _ = write!(out, " {b:02x}");
        }
        out.push_str(&"   ".repeat(16 - line.len()));
        out.push_str("  ");
        out.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(is_response: bool, command: Command, payload: &[u8]) -> Message {
        Message {
            is_response,
            uid: 7,
            command,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn requests() {
        let mut add = Vec::new();
        AddRequest {
            timeout_msecs: 1500,
            id: b"\x01\xab",
            data: b"xyz",
        }
        .encode(&mut add)
        .unwrap();
        assert_eq!(
            request(&msg(false, Command::Add, &add)),
            "uid=7 ADD id=01ab data_len=3 timeout_ms=1500"
        );
        assert_eq!(
            request(&msg(false, Command::Add, &[0, 0, 0, 1, 0, 0, 0, 9, 1])),
            "uid=7 ADD invalid, payload_len=9 (the server answers corrupt(0x64))"
        );
        assert!(request(&msg(false, Command::Add, &[0, 0])).contains("malformed"));
        assert_eq!(
            request(&msg(false, Command::Have, b"\xff")),
            "uid=7 HAVE id=ff"
        );
        let long = request(&msg(false, Command::Get, &[0xee; 70]));
        assert!(long.ends_with("...(70 bytes)"), "{long}");
    }

    #[test]
    fn replies() {
        let r = |c, p: &[u8]| reply(&msg(true, c, p));
        assert_eq!(r(Command::Add, &[0]), "uid=7 ADD status=ok(0x00)");
        assert_eq!(r(Command::Add, &[0x65]), "uid=7 ADD status=exists(0x65)");
        assert_eq!(r(Command::Add, &[0x99]), "uid=7 ADD status=unknown(0x99)");
        assert_eq!(r(Command::Get, &[1]), "uid=7 GET miss");
        assert_eq!(r(Command::Get, &[2]), "uid=7 GET status=disconnected(0x02)");
        assert_eq!(r(Command::Get, &[5; 40]), "uid=7 GET hit data_len=40");
        assert_eq!(r(Command::Remove, &[0]), "uid=7 REMOVE found");
        assert_eq!(r(Command::Take, &[1]), "uid=7 TAKE miss");
        assert_eq!(r(Command::Take, b"session"), "uid=7 TAKE hit data_len=7");
        assert_eq!(
            request(&msg(false, Command::Take, b"\x01\xab")),
            "uid=7 TAKE id=01ab"
        );
        assert_eq!(r(Command::Have, &[1]), "uid=7 HAVE not-found");
        assert!(r(Command::Have, &[]).contains("empty"));
        assert_eq!(
            r(Command::Have, &[0, 0]),
            "uid=7 HAVE unexpected payload_len=2"
        );
    }

    #[test]
    fn dump_lines() {
        let d = hex_dump(b"0123456789abcdefXY\x00");
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("    0000  30 31"), "{d}");
        assert!(lines[0].ends_with("0123456789abcdef"), "{d}");
        assert!(lines[1].starts_with("    0010  58 59 00 "), "{d}");
        assert!(lines[1].ends_with("  XY."), "{d}");
        assert_eq!(hex_dump(&[]), "");
    }
}
