//! What every daemon tool (`dc_server`, `dc_client`) shares: the options
//! `-daemon`, `-pidfile`, `-user`, `-sockowner`, `-sockgroup`, `-sockperms`
//! and `-killable`, and what they do.
//!
//! A tool runs in this order, and [`Daemon`] walks it:
//!
//! 1. [`Daemon::start`], before any thread exists: SIGPIPE ignored; with
//!    `-daemon`, a fork whose parent waits until the child is ready and
//!    exits 0, or exits with the child's status if it fails; the stop
//!    signals blocked, to be taken by one thread with `sigwait`.
//! 2. The tool binds its listeners (errors still reach the terminal).
//! 3. [`Daemon::secure`]: owner, group and mode of the UNIX socket files,
//!    the pid file, then `-user` (groups, group id, user id, in that order).
//! 4. [`Daemon::ready`]: the signal thread starts; with `-daemon` the
//!    process leaves its terminal (working directory `/`, standard streams
//!    on `/dev/null`, logging to syslog) and the waiting parent exits 0.
//! 5. On SIGTERM or SIGINT (and SIGUSR1 or SIGUSR2 with `-killable`) the
//!    tool's stop callback runs; the tool winds down, removes its socket
//!    files and calls [`Daemon::finish`], which removes the pid file.
//!
//! [`log`] writes a line to standard error in the foreground and to syslog
//! once the process has detached.
#![deny(unsafe_code)]

mod detach;
mod error;
mod identity;
mod logging;
mod options;
mod pidfile;
mod signals;

pub use error::DaemonError;
pub use identity::{drop_privileges, set_socket_mode, set_socket_owner};
pub use logging::{log, logs_to_syslog, Level};
pub use options::{DaemonOptions, USAGE};
pub use pidfile::PidFile;
pub use signals::{ignore_sigpipe, StopSignal, StopSignals};
// The one resolver of users and groups, shared with libnal.
pub use crate::nal::owner::{lookup_group, lookup_user, User};

use crate::sys::process;
use detach::detach_and_wait;
use identity::own_socket;
use logging::{PROGRAM, TO_SYSLOG};
use std::ffi::CStr;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::Ordering;

/// A daemon's set-up, from the first line of `main` to its clean exit.
#[derive(Debug)]
pub struct Daemon {
    options: DaemonOptions,
    signals: Option<StopSignals>,
    /// With `-daemon`: the line to the waiting parent.
    parent: Option<UnixStream>,
    pidfile: Option<PidFile>,
}

impl Daemon {
    /// Call first in `main`, while the process has one thread. Names the
    /// program for [`log`], ignores SIGPIPE, forks if `-daemon` is set
    /// (the parent never returns from this: it exits 0 once the child calls
    /// [`Daemon::ready`], or with the child's status if the child exits
    /// first), and blocks the stop signals.
    pub fn start(program: &'static CStr, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let _ = PROGRAM.set(program);
        ignore_sigpipe()?;
        let parent = if options.daemon {
            Some(detach_and_wait()?)
        } else {
            None
        };
        let signals = StopSignals::block(options.killable)?;
        Ok(Daemon {
            options,
            signals: Some(signals),
            parent,
            pidfile: None,
        })
    }

    /// The options this daemon runs with.
    pub fn options(&self) -> &DaemonOptions {
        &self.options
    }

    /// Call once the listeners exist: sets the owner, group and mode of the
    /// UNIX socket files at `socket_paths`, writes the pid file, then
    /// changes to `-user`. Any failure is an error: the caller exits
    /// non-zero (dropping `self` removes the pid file again).
    pub fn secure(&mut self, socket_paths: &[&Path]) -> Result<(), DaemonError> {
        let o = &self.options;
        if o.sets_socket_files() && socket_paths.is_empty() {
            log(
                Level::Warning,
                "-sockowner, -sockgroup and -sockperms apply to UNIX sockets only; none is listened on",
            );
        }
        let within = |option: &'static str| {
            move |e: DaemonError| DaemonError::Option {
                option,
                source: Box::new(e),
            }
        };
        for path in socket_paths {
            own_socket(path, o)?;
            if let Some(mode) = o.sockperms {
                set_socket_mode(path, mode).map_err(within("sockperms"))?;
            }
        }
        if let Some(path) = &o.pidfile {
            self.pidfile = Some(PidFile::write(path).map_err(within("pidfile"))?);
        }
        if let Some(user) = &o.user {
            drop_privileges(user).map_err(within("user"))?;
        }
        Ok(())
    }

    /// Call before [`Daemon::secure`] for a UNIX socket file that gets a
    /// mode of its own (`option` names the option that set it, for
    /// errors): gives it the owner and group of `-sockowner` and
    /// `-sockgroup`, as the listeners' socket files, and sets its mode.
    pub fn secure_socket(
        &self,
        path: &Path,
        mode: u32,
        option: &'static str,
    ) -> Result<(), DaemonError> {
        let o = &self.options;
        own_socket(path, o)?;
        set_socket_mode(path, mode).map_err(|e| DaemonError::Option {
            option,
            source: Box::new(e),
        })
    }

    /// Call when the service is ready: starts the thread that, at the first
    /// stop signal, logs "stopping on SIG..." and runs `stop`; with `-daemon`, moves to `/`, points the
    /// standard streams at `/dev/null`, sends [`log`] to syslog and lets the
    /// waiting parent exit 0.
    pub fn ready(&mut self, stop: impl FnOnce() + Send + 'static) -> Result<(), DaemonError> {
        if let Some(signals) = self.signals.take() {
            signals
                .spawn_waiter(move |signal| {
                    log(Level::Notice, &format!("stopping on {}", signal.name()));
                    stop();
                })
                .map_err(DaemonError::Signals)?;
        }
        if let Some(mut parent) = self.parent.take() {
            std::env::set_current_dir("/").map_err(DaemonError::Detach)?;
            if let Some(name) = PROGRAM.get() {
                process::open_syslog(name);
            }
            process::stdio_to_null().map_err(DaemonError::Detach)?;
            TO_SYSLOG.store(true, Ordering::Relaxed);
            parent.write_all(b"R").map_err(DaemonError::Detach)?;
        }
        Ok(())
    }

    /// Call after a clean stop: removes the pid file (a failure is logged).
    pub fn finish(mut self) {
        if let Some(mut p) = self.pidfile.take() {
            if let Err(e) = p.remove() {
                log(
                    Level::Warning,
                    &format!("can't remove pid file '{}': {e}", p.path().display()),
                );
            }
        }
    }
}
