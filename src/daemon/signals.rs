//! The stop signals, taken by one thread, and SIGPIPE ignored.

use super::{log, DaemonError, Level};
use crate::sys::process::{self, SignalSet};
use std::io;

/// A signal that asks a daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGUSR1 (with `-killable`).
    Usr1,
    /// SIGUSR2 (with `-killable`).
    Usr2,
}

impl StopSignal {
    fn from_raw(signal: libc::c_int) -> Option<StopSignal> {
        match signal {
            libc::SIGTERM => Some(StopSignal::Term),
            libc::SIGINT => Some(StopSignal::Int),
            libc::SIGUSR1 => Some(StopSignal::Usr1),
            libc::SIGUSR2 => Some(StopSignal::Usr2),
            _ => None,
        }
    }

    /// The signal's name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
        }
    }
}

/// The stop signals, blocked in every thread and taken by one.
#[derive(Debug)]
pub struct StopSignals(SignalSet);

impl StopSignals {
    /// Blocks SIGTERM and SIGINT, and SIGUSR1 and SIGUSR2 when `killable`
    /// (else ignores those two), in the calling thread and every thread it
    /// starts afterwards. Call it before starting any thread.
    pub fn block(killable: bool) -> Result<StopSignals, DaemonError> {
        let mut signals = vec![libc::SIGTERM, libc::SIGINT];
        if killable {
            signals.extend([libc::SIGUSR1, libc::SIGUSR2]);
        } else {
            for s in [libc::SIGUSR1, libc::SIGUSR2] {
                process::ignore_signal(s).map_err(DaemonError::Signals)?;
            }
        }
        SignalSet::block(&signals)
            .map(StopSignals)
            .map_err(DaemonError::Signals)
    }

    /// Waits for the next stop signal.
    pub fn wait(&self) -> io::Result<StopSignal> {
        loop {
            if let Some(s) = StopSignal::from_raw(self.0.wait()?) {
                return Ok(s);
            }
        }
    }

    /// Starts a thread that waits for the first stop signal and then runs
    /// `on_stop` with it.
    pub fn spawn_waiter(
        self,
        on_stop: impl FnOnce(StopSignal) + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("signals".into())
            .stack_size(64 * 1024)
            .spawn(move || match self.wait() {
                Ok(signal) => on_stop(signal),
                Err(e) => log(Level::Error, &format!("waiting for signals failed: {e}")),
            })
    }
}

/// Ignores SIGPIPE, so that writing to a closed connection is an error
/// return and not death.
pub fn ignore_sigpipe() -> Result<(), DaemonError> {
    process::ignore_signal(libc::SIGPIPE).map_err(DaemonError::Signals)
}
