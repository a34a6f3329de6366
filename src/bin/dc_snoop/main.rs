//! dc_snoop: a transparent distcache proxy that prints the traffic.

mod snoop;

use distcache::internals::cli::Args;
use snoop::Command;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match snoop::parse(Args::from_env()) {
        Ok(Command::Help) => {
            let _ = write!(std::io::stdout(), "{}", snoop::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(o)) => o,
        Err(e) => {
            eprintln!("dc_snoop: {e}");
            return ExitCode::from(1);
        }
    };
    match snoop::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dc_snoop: {e}");
            ExitCode::from(1)
        }
    }
}
