//! The proxy's event loop: one thread, one `poll(2)` over the listener, the
//! server connection and every client.

use super::backend::{Backend, Change, InFlight};
use super::local::{End, Local, Phase};
use super::{Notice, ProxyConfig, ProxyError};
use crate::nal::{poll, AcceptFailure, Listener, PollFd};
use crate::proto::{Message, Status};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep in poll(2) when no deadline is nearer.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a stopping proxy waits for the replies to requests it holds.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Bytes read at once from a client or the server.
const READ_CHUNK: usize = 64 * 1024;
/// Connections accepted per wake-up, so that a flood of them cannot starve
/// the clients already connected.
const ACCEPT_BATCH: usize = 64;
/// Pause before accepting again after accept(2) failed (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Least time between two reports of refused or failed accepts.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

type NoticeFn = Box<dyn FnMut(&Notice) + Send>;

/// A bound proxy, ready to [`Proxy::run`].
pub struct Proxy {
    config: ProxyConfig,
    listener: Listener,
    stop: Arc<Stop>,
    notice: Option<NoticeFn>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Stops a running proxy from another thread (a signal handling thread,
/// say).
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<Stop>);

impl StopHandle {
    /// Asks the proxy to stop: it stops accepting, removes its UNIX socket
    /// file, waits at most a second for the replies to the requests it
    /// holds, and [`Proxy::run`] returns.
    pub fn stop(&self) {
        self.0.asked.store(true, Ordering::Release);
        // Wakes the event loop; a full pipe already holds a wake-up.
        let _ = (&self.0.wake_tx).write(&[1]);
    }
}

/// The stop request and the line that wakes the event loop for it.
#[derive(Debug)]
struct Stop {
    asked: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Stop {
    fn new() -> io::Result<Stop> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Stop {
            asked: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        })
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Proxy {
    /// Checks the configuration and binds the listening address. Does not
    /// contact the server yet: [`Proxy::run`] does, and a server that is
    /// down is not an error (its clients get failures until it is up).
    pub fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        if !config.server.can_connect() {
            return Err(ProxyError::ServerAddress(config.server.clone()));
        }
        if config.max_clients == 0 || config.max_in_flight == 0 {
            return Err(ProxyError::Config(
                "the client and in-flight limits must be at least 1",
            ));
        }
        if config.retry.is_zero() || config.server_timeout.is_zero() {
            return Err(ProxyError::Config(
                "the retry period and server timeout must be positive",
            ));
        }
        let listen_err = |e| ProxyError::Listen(config.listen.clone(), e);
        let listener = Listener::bind(&config.listen).map_err(listen_err)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_err(e.into()))?;
        let stop = Stop::new().map_err(ProxyError::Poll)?;
        Ok(Proxy {
            config,
            listener,
            stop: Arc::new(stop),
            notice: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// The socket file of a UNIX listening address (absolute), for setting
    /// its owner and mode.
    pub fn socket_path(&self) -> Option<&Path> {
        self.listener.socket_path()
    }

    /// A handle that stops [`Proxy::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Reports events worth an operator's attention (the server going up
    /// and down, refused clients) to `f`, called on the proxy's thread.
    pub fn on_notice(&mut self, f: impl FnMut(&Notice) + Send + 'static) {
        self.notice = Some(Box::new(f));
    }

    /// Serves until stopped. On return the listener is closed and its UNIX
    /// socket file removed (if it is still the one this proxy made).
    ///
    /// A request held when the stop comes is still answered if the reply
    /// comes within a second.
    pub fn run(self) -> Result<(), ProxyError> {
        let Proxy {
            config,
            listener,
            stop,
            notice,
        } = self;
        let now = Instant::now();
        let backend = Backend::new(
            config.server.clone(),
            config.tls.clone(),
            config.retry,
            config.server_timeout,
            config.max_in_flight,
            config.down,
            now,
        );
        let mut engine = Engine {
            listener: Some(listener),
            backend,
            clients: Vec::new(),
            free: Vec::new(),
            count: 0,
            queue: VecDeque::new(),
            next_id: 1,
            scratch: vec![0; READ_CHUNK],
            replies: Vec::new(),
            notice,
            server_reported_down: false,
            reported_stalls: 0,
            refused: 0,
            last_report: None,
            accept_paused_until: None,
            stop,
            stopping_since: None,
            config,
        };
        let result = engine.run();
        engine.close_listener();
        result
    }
}

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

    fn apply(&mut self, change: Change, now: Instant) {
        self.apply_change(change, now);
        if let Some((backoff, stalls)) = self.backend.marked_down() {
            if stalls != self.reported_stalls {
                self.reported_stalls = stalls;
                let address = self.backend.address().clone();
                self.notify(Notice::ServerMarkedDown(address, backoff));
            }
        }
    }

    fn apply_change(&mut self, change: Change, now: Instant) {
        match change {
            Change::Up => {
                self.server_reported_down = false;
                let address = self.backend.address().clone();
                self.notify(Notice::ServerUp(address));
            }
            Change::Unreachable(why) => {
                if !self.server_reported_down {
                    self.server_reported_down = true;
                    let address = self.backend.address().clone();
                    self.notify(Notice::ServerUnreachable(address, why));
                }
            }
            Change::Lost(reason, lost) => {
                self.server_reported_down = true;
                let answered = lost.len();
                for to in lost {
                    self.answer(to.slot, to.client, &[Status::Disconnected.wire()], now);
                }
                let address = self.backend.address().clone();
                self.notify(Notice::ServerLost {
                    address,
                    reason,
                    answered,
                });
            }
        }
    }

    /// Forwards queued requests while the server takes them; answers them
    /// with an empty reply while it is down.
    fn schedule(&mut self, now: Instant) {
        while let Some(&(slot, id)) = self.queue.front() {
            let held = self.client_mut(slot, id).and_then(|c| c.request());
            let Some((_, command)) = held else {
                self.queue.pop_front();
                continue;
            };
            if !self.backend.is_available() {
                self.queue.pop_front();
                self.answer(slot, id, &[], now);
                continue;
            }
            if !self.backend.has_room() {
                break;
            }
            self.queue.pop_front();
            let payload = self
                .client_mut(slot, id)
                .map(Local::take_payload)
                .unwrap_or_default();
            let to = InFlight {
                slot,
                client: id,
                command,
            };
            if !self.backend.forward(command, &payload, to, now) {
                self.answer(slot, id, &[], now);
            }
        }
        if let Some(change) = self.backend.flush(now) {
            self.apply(change, now);
        }
    }

    fn client_mut(&mut self, slot: usize, id: u64) -> Option<&mut Local> {
        self.clients
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == id)
    }

    /// Sends a reply to the client's held request, if that client is still
    /// connected and waiting (a client that left is forgotten).
    fn answer(&mut self, slot: usize, id: u64, payload: &[u8], now: Instant) {
        let Some(client) = self.client_mut(slot, id) else {
            return;
        };
        if client.phase() != Phase::Waiting {
            return;
        }
        let result = client.reply(payload, now);
        self.after(slot, result, now);
    }

    /// Follows up on a client step: a finished reply lets the client's next
    /// pipelined request in; a complete request is queued; an end closes.
    fn after(&mut self, slot: usize, mut result: Result<bool, End>, now: Instant) {
        loop {
            let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match (result, client.phase()) {
                (Err(_), _) => {
                    self.close(slot);
                    return;
                }
                (Ok(true), Phase::Reading) => result = client.resume(now),
                (Ok(true), Phase::Waiting) => {
                    self.queue.push_back((slot, client.id));
                    return;
                }
                _ => return,
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(slot_ref) = self.clients.get_mut(slot) {
            if slot_ref.take().is_some() {
                self.count -= 1;
                self.free.push(slot);
            }
        }
    }

    /// Closes clients whose deadline passed; returns the next deadline.
    fn expire_clients(&mut self, now: Instant) -> Option<Instant> {
        let idle = self.config.idle;
        let mut next: Option<Instant> = None;
        for slot in 0..self.clients.len() {
            let Some(c) = &self.clients[slot] else {
                continue;
            };
            if c.expired(now, idle).is_some() {
                self.close(slot);
            } else if let Some(d) = c.deadline(idle) {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        next
    }

    fn backend_ready(&mut self, pfd: &PollFd, now: Instant) {
        let mut replies = std::mem::take(&mut self.replies);
        let change = self.backend.ready(
            pfd.readable(),
            pfd.writable(),
            &mut self.scratch,
            &mut replies,
            now,
        );
        for (to, msg) in replies.drain(..) {
            self.answer(to.slot, to.client, &msg.payload, now);
        }
        self.replies = replies;
        if let Some(change) = change {
            self.apply(change, now);
        }
    }

    fn client_ready(&mut self, slot: usize, pfd: &PollFd, now: Instant) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let result = match client.phase() {
            Phase::Reading if pfd.readable() => client.read(&mut self.scratch, now),
            Phase::Replying if pfd.writable() => client.flush(now),
            // Gone while its request is held: forget it; a late reply is
            // dropped.
            _ if pfd.gone() => Err(End::Closed),
            _ => Ok(false),
        };
        self.after(slot, result, now);
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else {
                return;
            };
            let stream = match listener.accept() {
                Ok(s) => s,
                Err(e) if AcceptFailure::of(&e) == AcceptFailure::Empty => return,
                Err(e) if AcceptFailure::of(&e) == AcceptFailure::Again => continue,
                Err(e) => {
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    if self.last_report.is_none_or(|t| now >= t + REPORT_INTERVAL) {
                        self.last_report = Some(now);
                        self.notify(Notice::AcceptFailed(e.to_string()));
                    }
                    return;
                }
            };
            if self.count >= self.config.max_clients || stream.set_nonblocking(true).is_err() {
                // Closing at once tells the client to fail fast.
                self.refused += 1;
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let local = Local::new(id, stream, now);
            match self.free.pop() {
                Some(slot) => self.clients[slot] = Some(local),
                None => self.clients.push(Some(local)),
            }
            self.count += 1;
        }
    }

    /// Reports refused connections, at most once per interval.
    fn report_refused(&mut self, now: Instant) {
        if self.refused == 0 {
            return;
        }
        if self.last_report.is_none_or(|t| now >= t + REPORT_INTERVAL) {
            self.last_report = Some(now);
            let n = std::mem::take(&mut self.refused);
            self.notify(Notice::ClientsRefused(n));
        }
    }
}
