//! dc_snoop: a transparent proxy that prints every distcache message passing
//! through it. The `dc_snoop` binary is a shell over this module.

pub mod describe;
mod proxy;

pub use proxy::run;

use distcache::internals::cli::{is_help, Args, Asked, CliError};
use distcache::Address;

/// The usage text (`-h`).
pub const USAGE: &str = "\
Usage: dc_snoop -listen <addr> -server <addr> [options]
Accepts connections on one address and forwards each, byte for byte, to
another, printing one line per message on standard output.
  -listen <addr>     accept connections here (required)
  -server <addr>     forward them to this address (required)
  -connect <addr>    the same as -server
  -hex               also print each message's bytes as a hex dump
  -h, -help, -?      show this text

Options may be written with one dash or two. Each line holds the time (UTC),
the connection number (#N), the direction (C> client to server, S> server to
client), the request uid, the operation and what the message says (the id in
hex, lengths, the status). Bytes that are not valid distcache traffic are
reported once and forwarded unchanged; that direction is then no longer
decoded. When either side closes, both connections are closed.

Eg. dc_snoop -listen UNIX:/tmp/snoop.sock -server UNIX:/run/distcache/dc_server.sock
";

/// dc_snoop's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to accept connections.
    pub listen: Address,
    /// Where to forward them.
    pub server: Address,
    /// Print hex dumps of the messages too.
    pub hex: bool,
}

/// What the command line asks for: the usage text, or running the proxy.
pub type Command = Asked<Options>;

/// Parses dc_snoop's arguments (without the program name).
pub fn parse(mut args: Args) -> Result<Command, CliError> {
    let (mut listen, mut server, mut hex) = (None, None, false);
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "listen" => listen = Some(args.parsed("listen", Address::parse)?),
            "server" => server = Some(args.parsed("server", Address::parse)?),
            "connect" => server = Some(args.parsed("connect", Address::parse)?),
            "hex" => hex = true,
            _ => return Err(args.unknown()),
        }
    }
    let listen = listen.ok_or(CliError::Missing("no -listen address given"))?;
    let server = server.ok_or(CliError::Missing("no -server address given"))?;
    if !server.can_connect() {
        return Err(CliError::BadValue {
            option: "server",
            value: server.to_string(),
            why: "names no host to connect to".into(),
        });
    }
    Ok(Command::Run(Options {
        listen,
        server,
        hex,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let got = parse(Args::new([
            "-listen",
            "UNIX:/tmp/a",
            "--connect",
            "IP:127.0.0.1:9",
            "-hex",
        ]))
        .unwrap();
        assert_eq!(
            got,
            Command::Run(Options {
                listen: Address::parse("UNIX:/tmp/a").unwrap(),
                server: Address::parse("IP:127.0.0.1:9").unwrap(),
                hex: true,
            })
        );
        for h in ["-h", "-help", "-?"] {
            assert_eq!(parse(Args::new([h])).unwrap(), Command::Help);
        }
    }

    #[test]
    fn refusals() {
        let p = |a: &[&str]| parse(Args::new(a));
        assert!(matches!(
            p(&["-listen", "UNIX:/a"]),
            Err(CliError::Missing(_))
        ));
        assert!(matches!(
            p(&["-server", "UNIX:/a"]),
            Err(CliError::Missing(_))
        ));
        assert!(matches!(
            p(&["-listen"]),
            Err(CliError::MissingValue("listen"))
        ));
        assert!(matches!(p(&["-x"]), Err(CliError::Unknown(_))));
        assert!(matches!(
            p(&["-listen", "nowhere", "-server", "UNIX:/a"]),
            Err(CliError::BadValue {
                option: "listen",
                ..
            })
        ));
        assert!(matches!(
            p(&["-listen", "UNIX:/a", "-server", "IP:9001"]),
            Err(CliError::BadValue {
                option: "server",
                ..
            })
        ));
    }
}
