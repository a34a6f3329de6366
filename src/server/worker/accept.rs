//! How a worker takes new connections: accepting them (one worker at a
//! time per listener), admitting them under `-maxconns` by displacing the
//! longest idle connection of any worker, and handing them to a worker
//! that serves fewer.

use super::super::admission::{AfterFailure, ACCEPT_BACKOFF};
use super::super::conn::End;
use super::Worker;
use crate::cache::Millis;
use crate::nal::{poll, AcceptFailure, PollFd};
use crate::tls::Link;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How far from the head of its list a worker looks for a connection that
/// is not busy, to displace.
const DISPLACE_SCAN: usize = 16;

impl Worker {
    /// Accepts every connection waiting on listener `li`. With several
    /// workers, one at a time does, so that the spare descriptor of
    /// [`Admission::accept_failed`](super::super::admission::Admission)
    /// cannot be taken by another worker's accept.
    pub(super) fn accept_all(&mut self, li: usize, now: Millis) {
        if self.board.is_alone() {
            self.drain(li, now);
            return;
        }
        let sh = self.shared.clone();
        let taking = &sh.accepting[li];
        loop {
            if taking.swap(true, Ordering::AcqRel) {
                // Another worker is taking them, and sees this one too.
                return;
            }
            let drained = self.drain(li, now);
            taking.store(false, Ordering::Release);
            // A connection that came after the last look, while the flag
            // was up, woke the other workers in vain: look once more.
            if !drained || !self.is_pending(li) {
                return;
            }
        }
    }

    /// Whether a connection waits on listener `li`.
    fn is_pending(&self, li: usize) -> bool {
        let fd = self.listeners[li].fd().as_raw_fd();
        let mut fds = [PollFd::new(fd, true, false)];
        poll(&mut fds, Duration::ZERO).is_ok_and(|n| n > 0 && fds[0].readable())
    }

    /// Accepts connections on listener `li` until none waits (true) or it
    /// must stop for now (false).
    fn drain(&mut self, li: usize, now: Millis) -> bool {
        while self.stopping.is_none() {
            let listener = &self.listeners[li];
            let sock = match listener.accept() {
                Ok(s) => s,
                Err(e) => match AcceptFailure::of(&e) {
                    AcceptFailure::Empty => return true,
                    AcceptFailure::Again => continue,
                    AcceptFailure::Other => {
                        let admission = &self.shared.admission;
                        match admission.accept_failed(listener.fd(), &e, &mut || listener.accept())
                        {
                            AfterFailure::Serve(s) => s,
                            AfterFailure::Again => continue,
                            AfterFailure::Drained => return true,
                            AfterFailure::Later => {
                                self.retry_accept = Some(Instant::now() + ACCEPT_BACKOFF);
                                return false;
                            }
                        }
                    }
                },
            };
            let Ok(link) = Link::accepted(sock, self.shared.tls(li)) else {
                // No memory for its TLS state: as if it had not come.
                continue;
            };
            self.admit(link, now);
        }
        false
    }

    /// Serves a connection just accepted if it may be: below the limit, or
    /// in the place of the longest idle connection of any worker.
    fn admit(&mut self, sock: Link, now: Millis) {
        let sh = self.shared.clone();
        if !sh.admission.try_take() {
            let mine = self
                .displaceable()
                .and_then(|idx| Some((idx, self.conns.get(idx)?.last_active)));
            let other = self.board.oldest_elsewhere(self.index);
            match (mine, other) {
                (Some((idx, t)), other) if other.is_none_or(|(_, o)| t <= o) => {
                    sh.admission.take_displacing();
                    self.close(idx, End::Displaced);
                }
                (_, Some((w, _))) => {
                    sh.admission.take_displacing();
                    // It closes its longest idle one at its next wake-up;
                    // until then the server is over its limit by one.
                    self.board.ask_displace(w);
                }
                _ => {
                    sh.admission.refuse();
                    return;
                }
            }
        }
        sh.stats.count_connection();
        sh.stats.metrics().connection_opened();
        if let Some(w) = self.lighter() {
            // A burst of connections taken here would leave the other
            // workers idle: hand this one to the one with fewest.
            self.board.hand(w, sock);
            return;
        }
        self.serve_new(sock, now);
    }

    /// The worker to hand a new connection to: one that serves at least two
    /// fewer than this one.
    fn lighter(&self) -> Option<usize> {
        if self.board.is_alone() {
            return None;
        }
        let (w, open) = self.board.lightest_elsewhere(self.index)?;
        (open + 1 < self.open).then_some(w)
    }

    /// Serves the connections other workers handed to this one.
    pub(super) fn take_handed(&mut self, now: Millis) {
        for sock in self.board.take_handed(self.index) {
            if self.stopping.is_some() {
                drop(sock);
                self.shared.admission.release();
                self.shared.stats.metrics().connection_closed();
            } else {
                self.serve_new(sock, now);
            }
        }
    }

    /// The connection idle the longest that is not in the middle of an
    /// exchange, if one is near the head of the list.
    pub(super) fn displaceable(&self) -> Option<u32> {
        self.conns
            .by_age()
            .take(DISPLACE_SCAN)
            .find(|(_, conn)| !conn.is_busy())
            .map(|(idx, _)| idx)
    }
}
