//! dc_test: checks a session cache with random operations and measures it.

mod dctest;

use dctest::{Command, RunError};
use distcache::internals::cli::Args;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match dctest::parse(Args::from_env()) {
        Ok(Command::Help) => {
            let _ = write!(std::io::stdout(), "{}", dctest::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(o)) => o,
        Err(e) => {
            eprintln!("dc_test: {e}");
            return ExitCode::from(1);
        }
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
