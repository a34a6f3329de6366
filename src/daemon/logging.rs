//! Logging: standard error in the foreground, syslog once detached.

use crate::sys::process::{self, Priority};
use std::ffi::CStr;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// How important a logged line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong but the service goes on.
    Warning,
    /// A normal but significant event (starting, stopping).
    Notice,
    /// Progress lines.
    Info,
}

pub(super) static PROGRAM: OnceLock<&'static CStr> = OnceLock::new();
pub(super) static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

fn program() -> &'static str {
    PROGRAM
        .get()
        .and_then(|p| p.to_str().ok())
        .unwrap_or("distcache")
}

/// Logs one line. In the foreground it goes to standard error, prefixed
/// with the program's name except for `Info` lines (progress lines, printed
/// as the original printed them); once detached, to syslog (facility
/// daemon, with the pid).
pub fn log(level: Level, line: &str) {
    if TO_SYSLOG.load(Ordering::Relaxed) {
        let priority = match level {
            Level::Error => Priority::Err,
            Level::Warning => Priority::Warning,
            Level::Notice => Priority::Notice,
            Level::Info => Priority::Info,
        };
        process::syslog(priority, line);
    } else {
        let mut err = io::stderr().lock();
        let _ = match level {
            Level::Info => writeln!(err, "{line}"),
            _ => writeln!(err, "{}: {line}", program()),
        };
    }
}

/// Whether [`log`] writes to syslog (the process has detached).
pub fn logs_to_syslog() -> bool {
    TO_SYSLOG.load(Ordering::Relaxed)
}
