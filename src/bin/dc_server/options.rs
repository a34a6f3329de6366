//! dc_server's command line: the usage text, the options and what they
//! are checked against.

use crate::redis_args::RedisArgs;
use crate::tls::TlsArgs;
use distcache::internals::cache::redis;
use distcache::internals::cache::Logger;
use distcache::internals::cli::{
    bytes_in, is_help, non_empty_path, number_in, Args, Asked, CliError,
};
use distcache::internals::daemon::{self, log, DaemonOptions, Level};
use distcache::internals::nal::parse_mode;
use distcache::internals::proto::MAX_EXPIRY_MS;
use distcache::internals::server::MAX_THREADS;
use distcache::internals::tls::is_tls;
use distcache::Address;
use distcache::{RedisOptions, ServerConfig, ServerOptions, SyncMode, TlsAddress};
use std::path::PathBuf;
use std::time::Duration;

const USAGE_HEAD: &str = "\
Usage: dc_server [options]
  -listen <addr>     listen on <addr>; give it more than once to listen on
                     several addresses (at least one is required)
  -sessions <num>    hold at most <num> sessions (default 512,
                     1 to 100000000)
  -maxbytes <size>   also hold at most <size> bytes of session ids and
                     data; suffixes k, M, G (default 0: no limit but
                     -sessions; at most 1024G)
  -maxconns <num>    serve at most <num> connections at once; at the
                     limit a new one takes the place of the longest idle,
                     and is closed at once when every one is busy
                     (default: what the open-file limit allows, at most
                     65536; 1 to 1000000)
  -threads <num>     worker threads, each an event loop serving many
                     connections (default: one per CPU the server may
                     run on; 1 to 1024)
  -idle <msecs>      close connections that have sent nothing for <msecs>
                     milliseconds (default 0: never; at most 3600000)
  -min-expiry <ms>   keep every session added for at least <ms>
                     milliseconds (default 0: as long as the client asks;
                     at most 604800000)
  -progress <num>    also log a progress line whenever <num> more
                     operations are done (0 to 1000000)
  -admin <addr>      serve the admin socket that dc_admin uses at <addr>, a
                     UNIX socket (UNIX:/path); only root and the user the
                     server runs as may use it
  -adminperms <oct>  permissions of the admin socket file, in octal, as for
                     -sockperms (default 600)
  -metrics <addr>    serve the counters in the Prometheus text format over
                     HTTP at <addr> (IP:port or IP:host:port), on /metrics
  -tls-cert <file>   with TLS: listeners, the server's certificate chain (PEM)
  -tls-key <file>    its private key (PEM)
  -tls-ca <file>     the CA every client's certificate must chain to (PEM)
  -tls-no-client-cert  let clients in without a certificate (not
                     recommended: anyone who reaches the port can then read
                     and add sessions)
  -tls12             also accept TLS 1.2 (default: TLS 1.3 only)
  -store <dir>       also keep the sessions on disk in <dir> (created if
                     missing), so that they survive a restart; one server
                     per directory
  -sync <when>       with -store: 'interval:<ms>' writes changes at once
                     and syncs them to disk at most <ms> after (default
                     interval:1000; 1 to 3600000); 'always' answers an ADD
                     only once it is synced
  -store redis://[user@]host:port[,host:port...]
                     keep the sessions in Redis instead, a single server
                     or a Redis Cluster (recognised by itself; the nodes
                     given are seeds): the server becomes a gateway that
                     holds nothing itself, and any number of gateways
                     share the sessions. -sessions, -maxbytes and -sync do
                     not apply
                     rediss://... reaches Redis over TLS (see -store-tls-*);
                     redis:// to another host carries the sessions in the
                     clear, and is warned of
  -store-auth <file> with redis:// or rediss://: the password, the first
                     line of <file>
  -store-prefix <s>  with redis(s)://: put <s> before each session id to
                     make its key, so that farms can share Redis (default dc:)
  -store-timeout <ms> with redis(s)://: answer each request within <ms>
                     milliseconds, as a failure if Redis has not answered
                     (default 2000; 10 to 600000)
  -store-remove-sync <on|off>
                     with redis(s)://: 'on' (the default) answers a REMOVE
                     only once a replica has it (WAIT 1), and as a failure
                     otherwise, so that a failover cannot bring a removed
                     session back; 'off' answers once the master has it
  -store-tls-ca <file> with rediss://: the CA certificates (PEM) that the
                     Redis nodes' certificates must chain to; each node's
                     certificate must name the host or IP address it is
                     reached by (default: the system's trusted CAs)
  -store-tls-cert <file>, -store-tls-key <file>
                     with rediss://: the certificate (PEM) the gateway
                     presents to Redis, and its unencrypted key (PEM:
                     PKCS#8, PKCS#1 or SEC1); Redis asks for one unless it
                     runs with tls-auth-clients no
";

const USAGE_TAIL: &str = "  -h, -help, -?      show this text

Options may be written with one dash or two (-listen, --listen).
Addresses: UNIX:/path/to/socket, IP:port (all IPv4 interfaces),
IP:host:port, IPv6:port (all IPv6 interfaces), IPv6:[addr]:port,
TLS:host:port, TLS:[addr]:port, TLS:port (TLS with mutual authentication;
needs -tls-cert, -tls-key and -tls-ca). SIGHUP reloads the TLS files.

In the foreground a line 'Info, total operations = ...' goes to standard
error at most once a second while there is activity; with -daemon such
lines go to syslog, and only if -progress is given.

SIGTERM and SIGINT (and SIGUSR1 and SIGUSR2 with -killable) stop the
server cleanly: it stops accepting, answers what it has received, removes
its socket files and pid file, logs a last line 'Info, stopped:
operations N, connections N, sessions N, evicted N, expired N', and
exits 0. It exits 1 on a bad command
line or when it cannot start.

Eg. dc_server -listen UNIX:/run/distcache/dc_server.sock -sessions 100000
";

/// The usage text, with the daemon options.
pub(crate) fn usage() -> String {
    format!("{USAGE_HEAD}{}{USAGE_TAIL}", daemon::USAGE)
}

const DEFAULT_SESSIONS: u64 = 512;
const MAX_SESSIONS: u64 = 100_000_000;
const MAX_PROGRESS: u64 = 1_000_000;
const MAX_BYTES: u64 = 1 << 40;
const MAX_CONNS: u64 = 1_000_000;
const MAX_IDLE_MS: u64 = 3_600_000;
pub(crate) const DEFAULT_ADMIN_PERMS: u32 = 0o600;

/// What dc_server runs with.
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) max_bytes: Option<u64>,
    /// `-maxconns`; `None`: what the open-file limit allows.
    pub(crate) max_conns: Option<usize>,
    /// `-threads`; 0: one per CPU.
    pub(crate) threads: usize,
    pub(crate) idle: Option<Duration>,
    pub(crate) min_expiry: u32,
    pub(crate) progress: Option<u64>,
    pub(crate) store: Option<PathBuf>,
    pub(crate) sync: SyncMode,
    /// `-store redis://...`, with its other options.
    pub(crate) redis: Option<RedisOptions>,
    pub(crate) daemon: DaemonOptions,
    pub(crate) inspect: Inspect,
    /// The TLS listeners' credentials, and which listeners speak TLS.
    pub(crate) tls: Option<(ServerOptions, Vec<usize>)>,
}

/// A `-listen` address, and whether it speaks TLS.
fn listen_address(s: &str) -> Result<(Address, bool), String> {
    if is_tls(s) {
        let a = TlsAddress::parse(s).map_err(|e| e.to_string())?;
        Ok((a.address, true))
    } else {
        Ok((Address::parse(s).map_err(|e| e.to_string())?, false))
    }
}

/// Where the server can be looked into.
#[derive(Default)]
pub(crate) struct Inspect {
    /// `-admin`: the admin socket's path.
    pub(crate) admin: Option<PathBuf>,
    /// `-adminperms`: its mode.
    pub(crate) admin_perms: Option<u32>,
    /// `-metrics`: the metrics page's TCP address.
    pub(crate) metrics: Option<Address>,
}

fn admin_address(s: &str) -> Result<PathBuf, String> {
    match Address::parse(s).map_err(|e| e.to_string())? {
        Address::Unix(path) => Ok(path),
        Address::Tcp { .. } => Err("the admin socket is a UNIX socket (UNIX:/path)".into()),
    }
}

fn metrics_address(s: &str) -> Result<Address, String> {
    match Address::parse(s).map_err(|e| e.to_string())? {
        a @ Address::Tcp { .. } => Ok(a),
        Address::Unix(_) => Err("the metrics page is served over TCP (IP:port)".into()),
    }
}

/// What the command line asks for.
pub(crate) type Command = Asked<Box<Config>>;

/// Reads dc_server's command line.
pub(crate) fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut listen = Vec::new();
    let mut sessions = DEFAULT_SESSIONS;
    let mut min_expiry = 0;
    let mut max_bytes = 0;
    let mut max_conns = None;
    let mut threads = 0;
    let mut idle = 0;
    let mut progress = None;
    let mut store = None;
    let mut sync = None;
    let mut redis: Option<RedisOptions> = None;
    let mut sessions_given = false;
    let mut redis_args = RedisArgs::default();
    let mut daemon = DaemonOptions::default();
    let mut inspect = Inspect::default();
    let mut tls = TlsArgs::default();
    let mut tls_listeners = Vec::new();
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "listen" => {
                let (addr, is_tls) = args.parsed("listen", listen_address)?;
                if is_tls {
                    tls_listeners.push(listen.len());
                }
                listen.push(addr);
            }
            "sessions" => {
                sessions = args.parsed("sessions", number_in(1, MAX_SESSIONS))?;
                sessions_given = true;
            }
            "maxbytes" => max_bytes = args.parsed("maxbytes", bytes_in(0, MAX_BYTES))?,
            "maxconns" => max_conns = Some(args.parsed("maxconns", number_in(1, MAX_CONNS))?),
            "threads" => threads = args.parsed("threads", number_in(1, MAX_THREADS as u64))?,
            "idle" => idle = args.parsed("idle", number_in(0, MAX_IDLE_MS))?,
            "min-expiry" => {
                min_expiry = args.parsed("min-expiry", number_in(0, MAX_EXPIRY_MS.into()))?
            }
            "progress" => progress = Some(args.parsed("progress", number_in(0, MAX_PROGRESS))?),
            "admin" => inspect.admin = Some(args.parsed("admin", admin_address)?),
            "adminperms" => inspect.admin_perms = Some(args.parsed("adminperms", parse_mode)?),
            "metrics" => inspect.metrics = Some(args.parsed("metrics", metrics_address)?),
            "store" => match args.parsed("store", store_place)? {
                Place::Dir(dir) => store = Some(dir),
                Place::Redis(options) => redis = Some(*options),
            },
            "sync" => sync = Some(args.parsed("sync", SyncMode::parse)?),
            name => {
                if !tls.take(name, &mut args)?
                    && !redis_args.take(name, &mut args)?
                    && !daemon.take(name, &mut args)?
                {
                    return Err(args.unknown());
                }
            }
        }
    }
    if listen.is_empty() {
        return Err(CliError::Missing("no -listen address given"));
    }
    if inspect.admin_perms.is_some() && inspect.admin.is_none() {
        return Err(CliError::Missing("-adminperms needs -admin"));
    }
    if let Some(options) = &mut redis {
        if store.is_some() {
            return Err(CliError::Missing(
                "-store is given twice: a directory and Redis",
            ));
        }
        if sessions_given || max_bytes > 0 {
            return Err(CliError::Missing(
                "-sessions and -maxbytes do not apply to a Redis store: Redis holds the \
                 sessions, within its own maxmemory",
            ));
        }
        if sync.is_some() {
            return Err(CliError::Missing(
                "-sync does not apply to a Redis store: Redis keeps its own persistence",
            ));
        }
        options.log = Logger::new(|line| log(Level::Warning, line));
    }
    redis_args.apply(redis.as_mut())?;
    if sync.is_some() && store.is_none() {
        return Err(CliError::Missing("-sync needs -store"));
    }
    let tls = tls.options(tls_listeners)?;
    // number_in bounds these to what the types hold.
    let sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
    let min_expiry = u32::try_from(min_expiry).unwrap_or(MAX_EXPIRY_MS);
    Ok(Command::Run(Box::new(Config {
        server: ServerConfig { listen, sessions },
        max_bytes: (max_bytes > 0).then_some(max_bytes),
        max_conns: max_conns.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        threads: usize::try_from(threads).unwrap_or(MAX_THREADS),
        idle: (idle > 0).then(|| Duration::from_millis(idle)),
        min_expiry,
        progress,
        store,
        sync: sync.unwrap_or_default(),
        redis,
        daemon,
        inspect,
        tls,
    })))
}

/// Where `-store` keeps the sessions.
enum Place {
    Dir(PathBuf),
    Redis(Box<RedisOptions>),
}

fn store_place(s: &str) -> Result<Place, String> {
    if redis::is_redis(s) {
        return RedisOptions::parse(s)
            .map(|o| Place::Redis(Box::new(o)))
            .map_err(|e| e.to_string());
    }
    non_empty_path(s).map(Place::Dir).map_err(String::from)
}
