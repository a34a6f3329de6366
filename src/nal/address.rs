use super::NalError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Turns a host name and a port into an IPv4 address.
#[doc(hidden)]
pub type Resolver<'a> = dyn Fn(&str, u16) -> Result<Ipv4Addr, NalError> + 'a;

/// Longest UNIX socket path (the size of `sun_path` less its terminator).
const UNIX_PATH_MAX: usize = 107;

/// A parsed network address.
///
/// Syntax (the original's, plus IPv6):
/// - `IP:port`, `IPv4:port`, `IP::port`: every IPv4 interface; listen only.
/// - `IP:host:port`, `IPv4:host:port`: a host name or dotted address.
/// - `IPv6:port`: every IPv6 interface; listen only.
/// - `IPv6:[addr]:port`: an IPv6 address.
/// - `UNIX:/path/to/socket`: a UNIX socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP address. `connectable` is false for the host-less forms.
    Tcp {
        /// The socket address (unspecified IP for the host-less forms).
        addr: SocketAddr,
        /// Whether a host was given, so that the address can be connected to.
        connectable: bool,
    },
    /// A UNIX socket path.
    Unix(PathBuf),
}

impl Address {
    /// Parses an address string, resolving a host name if one is given.
    pub fn parse(s: &str) -> Result<Address, NalError> {
        Address::parse_with(s, &resolve_v4)
    }

    /// [`Address::parse`] with `resolve` turning an `IP:` host name (one
    /// that is not a dotted address) and a port into an IPv4 address.
    #[doc(hidden)]
    pub fn parse_with(s: &str, resolve: &Resolver<'_>) -> Result<Address, NalError> {
        let bad = |why| NalError::BadAddress(s.to_string(), why);
        let (prefix, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected PREFIX:..."))?;
        match prefix {
            "IP" | "IPv4" => parse_ipv4(s, rest, resolve),
            "IPv6" => parse_ipv6(s, rest),
            "UNIX" => {
                if rest.is_empty() {
                    Err(bad("empty socket path"))
                } else if rest.len() > UNIX_PATH_MAX {
                    Err(bad("socket path longer than 107 bytes"))
                } else if rest.contains('\0') {
                    Err(bad("socket path contains a NUL byte"))
                } else {
                    Ok(Address::Unix(PathBuf::from(rest)))
                }
            }
            _ => Err(bad("unknown prefix (expected IP:, IPv4:, IPv6: or UNIX:)")),
        }
    }

    /// Whether a connection can be made to this address.
    pub fn can_connect(&self) -> bool {
        match self {
            Address::Tcp { connectable, .. } => *connectable,
            Address::Unix(_) => true,
        }
    }

    /// Whether this address can be listened on (every parsed address can).
    pub fn can_listen(&self) -> bool {
        true
    }
}

fn parse_port(s: &str, port: &str) -> Result<u16, NalError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NalError::BadAddress(s.to_string(), "port must be a number"));
    }
    port.parse::<u16>()
        .map_err(|_| NalError::BadAddress(s.to_string(), "port must be 0..65535"))
}

fn parse_ipv4(s: &str, rest: &str, resolve: &Resolver<'_>) -> Result<Address, NalError> {
    match rest.split_once(':') {
        None | Some(("", _)) => {
            let port = rest.strip_prefix(':').unwrap_or(rest);
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), parse_port(s, port)?);
            Ok(Address::Tcp {
                addr,
                connectable: false,
            })
        }
        Some((host, port)) => {
            let port = parse_port(s, port)?;
            let ip = match host.parse::<Ipv4Addr>() {
                Ok(ip) => ip,
                Err(_) => resolve(host, port)?,
            };
            Ok(Address::Tcp {
                addr: SocketAddr::new(IpAddr::V4(ip), port),
                connectable: true,
            })
        }
    }
}

fn resolve_v4(host: &str, port: u16) -> Result<Ipv4Addr, NalError> {
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|_| NalError::Resolve(host.into()))?;
    resolved
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| NalError::Resolve(host.into()))
}

fn parse_ipv6(s: &str, rest: &str) -> Result<Address, NalError> {
    let bad = |why| NalError::BadAddress(s.to_string(), why);
    match rest.strip_prefix('[') {
        None => {
            let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), parse_port(s, rest)?);
            Ok(Address::Tcp {
                addr,
                connectable: false,
            })
        }
        Some(bracketed) => {
            let (ip, port) = bracketed
                .split_once("]:")
                .ok_or_else(|| bad("expected [addr]:port"))?;
            let ip = ip
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 address"))?;
            let port = parse_port(s, port)?;
            Ok(Address::Tcp {
                addr: SocketAddr::new(IpAddr::V6(ip), port),
                connectable: true,
            })
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp {
                addr: SocketAddr::V4(a),
                connectable: true,
            } => write!(f, "IP:{a}"),
            Address::Tcp {
                addr: SocketAddr::V4(a),
                connectable: false,
            } => {
                write!(f, "IP:{}", a.port())
            }
            Address::Tcp {
                addr: SocketAddr::V6(a),
                connectable: true,
            } => {
                write!(f, "IPv6:[{}]:{}", a.ip(), a.port())
            }
            Address::Tcp {
                addr: SocketAddr::V6(a),
                connectable: false,
            } => {
                write!(f, "IPv6:{}", a.port())
            }
            Address::Unix(p) => write!(f, "UNIX:{}", p.display()),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = NalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> (SocketAddr, bool) {
        match Address::parse(s) {
            Ok(Address::Tcp { addr, connectable }) => (addr, connectable),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn ipv4_forms() {
        assert_eq!(tcp("IP:9001"), ("0.0.0.0:9001".parse().unwrap(), false));
        assert_eq!(tcp("IPv4:9001"), ("0.0.0.0:9001".parse().unwrap(), false));
        assert_eq!(tcp("IP::9001"), ("0.0.0.0:9001".parse().unwrap(), false));
        assert_eq!(
            tcp("IP:127.0.0.1:9001"),
            ("127.0.0.1:9001".parse().unwrap(), true)
        );
        assert_eq!(
            tcp("IPv4:127.0.0.1:0"),
            ("127.0.0.1:0".parse().unwrap(), true)
        );
        assert_eq!(
            tcp("IP:localhost:80"),
            ("127.0.0.1:80".parse().unwrap(), true)
        );
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(tcp("IPv6:9001"), ("[::]:9001".parse().unwrap(), false));
        assert_eq!(
            tcp("IPv6:[::1]:9001"),
            ("[::1]:9001".parse().unwrap(), true)
        );
    }

    #[test]
    fn unix_form() {
        let a = Address::parse("UNIX:/tmp/x.sock").unwrap();
        assert_eq!(a, Address::Unix("/tmp/x.sock".into()));
        assert!(a.can_connect() && a.can_listen());
        assert_eq!(a.to_string(), "UNIX:/tmp/x.sock");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "9001",
            "TCP:1",
            ":1",
            "IP:",
            "IP:abc",
            "IP:70000",
            "IP:1.2.3.4:",
            "IP:1.2.3.4:x",
            "IP:-1",
            "IPv6:[::1]",
            "IPv6:[zz]:1",
            "IPv6:",
            "UNIX:",
            "ip:1",
            "IP:no-such-host.invalid:1",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let long = format!("UNIX:/{}", "a".repeat(107));
        assert!(Address::parse(&long).is_err());
        assert!(Address::parse(&format!("UNIX:/{}", "a".repeat(106))).is_ok());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "IP:9001",
            "IP:127.0.0.1:9001",
            "IPv6:9001",
            "IPv6:[::1]:9001",
            "UNIX:/a/b",
        ] {
            assert_eq!(Address::parse(s).unwrap().to_string(), s);
        }
    }
}
