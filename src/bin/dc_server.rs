//! dc_server: the distcache session cache server.

use distcache::cli::{is_help, number_in, Args, CliError};
use distcache::server::{Server, ServerConfig};
use distcache::Address;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: dc_server [options]
  -listen <addr>     listen on <addr>; give it more than once for several
                     addresses (required)
  -sessions <num>    hold at most <num> sessions (default 512,
                     1 to 100000000)
  -h, -help, -?      show this text

Options may be written with one dash or two (-listen, --listen).
Addresses: UNIX:/path/to/socket, IP:port (all IPv4 interfaces),
IP:host:port, IPv6:port (all IPv6 interfaces), IPv6:[addr]:port.

Eg. dc_server -listen UNIX:/run/distcache/dc_server.sock -sessions 100000
";

const DEFAULT_SESSIONS: u64 = 512;
const MAX_SESSIONS: u64 = 100_000_000;

enum Command {
    Help,
    Serve(ServerConfig),
}

fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut listen = Vec::new();
    let mut sessions = DEFAULT_SESSIONS;
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "listen" => listen.push(args.parsed("listen", Address::parse)?),
            "sessions" => sessions = args.parsed("sessions", number_in(1, MAX_SESSIONS))?,
            _ => return Err(args.unknown()),
        }
    }
    if listen.is_empty() {
        return Err(CliError::Missing("no -listen address given"));
    }
    // number_in bounds it to MAX_SESSIONS, which fits in usize.
    let sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
    Ok(Command::Serve(ServerConfig { listen, sessions }))
}

fn main() -> ExitCode {
    let config = match parse(Args::from_env()) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(config)) => config,
        Err(e) => {
            eprintln!("dc_server: {e}");
            return ExitCode::from(1);
        }
    };
    // One descriptor per client connection: allow as many as the system
    // lets this process have. Failing to raise it only lowers the ceiling.
    let _ = distcache::nal::raise_fd_limit();
    let server = match Server::bind(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dc_server: {e}");
            return ExitCode::from(1);
        }
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dc_server: {e}");
            ExitCode::from(1)
        }
    }
}
