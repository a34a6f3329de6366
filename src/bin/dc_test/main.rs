//! dc_test: checks a session cache with random operations and measures it.

mod dctest;

use dctest::RunError;
use distcache::internals::cli::{options_or_exit, Args};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match options_or_exit("dc_test", dctest::USAGE, dctest::parse(Args::from_env())) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match dctest::run(&options, &mut std::io::stderr()) {
        Ok(report) => {
            let _ = write!(std::io::stdout(), "{report}");
            ExitCode::SUCCESS
        }
        Err(RunError::Failed { .. }) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dc_test: {e}");
            ExitCode::from(1)
        }
    }
}
