//! dc_server: the distcache session cache server.

use distcache::cache::durable::{DurableOptions, DurableStore, Logger, SyncMode};
use distcache::cache::{MemoryStore, Store};
use distcache::cli::{is_help, number_in, Args, CliError};
use distcache::daemon::{self, log, Daemon, DaemonOptions, Level};
use distcache::proto::MAX_EXPIRY_MS;
use distcache::server::{Server, ServerConfig};
use distcache::Address;
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
  -min-expiry <ms>   keep every session added for at least <ms>
                     milliseconds (default 0: as long as the client asks;
                     at most 604800000)
  -progress <num>    also log a progress line whenever <num> more
                     operations are done (0 to 1000000)
  -store <dir>       also keep the sessions on disk in <dir> (created if
                     missing), so that they survive a restart; one server
                     per directory
  -sync <when>       with -store: 'interval:<ms>' writes changes at once
                     and syncs them to disk at most <ms> after (default
                     interval:1000; 1 to 3600000); 'always' answers an ADD
                     only once it is synced
";

const USAGE_TAIL: &str = "  -h, -help, -?      show this text

Options may be written with one dash or two (-listen, --listen).
Addresses: UNIX:/path/to/socket, IP:port (all IPv4 interfaces),
IP:host:port, IPv6:port (all IPv6 interfaces), IPv6:[addr]:port.

In the foreground a line 'Info, total operations = ...' goes to standard
error at most once a second while there is activity; with -daemon such
lines go to syslog, and only if -progress is given.

SIGTERM and SIGINT (and SIGUSR1 and SIGUSR2 with -killable) stop the
server cleanly: it stops accepting, answers what it has received, removes
its socket files and pid file, and exits 0. It exits 1 on a bad command
line or when it cannot start.

Eg. dc_server -listen UNIX:/run/distcache/dc_server.sock -sessions 100000
";

const DEFAULT_SESSIONS: u64 = 512;
const MAX_SESSIONS: u64 = 100_000_000;
const MAX_PROGRESS: u64 = 1_000_000;

struct Config {
    server: ServerConfig,
    min_expiry: u32,
    progress: Option<u64>,
    store: Option<PathBuf>,
    sync: SyncMode,
    daemon: DaemonOptions,
}

enum Command {
    Help,
    Serve(Box<Config>),
}

fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut listen = Vec::new();
    let mut sessions = DEFAULT_SESSIONS;
    let mut min_expiry = 0;
    let mut progress = None;
    let mut store = None;
    let mut sync = None;
    let mut daemon = DaemonOptions::default();
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "listen" => listen.push(args.parsed("listen", Address::parse)?),
            "sessions" => sessions = args.parsed("sessions", number_in(1, MAX_SESSIONS))?,
            "min-expiry" => {
                min_expiry = args.parsed("min-expiry", number_in(0, MAX_EXPIRY_MS.into()))?
            }
            "progress" => progress = Some(args.parsed("progress", number_in(0, MAX_PROGRESS))?),
            "store" => store = Some(args.parsed("store", non_empty_path)?),
            "sync" => sync = Some(args.parsed("sync", SyncMode::parse)?),
            name => {
                if !daemon.take(name, &mut args)? {
                    return Err(args.unknown());
                }
            }
        }
    }
    if listen.is_empty() {
        return Err(CliError::Missing("no -listen address given"));
    }
    if sync.is_some() && store.is_none() {
        return Err(CliError::Missing("-sync needs -store"));
    }
    // number_in bounds these to what the types hold.
    let sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
    let min_expiry = u32::try_from(min_expiry).unwrap_or(MAX_EXPIRY_MS);
    Ok(Command::Serve(Box::new(Config {
        server: ServerConfig { listen, sessions },
        min_expiry,
        progress,
        store,
        sync: sync.unwrap_or_default(),
        daemon,
    })))
}

fn non_empty_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(PathBuf::from(s))
    }
}

fn main() -> ExitCode {
    let config = match parse(Args::from_env()) {
        Ok(Command::Help) => {
            print!("{USAGE_HEAD}{}{USAGE_TAIL}", daemon::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(config)) => config,
        Err(e) => {
            eprintln!("dc_server: {e}");
            return ExitCode::from(1);
        }
    };
    match serve(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(Level::Error, &e);
            ExitCode::from(1)
        }
    }
}

/// The addresses listened on, TCP ports as bound (port 0 gets one).
fn describe_listeners(server: &Server) -> String {
    let names: Vec<String> = server
        .listeners()
        .map(|l| match (l.socket_path(), l.tcp_addr()) {
            (Some(path), _) => Address::Unix(path.into()).to_string(),
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
    use distcache::cache::durable::{LOCK_FILE, LOG_FILE};
    let u = daemon::lookup_user(user).map_err(|e| e.to_string())?;
    for path in [dir.to_path_buf(), dir.join(LOCK_FILE), dir.join(LOG_FILE)] {
        std::os::unix::fs::chown(&path, Some(u.uid), Some(u.gid))
            .map_err(|e| format!("can't give '{}' to '{user}': {e}", path.display()))?;
    }
    Ok(())
}

/// Runs the server until a stop signal; `Err` is the message to log.
fn serve(config: Config) -> Result<(), String> {
    let in_foreground = !config.daemon.daemon;
    let user = config.daemon.user.clone();
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
    let _ = distcache::nal::raise_fd_limit();
    let store: Arc<dyn Store> = match &durable {
        Some(d) => d.clone(),
        None => Arc::new(MemoryStore::new(config.server.sessions)),
    };
    let server =
        Server::bind_with_store(&config.server.listen, store).map_err(|e| e.to_string())?;
    server.set_min_expiry(config.min_expiry);
    daemon
        .secure(&server.socket_paths())
        .map_err(|e| e.to_string())?;
    if in_foreground || config.progress.is_some() {
        let every = config.progress.unwrap_or(0);
        server
            .spawn_progress(every, |line| log(Level::Info, line))
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
        &format!("serving on {}", describe_listeners(&server)),
    );
    server.run().map_err(|e| e.to_string())?;
    for (path, e) in server.remove_socket_files() {
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
    Ok(())
}
