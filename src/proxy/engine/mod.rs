//! The proxy's event loop: one thread, one `poll(2)` over the listener, the
//! server connection and every client.
//!
//! `handle` holds what a program sees (a bound [`Proxy`] and the
//! [`StopHandle`]); `clients` the local side (accepting, reading requests,
//! replying, closing); `forward` the server side (forwarding queued
//! requests, taking replies, the server going up and down).

mod clients;
mod forward;
mod handle;

pub use handle::{Proxy, StopHandle};

use super::backend::{Backend, InFlight};
use super::local::{Local, Phase};
use super::{Notice, ProxyConfig, ProxyError};
use crate::nal::{poll, Listener, PollFd};
use crate::proto::Message;
use handle::{NoticeFn, Stop};
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep in poll(2) when no deadline is nearer.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a stopping proxy waits for the replies to requests it holds.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Bytes read at once from a client or the server.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Least time between two reports of refused or failed accepts.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Who a polled descriptor belongs to.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Listener,
    Wake,
    Backend,
    Client(usize),
}

struct Engine {
    config: ProxyConfig,
    listener: Option<Listener>,
    backend: Backend,
    /// Clients by slot; a closed client's slot is reused.
    clients: Vec<Option<Local>>,
    free: Vec<usize>,
    count: usize,
    /// Clients whose request waits to be forwarded, in arrival order:
    /// (slot, connection id).
    queue: VecDeque<(usize, u64)>,
    next_id: u64,
    scratch: Vec<u8>,
    replies: Vec<(InFlight, Message)>,
    notice: Option<NoticeFn>,
    /// Whether the current outage has been reported.
    server_reported_down: bool,
    /// The count of times the server was marked down, when last reported.
    reported_stalls: u64,
    /// Connections refused (too many clients) since the last report.
    refused: u64,
    last_report: Option<Instant>,
    accept_paused_until: Option<Instant>,
    stop: Arc<Stop>,
    stopping_since: Option<Instant>,
}

impl Engine {
    fn run(&mut self) -> Result<(), ProxyError> {
        let mut fds: Vec<PollFd> = Vec::new();
        let mut owners: Vec<Owner> = Vec::new();
        loop {
            let now = Instant::now();
            if self.stop.asked() && self.stopping_since.is_none() {
                self.stopping_since = Some(now);
                self.close_listener();
            }
            if let Some(since) = self.stopping_since {
                if !self.holds_requests() || now >= since + STOP_GRACE {
                    return Ok(());
                }
            }
            if let Some(change) = self.backend.tick(now) {
                self.apply(change, now);
            }
            self.schedule(now);
            self.report_refused(now);
            let wake = self.expire_clients(now);

            fds.clear();
            owners.clear();
            if let Some(l) = &self.listener {
                if self.accept_paused_until.is_none_or(|t| now >= t) {
                    self.accept_paused_until = None;
                    fds.push(PollFd::new(l.as_fd().as_raw_fd(), true, false));
                    owners.push(Owner::Listener);
                }
            }
            fds.push(PollFd::new(self.stop.wake_rx.as_raw_fd(), true, false));
            owners.push(Owner::Wake);
            if let Some((fd, r, w)) = self.backend.interest() {
                fds.push(PollFd::new(fd, r, w));
                owners.push(Owner::Backend);
            }
            for (slot, c) in self.clients.iter().enumerate() {
                if let Some(c) = c {
                    let (r, w) = c.interest();
                    fds.push(PollFd::new(c.fd(), r, w));
                    owners.push(Owner::Client(slot));
                }
            }
            let deadlines = [
                wake,
                self.backend.deadline(),
                self.accept_paused_until,
                self.stopping_since.map(|s| s + STOP_GRACE),
                (self.refused > 0)
                    .then(|| self.last_report.map(|t| t + REPORT_INTERVAL))
                    .flatten(),
            ];
            let sleep = deadlines
                .into_iter()
                .flatten()
                .min()
                .map_or(MAX_SLEEP, |d| d.saturating_duration_since(now))
                .min(MAX_SLEEP);
            poll(&mut fds, sleep).map_err(ProxyError::Poll)?;

            let now = Instant::now();
            for (pfd, owner) in fds.iter().zip(&owners) {
                if !pfd.any() {
                    continue;
                }
                match *owner {
                    Owner::Listener => self.accept(now),
                    Owner::Wake => self.stop.drain(),
                    Owner::Backend => self.backend_ready(pfd, now),
                    Owner::Client(slot) => self.client_ready(slot, pfd, now),
                }
            }
        }
    }

    /// Stops accepting; dropping the listener removes its socket file.
    fn close_listener(&mut self) {
        self.listener = None;
    }

    fn notify(&mut self, notice: Notice) {
        if let Some(f) = &mut self.notice {
            f(&notice);
        }
    }

    /// Whether some client waits for a reply or is being sent one.
    fn holds_requests(&self) -> bool {
        self.clients
            .iter()
            .flatten()
            .any(|c| c.phase() != Phase::Reading)
    }
}
