//! dc_client: the local proxy to a distcache server.

use distcache::internals::cli::{
    is_help, number_in, options_or_exit, Args, Asked, CliError, TlsFiles,
};
use distcache::internals::daemon::{self, log, Daemon, DaemonOptions, Level};
use distcache::internals::tls::is_tls;
use distcache::Address;
use distcache::{ClientTls, Credentials, TlsAddress};
use distcache::{Proxy, ProxyConfig, ProxyNotice as Notice};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE_HEAD: &str = "\
Usage: dc_client -server <addr> [options]
  -server <addr>     forward requests to the dc_server at <addr> (required)
  -connect <addr>    the same as -server
  -listen <addr>     accept local clients on <addr> (default UNIX:/tmp/scache)
  -retry <msecs>     while the server is unreachable, try to reconnect every
                     <msecs> milliseconds (default 5000, 1 to 3600000)
  -idle <msecs>      close client connections idle for <msecs> milliseconds
                     (default 0: never; at most 3600000)
  -tls-ca <file>     with a TLS: server, the CA its certificate must chain to
                     (PEM; required)
  -tls-cert <file>   the certificate to present to the server (PEM)
  -tls-key <file>    its private key (PEM)
  -timeout <msecs>   give up on a server that makes no progress on the
                     requests it holds for <msecs> milliseconds, and mark it
                     down (default 500, 1 to 3600000)
";

const USAGE_TAIL: &str = "\
  -h, -help, -?      show this text

Options may be written with one dash or two (-server, --server).
Addresses: UNIX:/path/to/socket, IP:host:port, IPv6:[addr]:port; to listen,
also IP:port (all IPv4 interfaces) and IPv6:port (all IPv6 interfaces).
A server at TLS:host:port or TLS:[addr]:port is reached over TLS: its
certificate must chain to -tls-ca and name the host or address given.

It keeps one connection to the server and carries every local client's
requests over it. While the server is unreachable, requests fail at once.
A server that stalls is marked down: requests fail at once for a back-off
period (DISTCACHE_DOWN_MS=MIN[:MAX], default 1000:30000; 0 turns it off),
then one request probes it; each failed probe doubles the period.

Eg. dc_client -listen UNIX:/tmp/scache -server IP:cache.example.net:9001
    dc_client -listen UNIX:/run/distcache/dc_client.sock \
        -server TLS:cache.example.net:9001 -tls-ca /etc/distcache/ca.pem \
        -tls-cert /etc/distcache/web1.pem -tls-key /etc/distcache/web1.key
";

const DEFAULT_LISTEN: &str = "UNIX:/tmp/scache";
const MAX_PERIOD_MS: u64 = 3_600_000;

type Command = Asked<Box<(ProxyConfig, DaemonOptions)>>;

fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut listen = None;
    let mut server: Option<(Address, Option<TlsAddress>)> = None;
    let mut files = TlsFiles::default();
    let mut retry = 5000;
    let mut idle = 0;
    let mut timeout = distcache::internals::proxy::DEFAULT_SERVER_TIMEOUT.as_millis() as u64;
    let mut daemon = DaemonOptions::default();
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "listen" => listen = Some(args.parsed("listen", Address::parse)?),
            "server" | "connect" => {
                let name = if opt == "server" { "server" } else { "connect" };
                let addr = args.parsed(name, server_address)?;
                if let Some((first, _)) = &server {
                    return Err(CliError::BadValue {
                        option: name,
                        value: addr.0.to_string(),
                        why: format!("a server was already given ({first}); give only one"),
                    });
                }
                server = Some(addr);
            }
            "retry" => retry = args.parsed("retry", number_in(1, MAX_PERIOD_MS))?,
            "idle" => idle = args.parsed("idle", number_in(0, MAX_PERIOD_MS))?,
            "timeout" => timeout = args.parsed("timeout", number_in(1, MAX_PERIOD_MS))?,
            other => {
                if !files.take(other, &mut args)? && !daemon.take(other, &mut args)? {
                    return Err(args.unknown());
                }
            }
        }
    }
    let (server, tls_server) = server.ok_or(CliError::Missing("no -server address given"))?;
    let tls = match tls_server {
        Some(to) => {
            let creds = Credentials {
                ca: files.ca,
                cert: files.cert,
                key: files.key,
            };
            let tls = ClientTls::new(&to, &creds).map_err(|e| CliError::BadValue {
                option: "server",
                value: to.to_string(),
                why: e.to_string(),
            })?;
            Some(Arc::new(tls))
        }
        None if files.given() => {
            return Err(CliError::Missing("-tls-* options need a TLS: server"));
        }
        None => None,
    };
    let listen = match listen {
        Some(l) => l,
        None => Address::parse(DEFAULT_LISTEN).map_err(|e| CliError::BadValue {
            option: "listen",
            value: DEFAULT_LISTEN.into(),
            why: e.to_string(),
        })?,
    };
    let mut config = ProxyConfig::new(listen, server);
    config.tls = tls;
    config.retry = Duration::from_millis(retry);
    config.idle = (idle > 0).then(|| Duration::from_millis(idle));
    config.server_timeout = Duration::from_millis(timeout);
    Ok(Command::Run(Box::new((config, daemon))))
}

/// A `-server` address, and its TLS form if it is one.
fn server_address(s: &str) -> Result<(Address, Option<TlsAddress>), String> {
    if is_tls(s) {
        let a = TlsAddress::parse(s).map_err(|e| e.to_string())?;
        Ok((a.address.clone(), Some(a)))
    } else {
        Ok((Address::parse(s).map_err(|e| e.to_string())?, None))
    }
}

fn main() -> ExitCode {
    let usage = format!("{USAGE_HEAD}{}{USAGE_TAIL}", daemon::USAGE);
    let (config, options) = match options_or_exit("dc_client", usage, parse(Args::from_env())) {
        Ok(run) => *run,
        Err(code) => return code,
    };
    // Before any thread exists: signals, and with -daemon the fork (the
    // parent waits until the service is ready, or exits with its status).
    let mut daemon = match Daemon::start(c"dc_client", options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dc_client: {e}");
            return ExitCode::from(1);
        }
    };
    match serve(&mut daemon, config) {
        Ok(()) => {
            daemon.finish();
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(Level::Error, &e);
            ExitCode::from(1)
        }
    }
}

fn serve(daemon: &mut Daemon, config: ProxyConfig) -> Result<(), String> {
    // One descriptor per client connection: allow as many as the system
    // lets this process have. Failing to raise it only lowers the ceiling.
    let _ = distcache::internals::nal::raise_fd_limit();
    let mut proxy = Proxy::bind(config).map_err(|e| e.to_string())?;
    let sockets: Vec<&std::path::Path> = proxy.socket_path().into_iter().collect();
    daemon.secure(&sockets).map_err(|e| e.to_string())?;
    proxy.on_notice(|n| {
        let level = match n {
            Notice::ServerUp(_) => Level::Notice,
            Notice::AcceptFailed(_) => Level::Error,
            _ => Level::Warning,
        };
        log(level, &n.to_string());
    });
    let stop = proxy.stop_handle();
    daemon
        .ready(move || stop.stop())
        .map_err(|e| e.to_string())?;
    proxy.run().map_err(|e| e.to_string())
}
