use super::commands::Action;
use super::protocol::parse_id;
use distcache::internals::cli::number_in;
use distcache::Address;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// `dc_admin -h`.
pub const USAGE: &str = "\
Usage: dc_admin -connect UNIX:<path> | -store <dir> [options] <command> [<argument>]
  -connect <addr>    the admin socket of a running dc_server (the address
                     given to its -admin option; UNIX sockets only)
  -store <dir>       a stopped server's store directory (its -store), read
                     and edited without a server
  -timeout <secs>    wait at most <secs> seconds for each answer (default 10,
                     1 to 3600)
  --json             ls: one JSON object per session and line; stats: one
                     JSON object
  -o <file>          get: write the data to <file>, not standard output
  -n <count>         top: print <count> lines, then exit (default: until
                     interrupted)
  -interval <msecs>  top: time between two lines (default 1000, 100 to
                     3600000)
  -h, -help, -?      show this text

Commands:
  ls                 list the stored sessions, soonest expiry first, one per
                     line: id (hex), data size (bytes), expires in and age
                     (seconds, with milliseconds)
  get <id>           the data of session <id> (in hex), as it is stored
  rm <id>            delete session <id>
  stats              the server's counters, one 'name value' per line:
                     sessions, bytes, operations by type and result, GET
                     hits and misses, evictions, expirations, connections,
                     uptime, latency totals
  top                a line every second of what the server did meanwhile:
                     sessions and their bytes, operations per second by
                     kind, GET hit ratio, connections open and new per
                     second, evictions and expirations per second (-connect
                     only)

Options may be written with one dash or two, before or after the command.
Only root and the user the server runs as may use its admin socket.

Exit status: 0 done, 1 no such session or a failure (a message says which),
2 a command line that cannot be used.

Eg. dc_admin -connect UNIX:/run/distcache/admin.sock ls --json
";

/// Where the commands go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A running server's admin socket.
    Socket(PathBuf),
    /// A stopped server's store directory.
    StoreDir(PathBuf),
}

/// A `dc_admin` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h`.
    Help,
    /// A command to carry out.
    Run {
        /// Where.
        target: Target,
        /// How long to wait for each answer.
        timeout: Duration,
        /// What.
        action: Action,
    },
}

/// A command line that cannot be used (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0} (try -h)")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

const DEFAULT_TIMEOUT: u64 = 10;
const MAX_TIMEOUT: u64 = 3600;
const DEFAULT_INTERVAL_MS: u64 = 1000;
const MIN_INTERVAL_MS: u64 = 100;
const MAX_INTERVAL_MS: u64 = 3_600_000;

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, UsageError> {
    let mut args = args.into_iter();
    let mut target = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut json = false;
    let mut output = None;
    let mut count = None;
    let mut interval = None;
    let mut words = Vec::new();
    while let Some(arg) = args.next() {
        let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            words.push(arg);
            continue;
        };
        let mut value = |option: &str| {
            args.next()
                .ok_or_else(|| usage(format!("option '-{option}' needs a value")))
        };
        match name {
            "h" | "help" | "?" => return Ok(Invocation::Help),
            "connect" | "store" if target.is_some() => {
                return Err(usage("give one -connect or -store"))
            }
            "connect" => {
                let v = value("connect")?;
                target = Some(match Address::parse(&v) {
                    Ok(Address::Unix(path)) => Target::Socket(path),
                    Ok(_) => {
                        return Err(usage(format!(
                            "-connect {v}: the admin socket is a UNIX socket (UNIX:/path)"
                        )))
                    }
                    Err(e) => return Err(usage(format!("-connect {v}: {e}"))),
                });
            }
            "store" => target = Some(Target::StoreDir(value("store")?.into())),
            "timeout" => {
                let v = value("timeout")?;
                timeout = number_in(1, MAX_TIMEOUT)(&v)
                    .map_err(|why| usage(format!("invalid value '{v}' for -timeout: {why}")))?;
            }
            "json" => json = true,
            "o" => output = Some(PathBuf::from(value("o")?)),
            "n" => {
                let v = value("n")?;
                count = Some(
                    number_in(1, u64::MAX)(&v)
                        .map_err(|why| usage(format!("invalid value '{v}' for -n: {why}")))?,
                );
            }
            "interval" => {
                let v = value("interval")?;
                interval = Some(
                    number_in(MIN_INTERVAL_MS, MAX_INTERVAL_MS)(&v).map_err(|why| {
                        usage(format!("invalid value '{v}' for -interval: {why}"))
                    })?,
                );
            }
            _ => return Err(usage(format!("unknown option '{arg}'"))),
        }
    }
    let mut words = words.into_iter();
    let Some(command) = words.next() else {
        return Err(usage("no command given (ls, get, rm, stats, top)"));
    };
    let mut id = |command: &str| -> Result<Vec<u8>, UsageError> {
        let hex = words
            .next()
            .ok_or_else(|| usage(format!("{command} needs a session id (in hex)")))?;
        parse_id(&hex).map_err(|why| usage(format!("bad session id '{hex}': {why}")))
    };
    let action = match command.as_str() {
        "ls" => Action::List { json },
        "stats" => Action::Stats { json },
        "get" => Action::Get {
            id: id("get")?,
            output: output.take(),
        },
        "rm" => Action::Remove { id: id("rm")? },
        "top" => Action::Top {
            interval: Duration::from_millis(interval.take().unwrap_or(DEFAULT_INTERVAL_MS)),
            count: count.take(),
        },
        other => {
            return Err(usage(format!(
                "unknown command '{other}' (ls, get, rm, stats, top)"
            )))
        }
    };
    if let Some(extra) = words.next() {
        return Err(usage(format!("unexpected argument '{extra}'")));
    }
    if json && !matches!(action, Action::List { .. } | Action::Stats { .. }) {
        return Err(usage("--json applies to ls and stats only"));
    }
    if output.is_some() {
        return Err(usage("-o applies to get only"));
    }
    if count.is_some() || interval.is_some() {
        return Err(usage("-n and -interval apply to top only"));
    }
    let Some(target) = target else {
        return Err(usage("no -connect address given"));
    };
    if matches!(action, Action::Top { .. }) && !matches!(target, Target::Socket(_)) {
        return Err(usage("top watches a running server: give -connect"));
    }
    Ok(Invocation::Run {
        target,
        timeout: Duration::from_secs(timeout),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn action(args: &[&str]) -> Action {
        match p(args) {
            Ok(Invocation::Run { action, .. }) => action,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn commands_and_their_options() {
        let c = ["-connect", "UNIX:/tmp/a.sock"];
        let with = |more: &[&'static str]| -> Vec<&'static str> { [&c[..], more].concat() };
        assert_eq!(action(&with(&["ls"])), Action::List { json: false });
        assert_eq!(
            action(&with(&["ls", "--json"])),
            Action::List { json: true }
        );
        assert_eq!(
            action(&["-json", "stats", "--connect", "UNIX:/x"]),
            Action::Stats { json: true }
        );
        assert_eq!(
            action(&with(&["get", "0aFF", "-o", "out.bin"])),
            Action::Get {
                id: vec![0x0a, 0xff],
                output: Some("out.bin".into())
            }
        );
        assert_eq!(action(&with(&["rm", "01"])), Action::Remove { id: vec![1] });
        assert_eq!(
            action(&with(&["top"])),
            Action::Top {
                interval: Duration::from_secs(1),
                count: None
            }
        );
        assert_eq!(
            action(&with(&["top", "-n", "3", "--interval", "250"])),
            Action::Top {
                interval: Duration::from_millis(250),
                count: Some(3)
            }
        );
        match p(&with(&["-timeout", "3", "ls"])).unwrap() {
            Invocation::Run {
                target, timeout, ..
            } => {
                assert_eq!(target, Target::Socket("/tmp/a.sock".into()));
                assert_eq!(timeout, Duration::from_secs(3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p(&["ls", "-h"]), Ok(Invocation::Help));
        assert!(matches!(
            p(&["-store", "/var/lib/x", "ls"]),
            Ok(Invocation::Run {
                target: Target::StoreDir(_),
                ..
            })
        ));
    }

    #[test]
    fn unusable_command_lines_say_why() {
        let c = ["-connect", "UNIX:/tmp/a.sock"];
        let with = |more: &[&'static str]| -> Vec<&'static str> { [&c[..], more].concat() };
        for (args, why) in [
            (with(&[]), "no command"),
            (vec!["ls"], "no -connect"),
            (with(&["frob"]), "unknown command"),
            (with(&["get"]), "needs a session id"),
            (with(&["get", "abc"]), "bad session id"),
            (with(&["get", "zz"]), "bad session id"),
            (with(&["rm", "01", "02"]), "unexpected argument"),
            (with(&["rm", "01", "--json"]), "--json applies"),
            (with(&["ls", "-o", "f"]), "-o applies"),
            (with(&["ls", "-timeout", "0"]), "-timeout"),
            (with(&["ls", "-bogus"]), "unknown option"),
            (with(&["ls", "-connect", "UNIX:/b"]), "one -connect"),
            (vec!["-connect", "IP:127.0.0.1:9", "ls"], "UNIX socket"),
            (vec!["-connect"], "needs a value"),
            (with(&["top", "-n", "0"]), "-n"),
            (with(&["top", "-interval", "99"]), "-interval"),
            (with(&["ls", "-n", "2"]), "apply to top only"),
            (vec!["-store", "/var/lib/x", "top"], "give -connect"),
        ] {
            let err = p(&args).expect_err(why).to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }
}
