//! dc_snoop: a transparent distcache proxy that prints the traffic.

mod snoop;

use distcache::internals::cli::{options_or_exit, Args};
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match options_or_exit("dc_snoop", snoop::USAGE, snoop::parse(Args::from_env())) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match snoop::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dc_snoop: {e}");
            ExitCode::from(1)
        }
    }
}
