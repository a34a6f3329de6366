//! `make bench`: the scenario matrix of the README's "Performance" section.
//!
//! Run without arguments, this binary is the conductor: it starts servers
//! and clients as separate processes (pinned with `taskset`), measures each
//! scenario next to its floor in the same run, and writes the table to
//! stdout and to `target/bench/report.md`. The conductor starts copies of
//! itself for the client side and for the floor servers, with one of the
//! subcommands below; they print one `key=value` line each.
//!
//! Scenario 10 compares TLS with plain TCP on one dc_server; it needs the
//! `openssl` command (Debian package `openssl`) to make its certificates.
//!
//! Scenario 8 runs memcached and redis-server next to dc_server, the same
//! load generator speaking each one's protocol, and the memory of 10,000
//! idle connections to each; without the two (Debian packages `memcached`
//! and `redis-server`) it says how to install them and is skipped.
//!
//! Scenario 11 runs dc_server as a gateway to a Redis Cluster of three
//! masters that it starts, next to the in-memory dc_server and to the same
//! load sent to the cluster directly; without `redis-server` (Debian package
//! `redis-server`) it says how to install it and is skipped.
//!
//! Settings (environment):
//! - `BENCH_RUNS` runs per figure, the median is reported (default 5);
//! - `BENCH_SECS` seconds per run (default 1);
//! - `BENCH_ONLY` a comma-separated list of scenario numbers, 1 to 11
//!   (default all);
//! - `BENCH_GATEWAY_BASE` another build's `dc_server`, run in scenario 11 as
//!   a second gateway beside this build's (a before and after in one run);
//! - `BENCH_BIG` sessions of the large-cache cases (default 1000000);
//! - `DISTCACHE_ORIGINAL` the install prefix of the original distcache, to
//!   run its `dc_server` side by side with ours.

mod events;
mod floor;
mod gateway;
mod gwload;
mod idle;
mod load;
mod matrix;
mod nonblocking;
mod peerload;
mod peerproto;
mod peers;
mod procs;
mod report;
mod silent;
mod tls;
mod wire;

use std::process::ExitCode;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the subcommands take key=value pairs.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("matrix", &[][..]),
    };
    let kv = match procs::KeyValues::parse(rest) {
        Ok(kv) => kv,
        Err(e) => {
            eprintln!("scenarios: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        "floor-server" => floor::server(&kv),
        "floor-client" => floor::client(&kv),
        "client" => load::client(&kv),
        "mixed" => load::mixed(&kv),
        "mixed-events" => events::mixed_events(&kv),
        "preload" => load::preload_cmd(&kv),
        "peer-load" => peerload::client(&kv),
        "gw-load" => gwload::client(&kv),
        "silent-client" => silent::client(&kv),
        "matrix" => matrix::run(),
        other => Err(format!("unknown subcommand '{other}'")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenarios {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
