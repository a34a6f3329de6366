//! The idle persistent connections of a client, and the fork check.
//!
//! The pool is never waited for: a process forked while another thread held
//! the lock would wait forever. A contended pool means a fresh connection
//! (checkout) or a closed one (checkin).

use super::exchange::Conn;
use std::sync::{Mutex, MutexGuard, TryLockError};

/// Idle persistent connections kept for reuse, at most.
const MAX_IDLE: usize = 32;

/// A client's idle connections.
#[derive(Debug)]
pub(super) struct Pool(Mutex<Idle>);

#[derive(Debug)]
struct Idle {
    /// The process the connections belong to.
    pid: u32,
    conns: Vec<Conn>,
}

impl Pool {
    /// An empty pool of this process.
    pub(super) fn new() -> Pool {
        Pool(Mutex::new(Idle {
            pid: std::process::id(),
            conns: Vec::new(),
        }))
    }

    /// The idle connections, if no other thread holds them this instant.
    fn try_lock(&self) -> Option<MutexGuard<'_, Idle>> {
        match self.0.try_lock() {
            Ok(idle) => Some(idle),
            // The pool is a list of idle connections; a panic elsewhere
            // cannot leave it inconsistent.
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Takes an idle connection. With `pidcheck`, a forked child first
    /// drops (closes its copies of) the connections it inherited.
    pub(super) fn checkout(&self, pidcheck: bool) -> Option<Conn> {
        let mut idle = self.try_lock()?;
        if pidcheck {
            let pid = std::process::id();
            if idle.pid != pid {
                idle.conns.clear();
                idle.pid = pid;
            }
        }
        idle.conns.pop()
    }

    /// Keeps a connection for reuse (or closes it when the pool is full,
    /// busy, or, with `pidcheck`, belongs to another process).
    pub(super) fn checkin(&self, conn: Conn, pidcheck: bool) {
        let Some(mut idle) = self.try_lock() else {
            return;
        };
        if pidcheck && idle.pid != std::process::id() {
            return;
        }
        if idle.conns.len() < MAX_IDLE {
            idle.conns.push(conn);
        }
    }
}
