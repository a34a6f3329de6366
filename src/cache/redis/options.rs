//! What a Redis store is told: where Redis is, whether the link is TLS
//! and with which certificates, how to log in, the key prefix, the time
//! bound, and whether a removal waits for a replica.

use super::tls::StoreTls;
use super::RedisError;
use crate::cache::durable::Logger;
use std::time::Duration;

/// The scheme that selects a Redis store in `-store`, reached in plain text.
pub const SCHEME: &str = "redis://";
/// The scheme that selects a Redis store reached over TLS.
pub const TLS_SCHEME: &str = "rediss://";
/// The key prefix when none is given.
pub const DEFAULT_PREFIX: &[u8] = b"dc:";
/// The time bound when none is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

/// One seed node, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The host name or address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How to reach Redis and what to keep there.
///
/// `rediss://` makes every link to Redis TLS ([`RedisOptions::tls`]): each
/// node's certificate is verified against the CA given (its chain, and the
/// host name or IP address the gateway reaches it by), and the gateway
/// presents its own certificate, which Redis asks for by default
/// (`tls-auth-clients yes`). A cluster's nodes announce IP addresses, so
/// their certificates name those. Sessions hold master secrets: a plain
/// `redis://` link to another host carries them in the clear, which the
/// gateway warns of when it starts.
///
/// ```
/// use distcache::RedisOptions;
/// let o = RedisOptions::parse("rediss://gw@10.0.0.5:6380,10.0.0.6:6380").unwrap();
/// assert!(o.tls.is_some());
/// assert_eq!(o.cleartext_seeds().len(), 0);
/// let o = RedisOptions::parse("redis://10.0.0.5:6379").unwrap();
/// assert_eq!(o.cleartext_seeds()[0].host, "10.0.0.5");
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Seed nodes: any one that answers tells whether this is a cluster.
    pub seeds: Vec<Seed>,
    /// TLS on every link (`rediss://`), with whom to trust and the
    /// certificate to present; `None` for plain text (`redis://`).
    pub tls: Option<StoreTls>,
    /// The user to log in as (Redis 6 ACLs), if any.
    pub user: Option<String>,
    /// The password, if any (read from a file, never from the command line).
    pub password: Option<String>,
    /// Put before every session id to make its key.
    pub prefix: Vec<u8>,
    /// Every request is answered within this.
    pub timeout: Duration,
    /// A REMOVE is answered only once a replica has it (`WAIT 1`).
    pub remove_sync: bool,
    /// Outages, and what the store noticed when it connected, go here.
    pub log: Logger,
}

impl RedisOptions {
    /// Options for `spec`, `redis://[USER@]HOST:PORT[,HOST:PORT...]` (or
    /// `rediss://` for TLS, with the system's CAs and no client
    /// certificate until [`RedisOptions::tls`] says otherwise), with the
    /// defaults for everything else.
    pub fn parse(spec: &str) -> Result<RedisOptions, RedisError> {
        let bad = |why: &str| RedisError::Address(format!("'{spec}': {why}"));
        let (rest, tls) = match (spec.strip_prefix(SCHEME), spec.strip_prefix(TLS_SCHEME)) {
            (Some(rest), _) => (rest, None),
            (None, Some(rest)) => (rest, Some(StoreTls::default())),
            (None, None) => return Err(bad("does not start with redis:// or rediss://")),
        };
        let (user, nodes) = match rest.split_once('@') {
            Some(("", _)) => return Err(bad("the user name is empty")),
            Some((user, _)) if user.contains(':') => {
                return Err(bad(
                    "a password does not belong on the command line: use -store-auth FILE",
                ))
            }
            Some((user, nodes)) => (Some(user.to_string()), nodes),
            None => (None, rest),
        };
        let mut seeds = Vec::new();
        for node in nodes.split(',') {
            let (host, port) = node
                .rsplit_once(':')
                .ok_or_else(|| bad("each node is HOST:PORT"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(bad("a node has no host"));
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad("a port is not a number from 1 to 65535"))?;
            seeds.push(Seed {
                host: host.to_string(),
                port,
            });
        }
        Ok(RedisOptions {
            seeds,
            tls,
            user,
            password: None,
            prefix: DEFAULT_PREFIX.to_vec(),
            timeout: DEFAULT_TIMEOUT,
            remove_sync: true,
            log: Logger::default(),
        })
    }
}

impl RedisOptions {
    /// The seeds reached in plain text on another host than this one: all
    /// but loopback addresses and `localhost`, unless the link is TLS.
    pub fn cleartext_seeds(&self) -> Vec<&Seed> {
        if self.tls.is_some() {
            return Vec::new();
        }
        self.seeds
            .iter()
            .filter(|s| !is_loopback(&s.host))
            .collect()
    }
}

/// Whether `host` is this machine by its name or address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `spec`, a `-store` value, names a Redis store.
pub fn is_redis(spec: &str) -> bool {
    spec.starts_with(SCHEME) || spec.starts_with(TLS_SCHEME)
}

/// The password in `text`, the contents of a `-store-auth` file: its first
/// line, without the line end.
pub fn password_from(text: &str) -> Result<String, RedisError> {
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(RedisError::Auth("the password file is empty".into()));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_user() {
        let o = RedisOptions::parse("redis://127.0.0.1:7000,localhost:7001").unwrap();
        assert_eq!(o.seeds.len(), 2);
        assert_eq!(o.seeds[1].to_string(), "localhost:7001");
        assert_eq!(o.user, None);
        assert!(o.tls.is_none());
        let o = RedisOptions::parse("redis://gw@[::1]:6379").unwrap();
        assert_eq!(o.user.as_deref(), Some("gw"));
        assert_eq!(o.seeds[0].host, "::1");
        let o = RedisOptions::parse("rediss://gw@10.1.2.3:6380").unwrap();
        assert_eq!(o.user.as_deref(), Some("gw"));
        assert!(o.tls.is_some());
        for bad in [
            "redis:/x:1",
            "redis://host",
            "redis://host:0",
            "redis://:1",
            "redis://u:pw@h:1",
            "redis://@h:1",
            "redis://h:1,",
            "rediss://h",
            "redisss://h:1",
            "http://h:1",
        ] {
            assert!(RedisOptions::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cleartext_is_any_other_host_without_tls() {
        let o = RedisOptions::parse("redis://127.0.0.1:1,[::1]:2,LocalHost:3,127.8.0.1:4").unwrap();
        assert!(o.cleartext_seeds().is_empty());
        let o = RedisOptions::parse("redis://127.0.0.1:1,cache.example:2,10.0.0.1:3").unwrap();
        let hosts: Vec<&str> = o
            .cleartext_seeds()
            .iter()
            .map(|s| s.host.as_str())
            .collect();
        assert_eq!(hosts, ["cache.example", "10.0.0.1"]);
        let o = RedisOptions::parse("rediss://cache.example:2").unwrap();
        assert!(o.cleartext_seeds().is_empty());
        assert!(is_redis("rediss://h:1") && is_redis("redis://h:1") && !is_redis("/var/dc"));
    }

    #[test]
    fn password_is_the_first_line() {
        assert_eq!(password_from("s3cret\nignored\n").unwrap(), "s3cret");
        assert!(password_from("\n").is_err());
    }
}
