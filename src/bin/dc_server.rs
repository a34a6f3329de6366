//! dc_server: the distcache session cache server.

use distcache::cli::{is_help, number_in, Args, CliError};
use distcache::daemon::{self, log, Daemon, DaemonOptions, Level};
use distcache::proto::MAX_EXPIRY_MS;
use distcache::server::{Server, ServerConfig};
use distcache::Address;
use std::process::ExitCode;

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
its socket files and pid file, logs a last line 'Info, stopped:
operations N, connections N, sessions N, evicted N, expired N', and
exits 0. It exits 1 on a bad command
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
    daemon: DaemonOptions,
}

enum Command {
    Help,
    Serve(Config),
}

fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut listen = Vec::new();
    let mut sessions = DEFAULT_SESSIONS;
    let mut min_expiry = 0;
    let mut progress = None;
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
    // number_in bounds these to what the types hold.
    let sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
    let min_expiry = u32::try_from(min_expiry).unwrap_or(MAX_EXPIRY_MS);
    Ok(Command::Serve(Config {
        server: ServerConfig { listen, sessions },
        min_expiry,
        progress,
        daemon,
    }))
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
    match serve(config) {
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

/// Runs the server until a stop signal; `Err` is the message to log.
fn serve(config: Config) -> Result<(), String> {
    let in_foreground = !config.daemon.daemon;
    // With -daemon the parent waits in here until the child is ready.
    let mut daemon = Daemon::start(c"dc_server", config.daemon).map_err(|e| e.to_string())?;
    // One descriptor per client connection: allow as many as the system
    // lets this process have. Failing to raise it only lowers the ceiling.
    let _ = distcache::nal::raise_fd_limit();
    let server = Server::bind(&config.server).map_err(|e| e.to_string())?;
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
    daemon.finish();
    log(Level::Notice, "stopped");
    log(Level::Info, &final_counts(&server));
    Ok(())
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
