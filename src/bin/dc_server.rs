//! dc_server: the distcache session cache server.

use distcache::internals::cache::redis;
use distcache::internals::cache::Logger;
use distcache::internals::cli::{
    bytes_in, is_help, number_in, options_or_exit, Args, Asked, CliError,
};
use distcache::internals::daemon::{self, log, Daemon, DaemonOptions, Level};
use distcache::internals::nal::{parse_mode, Listener};
use distcache::internals::proto::MAX_EXPIRY_MS;
use distcache::internals::server::{default_max_conns, MAX_THREADS, RESERVED_FDS};
use distcache::internals::tls::{is_tls, ReloadSignal};
use distcache::Address;
use distcache::{DurableOptions, DurableStore, SyncMode};
use distcache::{MemoryStore, RedisOptions, RedisStore, Store};
use distcache::{Server, ServerConfig};
use distcache::{ServerOptions, ServerTls, TlsAddress};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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
  -store-auth <file> with redis://: the password, the first line of <file>
  -store-prefix <s>  with redis://: put <s> before each session id to make
                     its key, so that farms can share Redis (default dc:)
  -store-timeout <ms> with redis://: answer each request within <ms>
                     milliseconds, as a failure if Redis has not answered
                     (default 2000; 10 to 600000)
  -store-remove-sync <on|off>
                     with redis://: 'on' (the default) answers a REMOVE
                     only once a replica has it (WAIT 1), and as a failure
                     otherwise, so that a failover cannot bring a removed
                     session back; 'off' answers once the master has it
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

const DEFAULT_SESSIONS: u64 = 512;
const MAX_SESSIONS: u64 = 100_000_000;
const MAX_PROGRESS: u64 = 1_000_000;
const MAX_BYTES: u64 = 1 << 40;
const MAX_CONNS: u64 = 1_000_000;
const MAX_IDLE_MS: u64 = 3_600_000;
const DEFAULT_ADMIN_PERMS: u32 = 0o600;
const MIN_STORE_TIMEOUT_MS: u64 = 10;
const MAX_STORE_TIMEOUT_MS: u64 = 600_000;

struct Config {
    server: ServerConfig,
    max_bytes: Option<u64>,
    /// `-maxconns`; `None`: what the open-file limit allows.
    max_conns: Option<usize>,
    /// `-threads`; 0: one per CPU.
    threads: usize,
    idle: Option<Duration>,
    min_expiry: u32,
    progress: Option<u64>,
    store: Option<PathBuf>,
    sync: SyncMode,
    /// `-store redis://...`, with its other options.
    redis: Option<RedisOptions>,
    daemon: DaemonOptions,
    inspect: Inspect,
    /// The TLS listeners' credentials, and which listeners speak TLS.
    tls: Option<(ServerOptions, Vec<usize>)>,
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

/// The `-tls-*` options.
#[derive(Default)]
struct TlsArgs {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    no_client_cert: bool,
    tls12: bool,
}

impl TlsArgs {
    /// Takes option `name` if it is one of these.
    fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, CliError> {
        match name {
            "tls-cert" => self.cert = Some(args.parsed("tls-cert", non_empty_path)?),
            "tls-key" => self.key = Some(args.parsed("tls-key", non_empty_path)?),
            "tls-ca" => self.ca = Some(args.parsed("tls-ca", non_empty_path)?),
            "tls-no-client-cert" => self.no_client_cert = true,
            "tls12" => self.tls12 = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn given(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some() || self.no_client_cert
    }

    /// The TLS listeners' options, checked against the listeners.
    fn options(
        self,
        tls_listeners: Vec<usize>,
    ) -> Result<Option<(ServerOptions, Vec<usize>)>, CliError> {
        if tls_listeners.is_empty() {
            if self.given() || self.tls12 {
                return Err(CliError::Missing("-tls-* options need a TLS: listener"));
            }
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (self.cert, self.key) else {
            return Err(CliError::Missing(
                "a TLS: listener needs -tls-cert and -tls-key",
            ));
        };
        if self.ca.is_none() && !self.no_client_cert {
            return Err(CliError::Missing(
                "a TLS: listener needs -tls-ca (or -tls-no-client-cert)",
            ));
        }
        let options = ServerOptions {
            cert,
            key,
            ca: self.ca,
            require_client_cert: !self.no_client_cert,
            allow_tls12: self.tls12,
        };
        Ok(Some((options, tls_listeners)))
    }
}

/// Where the server can be looked into.
#[derive(Default)]
struct Inspect {
    /// `-admin`: the admin socket's path.
    admin: Option<PathBuf>,
    /// `-adminperms`: its mode.
    admin_perms: Option<u32>,
    /// `-metrics`: the metrics page's TCP address.
    metrics: Option<Address>,
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

type Command = Asked<Box<Config>>;

fn parse(mut args: Args) -> Result<Command, CliError> {
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
    let mut store_auth = None;
    let mut store_prefix = None;
    let mut store_timeout = None;
    let mut store_remove_sync = None;
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
            "store-auth" => store_auth = Some(args.parsed("store-auth", read_password)?),
            "store-prefix" => store_prefix = Some(args.parsed("store-prefix", non_empty)?),
            "store-timeout" => {
                store_timeout = Some(args.parsed(
                    "store-timeout",
                    number_in(MIN_STORE_TIMEOUT_MS, MAX_STORE_TIMEOUT_MS),
                )?)
            }
            "store-remove-sync" => {
                store_remove_sync = Some(args.parsed("store-remove-sync", on_off)?)
            }
            "sync" => sync = Some(args.parsed("sync", SyncMode::parse)?),
            name => {
                if !tls.take(name, &mut args)? && !daemon.take(name, &mut args)? {
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
        options.password = store_auth;
        if let Some(prefix) = store_prefix {
            options.prefix = prefix.into_bytes();
        }
        if let Some(ms) = store_timeout {
            options.timeout = Duration::from_millis(ms);
        }
        if let Some(on) = store_remove_sync {
            options.remove_sync = on;
        }
        options.log = Logger::new(|line| log(Level::Warning, line));
    } else if store_auth.is_some()
        || store_prefix.is_some()
        || store_timeout.is_some()
        || store_remove_sync.is_some()
    {
        return Err(CliError::Missing(
            "-store-auth, -store-prefix, -store-timeout and -store-remove-sync need -store redis://...",
        ));
    }
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
    if s.starts_with(redis::SCHEME) {
        return RedisOptions::parse(s)
            .map(|o| Place::Redis(Box::new(o)))
            .map_err(|e| e.to_string());
    }
    non_empty_path(s).map(Place::Dir).map_err(String::from)
}

fn read_password(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("can't read it: {e}"))?;
    redis::password_from(&text).map_err(|e| e.to_string())
}

fn non_empty(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(s.to_string())
    }
}

fn on_off(s: &str) -> Result<bool, &'static str> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("must be 'on' or 'off'"),
    }
}

fn non_empty_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(PathBuf::from(s))
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}{}{USAGE_TAIL}", daemon::USAGE);
    let config = match options_or_exit("dc_server", usage, parse(Args::from_env())) {
        Ok(config) => *config,
        Err(code) => return code,
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(Level::Error, &e);
            ExitCode::from(1)
        }
    }
}

/// The addresses listened on, TCP ports as bound (port 0 gets one).
fn describe_listeners(server: &Server, tls: &[usize]) -> String {
    let names: Vec<String> = server
        .listeners()
        .enumerate()
        .map(|(i, l)| match (l.socket_path(), l.tcp_addr()) {
            (Some(path), _) => Address::Unix(path.into()).to_string(),
            (None, Some(addr)) if tls.contains(&i) => {
                let host = addr.ip().to_string();
                let a = TlsAddress {
                    address: Address::Tcp {
                        addr,
                        connectable: true,
                    },
                    host: Some(host),
                };
                a.to_string()
            }
            (None, Some(addr)) => Address::Tcp {
                addr,
                connectable: true,
            }
            .to_string(),
            (None, None) => "?".into(),
        })
        .collect();
    names.join(", ")
}

/// Says so when the open-file limit cannot hold `max_conns` connections:
/// those beyond it are then refused for lack of descriptors.
fn warn_if_too_few_descriptors(limit: u64, max_conns: usize) {
    let wanted = (max_conns as u64).saturating_add(RESERVED_FDS);
    if limit < wanted {
        log(
            Level::Warning,
            &format!(
                "the open-file limit ({limit}) is below -maxconns ({max_conns}) + {RESERVED_FDS}: \
                 connections will be refused for lack of descriptors before -maxconns is reached"
            ),
        );
    }
}

/// How long a clean stop waits for the store's last writes.
const STORE_CLOSE_LIMIT: Duration = Duration::from_secs(30);

/// Opens the store in `dir` (taking its lock first) and logs what it held.
fn open_store(
    dir: &Path,
    config: &Config,
    user: Option<&str>,
) -> Result<Arc<DurableStore>, String> {
    let options = DurableOptions {
        sync: config.sync,
        log: Logger::new(|line| log(Level::Warning, &format!("store: {line}"))),
        max_bytes: config.max_bytes,
        ..DurableOptions::new(config.server.sessions)
    };
    let (store, report) = DurableStore::open(dir, options).map_err(|e| e.to_string())?;
    log(
        Level::Notice,
        &format!("store '{}' (sync {}): {report}", dir.display(), config.sync),
    );
    if let Some(user) = user {
        // The server writes its store after becoming the user.
        give_store_to(dir, user).map_err(|e| format!("-user: {e}"))?;
    }
    Ok(Arc::new(store))
}

/// Makes the store's directory and files belong to `user` (and its group).
fn give_store_to(dir: &Path, user: &str) -> Result<(), String> {
    use distcache::internals::cache::{LOCK_FILE, LOG_FILE};
    let u = daemon::lookup_user(user).map_err(|e| e.to_string())?;
    for path in [dir.to_path_buf(), dir.join(LOCK_FILE), dir.join(LOG_FILE)] {
        std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid))
            .map_err(|e| format!("can't give '{}' to '{user}': {e}", path.display()))?;
    }
    Ok(())
}

/// Connects to Redis (after -daemon's fork: the client's threads are the
/// child's) and says what it found.
fn connect_redis(options: &RedisOptions) -> Result<RedisStore, String> {
    let seeds: Vec<String> = options.seeds.iter().map(|s| s.to_string()).collect();
    let store = RedisStore::connect(options.clone()).map_err(|e| format!("-store: {e}"))?;
    log(
        Level::Notice,
        &format!(
            "store: Redis {} at {} (prefix '{}', timeout {} ms, remove-sync {})",
            match store.kind() {
                redis::Kind::Single => "server",
                redis::Kind::Cluster => "cluster",
            },
            seeds.join(","),
            String::from_utf8_lossy(&options.prefix),
            options.timeout.as_millis(),
            if options.remove_sync { "on" } else { "off" },
        ),
    );
    Ok(store)
}

/// Runs the server until a stop signal; `Err` is the message to log.
fn serve(config: Config) -> Result<(), String> {
    let in_foreground = !config.daemon.daemon;
    let user = config.daemon.user.clone();
    // SIGHUP reloads the TLS files; it is blocked before any thread starts.
    let reload = match &config.tls {
        Some(_) => Some(ReloadSignal::block().map_err(|e| format!("can't block SIGHUP: {e}"))?),
        None => None,
    };
    // With -daemon the parent waits in here until the child is ready.
    let mut daemon =
        Daemon::start(c"dc_server", config.daemon.clone()).map_err(|e| e.to_string())?;
    // The store's lock comes before anything else: a second server on the
    // same directory stops here.
    let durable = match &config.store {
        Some(dir) => Some(open_store(dir, &config, user.as_deref())?),
        None => None,
    };
    // One descriptor per client connection: allow as many as the system
    // lets this process have. Failing to raise it only lowers the ceiling.
    let nofile = distcache::internals::nal::raise_fd_limit()
        .unwrap_or_else(|_| distcache::internals::nal::fd_limit());
    let max_conns = match config.max_conns {
        Some(max) => {
            warn_if_too_few_descriptors(nofile, max);
            max
        }
        None => default_max_conns(nofile),
    };
    let store: Arc<dyn Store> = match (&durable, &config.redis) {
        (Some(d), _) => d.clone(),
        (None, Some(options)) => Arc::new(connect_redis(options)?),
        (None, None) => Arc::new(MemoryStore::with_max_bytes(
            config.server.sessions,
            config.max_bytes,
        )),
    };
    let server =
        Server::bind_with_store(&config.server.listen, store).map_err(|e| e.to_string())?;
    let tls = match &config.tls {
        Some((options, listeners)) => Some(serve_tls(&server, options, listeners)?),
        None => None,
    };
    server.set_min_expiry(config.min_expiry);
    server.set_max_conns(max_conns);
    server.set_threads(config.threads);
    server.set_idle_timeout(config.idle);
    server.on_notice(|n| {
        let level = if n.is_problem() {
            Level::Warning
        } else {
            Level::Notice
        };
        log(level, &n.to_string());
    });
    // Bound before -user takes the privileges away, as the listeners.
    let bind = |what: &str, addr: &Address| {
        Listener::bind(addr)
            .map(Arc::new)
            .map_err(|e| format!("can't listen on {what} '{addr}': {e}"))
    };
    let admin = match &config.inspect.admin {
        Some(path) => Some(bind("the admin socket", &Address::Unix(path.clone()))?),
        None => None,
    };
    let metrics = match &config.inspect.metrics {
        Some(addr) => Some(bind("the metrics address", addr)?),
        None => None,
    };
    if let Some(path) = admin.as_ref().and_then(|l| l.socket_path()) {
        let mode = config.inspect.admin_perms.unwrap_or(DEFAULT_ADMIN_PERMS);
        daemon
            .secure_socket(path, mode, "adminperms")
            .map_err(|e| e.to_string())?;
    }
    daemon
        .secure(&server.socket_paths())
        .map_err(|e| e.to_string())?;
    if in_foreground || config.progress.is_some() {
        let every = config.progress.unwrap_or(0);
        server
            .spawn_progress(every, |line| log(Level::Info, line))
            .map_err(|e| e.to_string())?;
    }
    if let Some(l) = &admin {
        server
            .spawn_admin(l.clone(), |line| log(Level::Warning, line))
            .map_err(|e| e.to_string())?;
    }
    if let Some(l) = &metrics {
        server.spawn_metrics(l.clone()).map_err(|e| e.to_string())?;
    }
    if let (Some(tls), Some(reload)) = (&tls, reload) {
        let tls = tls.clone();
        reload
            .spawn_waiter(move || match tls.reload() {
                Ok(()) => log(Level::Notice, "SIGHUP: TLS certificates and keys reloaded"),
                Err(e) => log(
                    Level::Error,
                    &format!("SIGHUP: TLS files not reloaded, the old ones stay in use: {e}"),
                ),
            })
            .map_err(|e| e.to_string())?;
    }
    let stop = server.stop_handle();
    daemon
        .ready(move |signal| {
            log(Level::Notice, &format!("{}: stopping", signal.name()));
            stop.stop();
        })
        .map_err(|e| e.to_string())?;
    log(
        Level::Notice,
        &format!(
            "serving on {} ({} threads, at most {} connections)",
            describe_listeners(&server, config.tls.as_ref().map_or(&[], |t| &t.1)),
            server.threads(),
            server.max_conns()
        ),
    );
    if let Some(path) = admin.as_ref().and_then(|l| l.socket_path()) {
        log(
            Level::Notice,
            &format!("admin socket at {}", Address::Unix(path.into())),
        );
    }
    if let Some(addr) = metrics.as_ref().and_then(|l| l.tcp_addr()) {
        log(Level::Notice, &format!("metrics at http://{addr}/metrics"));
    }
    server.run().map_err(|e| e.to_string())?;
    let mut failed = server.remove_socket_files();
    // The admin thread ends within a moment of the stop; its socket file
    // goes now, as the listeners' do.
    if let Some(l) = &admin {
        if let Err(e) = l.remove_socket_file() {
            failed.push((
                l.socket_path().unwrap_or(std::path::Path::new("")).into(),
                e,
            ));
        }
    }
    for (path, e) in failed {
        log(
            Level::Warning,
            &format!("can't remove socket file '{}': {e}", path.display()),
        );
    }
    if let Some(store) = &durable {
        if !store.close(STORE_CLOSE_LIMIT) {
            log(
                Level::Warning,
                "store: the last changes were not written within 30 s; they may be lost",
            );
        }
    }
    daemon.finish();
    log(Level::Notice, "stopped");
    log(Level::Info, &final_counts(&server));
    if let Some(tls) = &tls {
        let c = tls.counts();
        log(
            Level::Info,
            &format!(
                "Info, TLS handshakes: full {}, resumed {}, failed {}",
                c.full, c.resumed, c.failed
            ),
        );
    }
    Ok(())
}

/// Loads the TLS credentials and puts them on the TLS listeners.
fn serve_tls(
    server: &Server,
    options: &ServerOptions,
    listeners: &[usize],
) -> Result<Arc<ServerTls>, String> {
    let tls = Arc::new(ServerTls::new(options.clone()).map_err(|e| e.to_string())?);
    for &i in listeners {
        server.set_tls(i, tls.clone());
    }
    if !options.require_client_cert {
        log(
            Level::Warning,
            "-tls-no-client-cert: any client that reaches a TLS port can read, add and remove sessions",
        );
    }
    Ok(tls)
}

/// The line logged last on a clean stop: what the server did in its life
/// and what its store dropped on its own.
fn final_counts(server: &Server) -> String {
    let sessions = server.store().len(server.clock().now());
    let drops = server.store().drop_counts();
    format!(
        "Info, stopped: operations {}, connections {}, sessions {sessions}, evicted {}, expired {}",
        server.stats().operations(),
        server.stats().connections(),
        drops.evicted,
        drops.expired
    )
}
