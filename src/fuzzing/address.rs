//! Address strings (`IP:`, `IPv4:`, `IPv6:`, `UNIX:`).

use crate::nal::{Address, NalError};
use std::net::Ipv4Addr;

/// Stands in for the system resolver, so that fuzzing makes no lookups: a
/// name of letters, digits, dots and dashes resolves to a documentation
/// address, anything else fails.
fn fake_resolve(host: &str, _port: u16) -> Result<Ipv4Addr, NalError> {
    if !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        Ok(Ipv4Addr::new(192, 0, 2, 1))
    } else {
        Err(NalError::Resolve(host.into()))
    }
}

/// Address parsing: never panics; what parses has one of the documented
/// prefixes, a UNIX path that fits `sun_path` without a NUL, and prints as a
/// string that parses back to the same address and prints the same.
pub fn address(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Address::parse_with(text, &fake_resolve) else {
        return;
    };
    let (prefix, rest) = text.split_once(':').unwrap_or((text, ""));
    assert!(["IP", "IPv4", "IPv6", "UNIX"].contains(&prefix), "{text:?}");
    match &parsed {
        Address::Unix(path) => {
            let path = path.as_os_str().as_encoded_bytes();
            assert!(!path.is_empty() && path.len() <= 107 && !path.contains(&0));
        }
        Address::Tcp { addr, connectable } => {
            assert_eq!(addr.is_ipv6(), prefix == "IPv6", "{text:?}");
            // A host was given: `[addr]:port`, or `host:port` with a host.
            let host_given = match prefix {
                "IPv6" => rest.starts_with('['),
                _ => matches!(rest.split_once(':'), Some((host, _)) if !host.is_empty()),
            };
            assert_eq!(*connectable, host_given, "{text:?}");
        }
    }
    let shown = parsed.to_string();
    match Address::parse_with(&shown, &fake_resolve) {
        Ok(again) => {
            assert_eq!(again, parsed, "{text:?} prints as {shown:?}");
            assert_eq!(again.to_string(), shown);
        }
        Err(e) => panic!("{text:?} prints as {shown:?}, which does not parse: {e}"),
    }
}
