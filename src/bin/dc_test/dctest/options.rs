//! dc_test's command line.

use distcache::internals::cli::{is_help, number_in, Args, Asked, CliError};
use distcache::Address;

/// The usage text (`-h`).
pub const USAGE: &str = "\
Usage: dc_test -connect <addr> [options]
Runs random ADD, GET, REMOVE and HAVE operations against a session cache
(dc_server, or a proxy in front of one), checks every answer, and reports
throughput and latency.
  -connect <addr>    the cache's address (required)
  -sessions <num>    test sessions per client (default 10, 1 to 512)
  -ops <num>         operations per client (default 10 * sessions^2;
                     at most 1000000 when given)
  -datamin <num>     shortest session data in bytes (default 50, at least 4)
  -datamax <num>     session data is shorter than this unless it equals
                     -datamin (default 2100, at most 4096)
  -timeout <secs>    sessions are added with this lifetime on average
                     (default 60, at most 3600)
  -timevar <secs>    ... give or take up to this (default 5, less than
                     -timeout)
  -persistent        keep one connection per client (otherwise one per
                     operation)
  -clients <num>     run <num> clients at once, each a thread with its own
                     sessions (default 1, at most 256)
  -progress <num>    report the operation count every <num> operations
  -seed <num>        seed the random choices, to repeat a run exactly
  -h, -help, -?      show this text

Options may be written with one dash or two. The cache must be able to hold
sessions * clients sessions, or evictions look like wrong answers. Progress
and the original's Info lines go to standard error; the results (operations
per second, latency percentiles, and what the client library's breaker did:
servers marked down and up, calls failed at once) go to standard output. The
exit status is 0 when every answer was right, 1 otherwise.

Eg. dc_test -connect UNIX:/run/distcache/dc_server.sock -persistent -clients 4
";

/// Most sessions per client (the original's limit).
pub const MAX_SESSIONS: u64 = 512;
/// Most operations per client that `-ops` accepts.
pub const MAX_OPS: u64 = 1_000_000;
/// Longest average lifetime, in seconds.
pub const MAX_TIMEOUT: u64 = 3600;
/// Shortest session data `-datamin` accepts.
pub const MIN_DATA: u64 = 4;
/// Longest session data `-datamax` accepts.
pub const MAX_DATA: u64 = 4096;
/// Most concurrent clients.
pub const MAX_CLIENTS: u64 = 256;
/// Largest `-progress` interval.
pub const MAX_PROGRESS: u64 = 1_000_000;

/// A run's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The cache's address, as given.
    pub connect: String,
    /// Sessions per client.
    pub sessions: usize,
    /// Operations per client.
    pub ops: u64,
    /// Shortest session data.
    pub datamin: usize,
    /// Session data is shorter than this (or exactly `datamin` when equal).
    pub datamax: usize,
    /// Average session lifetime in seconds.
    pub timeout: u32,
    /// Lifetime variation in seconds (less than `timeout`).
    pub timevar: u32,
    /// Report the count every this many operations (0: never).
    pub progress: u64,
    /// One connection per client rather than one per operation.
    pub persistent: bool,
    /// Concurrent clients.
    pub clients: usize,
    /// Seed of the random choices (`None`: a fresh one).
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect: String::new(),
            sessions: 10,
            ops: 1000,
            datamin: 50,
            datamax: 2100,
            timeout: 60,
            timevar: 5,
            progress: 0,
            persistent: false,
            clients: 1,
            seed: None,
        }
    }
}

/// What the command line asks for: the usage text, or running the test.
pub type Command = Asked<Options>;

fn bad(option: &'static str, value: impl ToString, why: impl Into<String>) -> CliError {
    CliError::BadValue {
        option,
        value: value.to_string(),
        why: why.into(),
    }
}

/// Parses dc_test's arguments (without the program name).
pub fn parse(mut args: Args) -> Result<Command, CliError> {
    let mut o = Options::default();
    let mut connect = None;
    let mut ops = None;
    // All bounds below fit in usize and u32.
    while let Some(opt) = args.next_option()? {
        match opt.as_str() {
            h if is_help(h) => return Ok(Command::Help),
            "connect" => connect = Some(args.value("connect")?),
            "sessions" => {
                o.sessions = args.parsed("sessions", number_in(1, MAX_SESSIONS))? as usize
            }
            "ops" => ops = Some(args.parsed("ops", number_in(0, MAX_OPS))?),
            "datamin" => {
                o.datamin = args.parsed("datamin", number_in(MIN_DATA, MAX_DATA))? as usize
            }
            "datamax" => {
                o.datamax = args.parsed("datamax", number_in(MIN_DATA, MAX_DATA))? as usize
            }
            "timeout" => o.timeout = args.parsed("timeout", number_in(1, MAX_TIMEOUT))? as u32,
            "timevar" => o.timevar = args.parsed("timevar", number_in(0, MAX_TIMEOUT))? as u32,
            "progress" => o.progress = args.parsed("progress", number_in(0, MAX_PROGRESS))?,
            "persistent" => o.persistent = true,
            "clients" => o.clients = args.parsed("clients", number_in(1, MAX_CLIENTS))? as usize,
            "seed" => o.seed = Some(args.parsed("seed", number_in(0, u64::MAX))?),
            _ => return Err(args.unknown()),
        }
    }
    let Some(connect) = connect else {
        return Err(CliError::Missing("no -connect address given"));
    };
    match Address::parse(&connect) {
        Ok(a) if a.can_connect() => {}
        Ok(_) => return Err(bad("connect", &connect, "names no host to connect to")),
        Err(e) => return Err(bad("connect", &connect, e.to_string())),
    }
    if o.timevar >= o.timeout {
        return Err(bad(
            "timevar",
            o.timevar,
            format!("must be smaller than -timeout ({})", o.timeout),
        ));
    }
    if o.datamax < o.datamin {
        return Err(bad(
            "datamax",
            o.datamax,
            format!("must not be smaller than -datamin ({})", o.datamin),
        ));
    }
    o.connect = connect;
    o.ops = ops.unwrap_or(10 * (o.sessions as u64).pow(2));
    Ok(Command::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, CliError> {
        match parse(Args::new(args))? {
            Command::Run(o) => Ok(o),
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_follow_the_original() {
        let o = run(&["-connect", "UNIX:/tmp/x"]).unwrap();
        assert_eq!(o.sessions, 10);
        assert_eq!(o.ops, 1000);
        assert_eq!((o.datamin, o.datamax), (50, 2100));
        assert_eq!((o.timeout, o.timevar), (60, 5));
        assert!(!o.persistent);
        assert_eq!(o.clients, 1);
        let o = run(&["--connect", "UNIX:/tmp/x", "-sessions", "512"]).unwrap();
        assert_eq!(o.ops, 10 * 512 * 512);
    }

    #[test]
    fn every_option() {
        let o = run(&[
            "-connect",
            "IP:127.0.0.1:9",
            "-sessions",
            "3",
            "-ops",
            "7",
            "-datamin",
            "4",
            "-datamax",
            "4",
            "-timeout",
            "2",
            "-timevar",
            "1",
            "-progress",
            "5",
            "-persistent",
            "-clients",
            "4",
            "-seed",
            "99",
        ])
        .unwrap();
        assert_eq!(
            o,
            Options {
                connect: "IP:127.0.0.1:9".into(),
                sessions: 3,
                ops: 7,
                datamin: 4,
                datamax: 4,
                timeout: 2,
                timevar: 1,
                progress: 5,
                persistent: true,
                clients: 4,
                seed: Some(99),
            }
        );
    }

    #[test]
    fn help_wins() {
        for h in ["-h", "-help", "-?", "--help"] {
            assert_eq!(parse(Args::new([h])).unwrap(), Command::Help);
        }
    }

    #[test]
    fn refusals() {
        let base = ["-connect", "UNIX:/tmp/x"];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            run(&v)
        };
        assert!(matches!(run(&[]), Err(CliError::Missing(_))));
        assert!(matches!(
            run(&["-connect"]),
            Err(CliError::MissingValue("connect"))
        ));
        assert!(matches!(with(&["-bogus"]), Err(CliError::Unknown(u)) if u == "-bogus"));
        assert!(matches!(with(&["stray"]), Err(CliError::Stray(_))));
        for bad in [
            &["-sessions", "0"][..],
            &["-sessions", "513"],
            &["-ops", "1000001"],
            &["-datamin", "3"],
            &["-datamax", "4097"],
            &["-datamin", "100", "-datamax", "99"],
            &["-timeout", "3601"],
            &["-timeout", "5"],
            &["-timevar", "60"],
            &["-clients", "0"],
            &["-progress", "x"],
        ] {
            assert!(
                matches!(with(bad), Err(CliError::BadValue { .. })),
                "{bad:?}"
            );
        }
        for addr in ["nowhere", "IP:9001", "UNIX:"] {
            assert!(
                matches!(
                    run(&["-connect", addr]),
                    Err(CliError::BadValue {
                        option: "connect",
                        ..
                    })
                ),
                "{addr}"
            );
        }
    }
}
