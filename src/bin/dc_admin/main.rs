//! dc_admin: list, read and delete the sessions of a running dc_server and
//! read its counters, through its admin socket.

mod admin;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    ExitCode::from(admin::main_with(args))
}
