//! Leaving the terminal: a fork whose parent waits until the child is ready.

use super::DaemonError;
use crate::sys::process::{self, Forked};
use std::io::{self, Read};
use std::os::unix::net::UnixStream;

/// Forks. The parent waits for the child's "ready" byte and exits 0, or
/// exits with the child's status when the child ends without sending it;
/// the child starts a new session and returns its end of the line.
pub(super) fn detach_and_wait() -> Result<UnixStream, DaemonError> {
    let (mut parent_end, child_end) = UnixStream::pair().map_err(DaemonError::Detach)?;
    match process::fork().map_err(DaemonError::Detach)? {
        Forked::Parent(pid) => {
            drop(child_end);
            let mut byte = [0u8; 1];
            let ready = loop {
                match parent_end.read(&mut byte) {
                    Ok(n) => break n == 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            };
            if ready {
                std::process::exit(0);
            }
            let code = match process::wait_child(pid) {
                Ok(0) | Err(_) => 1,
                Ok(c) => c,
            };
            std::process::exit(code);
        }
        Forked::Child => {
            drop(parent_end);
            process::setsid().map_err(DaemonError::Detach)?;
            Ok(child_end)
        }
    }
}
