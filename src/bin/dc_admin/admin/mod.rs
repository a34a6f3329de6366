//! `dc_admin`: list, read and delete the sessions of a running server and
//! read its counters, through the server's admin socket; or the same on the
//! store directory of a stopped server.
//!
//! The commands ([`commands`]) work over an [`AdminSource`]: the admin
//! socket's client ([`SocketSource`]), or a stopped server's store
//! directory ([`StoreDirSource`]). The admin socket's protocol is in [`protocol`]; the server's side
//! of it is `Server::spawn_admin`.

mod client;
pub mod commands;
mod error;
pub mod options;
mod source;
mod store_dir;
pub mod top;

/// The admin socket's protocol, shared with the server.
pub use distcache::internals::proto::admin as protocol;

pub use client::SocketSource;
pub use commands::{run, Action, Done};
pub use error::AdminError;
pub use options::{parse, Invocation, Target, USAGE};
pub use source::AdminSource;
pub use store_dir::StoreDirSource;

use std::io::{self, Write};
use std::time::Duration;

/// Opens the source `target` names.
pub fn open(target: &Target, timeout: Duration) -> Result<Box<dyn AdminSource>, AdminError> {
    match target {
        Target::Socket(path) => Ok(Box::new(SocketSource::connect(path, timeout)?)),
        Target::StoreDir(dir) => Ok(Box::new(StoreDirSource::open(dir)?)),
    }
}

/// `dc_admin top`: a reading every `interval` from a fresh connection to
/// `target` each time, `count` lines (or until interrupted).
pub fn top_main(
    target: &Target,
    timeout: Duration,
    interval: Duration,
    count: Option<u64>,
    out: &mut dyn Write,
) -> Result<Done, AdminError> {
    let mut read = || {
        let mut source = open(target, timeout)?;
        Ok(top::Reading::new(source.stats()?))
    };
    top::run(&mut read, &mut std::thread::sleep, interval, count, out)?;
    Ok(Done::Ok)
}

/// The whole tool: parses `args`, carries out the command, and returns the
/// exit status (0 done, 1 not found or failed, 2 bad command line).
pub fn main_with(args: impl IntoIterator<Item = String>) -> u8 {
    let (target, timeout, action) = match parse(args) {
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Invocation::Run {
            target,
            timeout,
            action,
        }) => (target, timeout, action),
        Err(e) => {
            eprintln!("dc_admin: {e}");
            return 2;
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match action {
        Action::Top { interval, count } => top_main(&target, timeout, interval, count, &mut out),
        _ => open(&target, timeout).and_then(|mut source| run(&action, &mut *source, &mut out)),
    };
    match result {
        Ok(Done::Ok) => 0,
        Ok(Done::NotFound(why)) => {
            let _ = out.flush();
            eprintln!("dc_admin: {why}");
            1
        }
        // A reader that went away (`dc_admin ls | head`) is no failure.
        Err(AdminError::Output { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = out.flush();
            eprintln!("dc_admin: {e}");
            1
        }
    }
}
