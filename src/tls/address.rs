use crate::nal::{Address, NalError};
use std::fmt;
use std::net::IpAddr;

const PREFIX: &str = "TLS:";

/// A `TLS:` address: a TCP address, and the name or IP address the peer's
/// certificate must carry.
///
/// Syntax: `TLS:host:port` (a host name, resolved to IPv4 as `IP:` does,
/// or a dotted address), `TLS:[addr]:port` (IPv6), and, to listen only,
/// `TLS:port` (every IPv4 interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsAddress {
    /// Where to connect or listen.
    pub address: Address,
    /// The host as written: what the server's certificate must name.
    pub host: Option<String>,
}

/// Whether `s` is written as a `TLS:` address.
pub fn is_tls(s: &str) -> bool {
    s.starts_with(PREFIX)
}

impl TlsAddress {
    /// Parses a `TLS:` address.
    pub fn parse(s: &str) -> Result<TlsAddress, NalError> {
        let bad = |why| NalError::BadAddress(s.to_string(), why);
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("expected TLS:..."))?;
        let (inner, host) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let host = bracketed.split_once(']').map(|(h, _)| h.to_string());
                (format!("IPv6:{rest}"), host)
            }
            None => {
                let host = rest
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string);
                (format!("IP:{rest}"), host)
            }
        };
        let address = Address::parse(&inner).map_err(|e| match e {
            NalError::BadAddress(_, why) => bad(why),
            other => other,
        })?;
        Ok(TlsAddress { address, host })
    }

    /// The host as an IP address, when it is written as one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host.as_deref()?.parse().ok()
    }
}

impl fmt::Display for TlsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match &self.address {
            Address::Tcp { addr, .. } => addr.port(),
            Address::Unix(_) => 0,
        };
        match (&self.host, self.host_ip()) {
            (Some(h), Some(IpAddr::V6(_))) => write!(f, "TLS:[{h}]:{port}"),
            (Some(h), _) => write!(f, "TLS:{h}:{port}"),
            (None, _) => write!(f, "TLS:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = TlsAddress::parse("TLS:127.0.0.1:9001").unwrap();
        assert_eq!(a.address, Address::parse("IP:127.0.0.1:9001").unwrap());
        assert_eq!(a.host.as_deref(), Some("127.0.0.1"));
        assert!(a.host_ip().is_some());
        let a = TlsAddress::parse("TLS:[::1]:9001").unwrap();
        assert_eq!(a.address, Address::parse("IPv6:[::1]:9001").unwrap());
        assert_eq!(a.host.as_deref(), Some("::1"));
        let a = TlsAddress::parse("TLS:localhost:9001").unwrap();
        assert_eq!(a.host.as_deref(), Some("localhost"));
        assert!(a.host_ip().is_none());
        let a = TlsAddress::parse("TLS:9001").unwrap();
        assert!(!a.address.can_connect());
        assert_eq!(a.host, None);
        for s in [
            "TLS:127.0.0.1:9001",
            "TLS:[::1]:9001",
            "TLS:9001",
            "TLS:localhost:1",
        ] {
            assert_eq!(TlsAddress::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects() {
        for s in [
            "TLS:",
            "TLS:x",
            "TLS:[::1]",
            "TLS:1.2.3.4:",
            "IP:1.2.3.4:1",
            "TLS:[zz]:1",
        ] {
            assert!(TlsAddress::parse(s).is_err(), "{s}");
        }
        let e = TlsAddress::parse("TLS:1.2.3.4:x").unwrap_err().to_string();
        assert!(e.contains("TLS:1.2.3.4:x"), "{e}");
    }
}
