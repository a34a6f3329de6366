//! A worker: one thread and one event loop (epoll, through mio) over every
//! listener and the connections it accepted.
//!
//! Every worker watches every listener; the one the kernel wakes first
//! takes what is queued. A new connection is read at once, before it is
//! registered: a client that connects for one request has usually sent it
//! already. On each wake-up the worker reads what each ready connection
//! sent, answers every complete request, and writes the replies in one go.
//!
//! The worker keeps its connections in a list ordered by last activity
//! ([`list`]), so that the longest idle one is found at once: by the idle
//! timeout, and when a new connection needs its place at the `-maxconns`
//! limit ([`accept`]). Workers tell each other, through the [`Board`], how
//! long their longest idle connection has been idle, and ask each other to
//! close it.

mod accept;
mod board;
mod list;
mod listen;

pub(super) use board::Board;

use super::conn::{Conn, End, Env, Flow, Watch, READ_CHUNK, STOP_GRACE};
use super::engine::Shared;
use crate::cache::{Lane, Millis, Store};
use crate::nal::Listener;
use crate::sys::timer::Ticker;
use crate::tls::Link;
use list::Conns;
use listen::Listen;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The worker's own wake-ups: stop, displacement requests, disk progress.
const WAKER: Token = Token(0);
/// The worker's ticker: time limits, retries, replies waiting for the disk.
const TICK: Token = Token(usize::MAX);
/// How often connections are checked against their time limits, and
/// replies waiting for the disk against their deadlines.
const SWEEP: Duration = Duration::from_millis(100);
/// The worker's own links to the store's backend, if the store has them.
const LANE: Token = Token(usize::MAX - 1);
/// Readiness events taken per wake-up.
const EVENTS: usize = 1024;

/// Watches `conn` for what it waits for under `token`: writability only
/// while replies wait for the socket, since most connections never need it
/// and it would wake the worker once for nothing. The first time
/// (`known` false) registers it.
fn watch(registry: &Registry, conn: &mut Conn, token: Token, known: bool) -> io::Result<()> {
    let write = conn.has_unsent();
    conn.watch = if write { Watch::ReadWrite } else { Watch::Read };
    let interest = if write {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    let mut fd = mio::unix::SourceFd(&conn.sock.raw_fd());
    if known {
        registry.reregister(&mut fd, token, interest)
    } else {
        registry.register(&mut fd, token, interest)
    }
}

/// A worker ready to run on its own thread.
pub(super) struct Worker {
    index: usize,
    poll: Poll,
    /// Ticks every [`SWEEP`], so that the worker never waits with a timeout.
    ticker: Ticker,
    shared: Arc<Shared>,
    board: Arc<Board>,
    listeners: Vec<Listen>,
    /// When to try accepting again after a failure.
    retry_accept: Option<Instant>,
    conns: Conns,
    open: usize,
    /// Connections whose reply waits for the disk.
    waiting: Vec<u32>,
    /// What the worker last said on the board: that it may have requests
    /// waiting for the store.
    awaits: bool,
    buf: Box<[u8]>,
    out: Vec<u8>,
    data: Vec<u8>,
    stopping: Option<Instant>,
    /// The store's links of this worker's own ([`Lane`]), if it has them.
    lane: Option<Box<dyn Lane>>,
}

/// Sets up `count` workers over `listeners`, and the board they share.
pub(super) fn workers(
    count: usize,
    listeners: &[Arc<Listener>],
    shared: &Arc<Shared>,
) -> io::Result<(Vec<Worker>, Arc<Board>)> {
    let mut polls = Vec::with_capacity(count);
    let mut wakers = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = Poll::new()?;
        wakers.push(Arc::new(Waker::new(poll.registry(), WAKER)?));
        polls.push(poll);
    }
    let board = Arc::new(Board::new(wakers));
    let mut workers = Vec::with_capacity(count);
    for (index, poll) in polls.into_iter().enumerate() {
        let ticker = Ticker::new(SWEEP)?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&ticker.raw_fd()),
            TICK,
            Interest::READABLE,
        )?;
        let lane = shared.store.clone().lane();
        if let Some(lane) = &lane {
            poll.registry().register(
                &mut mio::unix::SourceFd(&lane.raw_fd()),
                LANE,
                Interest::READABLE,
            )?;
        }
        let mut own = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.iter().enumerate() {
            let mut listen = Listen::of(l)?;
            listen.register(poll.registry(), Token(1 + i))?;
            own.push(listen);
        }
        workers.push(Worker {
            index,
            poll,
            ticker,
            shared: shared.clone(),
            board: board.clone(),
            listeners: own,
            retry_accept: None,
            conns: Conns::new(),
            open: 0,
            waiting: Vec::new(),
            awaits: false,
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            out: Vec::new(),
            data: Vec::new(),
            stopping: None,
            lane,
        });
    }
    Ok((workers, board))
}

impl Worker {
    fn conn_token(&self, idx: u32) -> Token {
        Token(1 + self.listeners.len() + idx as usize)
    }

    fn conn_index(&self, token: Token) -> Option<u32> {
        let idx = token.0.checked_sub(1 + self.listeners.len())?;
        u32::try_from(idx).ok()
    }

    /// Serves until the server stops and this worker's connections are
    /// done.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // Nothing the worker can mend: wait, and try again.
                    std::thread::sleep(SWEEP);
                }
                continue;
            }
            let now = self.shared.clock.now();
            let mut ticked = false;
            for ev in events.iter() {
                let token = ev.token();
                if token == WAKER {
                    continue;
                }
                if token == TICK {
                    self.ticker.clear();
                    ticked = true;
                    // Also a look at the lane now and then, whatever its
                    // own wake-ups did.
                    if let Some(lane) = &self.lane {
                        lane.on_ready();
                    }
                    continue;
                }
                if token == LANE {
                    if let Some(lane) = &self.lane {
                        lane.on_ready();
                    }
                    continue;
                }
                if token.0 <= self.listeners.len() {
                    self.accept_all(token.0 - 1, now);
                } else if let Some(idx) = self.conn_index(token) {
                    if let Some(conn) = self.conns.get_mut(idx) {
                        conn.readable();
                    }
                    self.drive(idx, now, !ev.is_read_closed());
                }
            }
            self.after_wake(now, ticked);
            if self.stopping.is_some() && self.open == 0 {
                break;
            }
        }
        // Publish that nothing of ours can be displaced any more.
        self.board.withdraw(self.index);
    }

    /// What is due after the events of a wake-up: requests from other
    /// workers, replies the disk has answered, time limits (when the
    /// ticker `ticked`), the stop.
    fn after_wake(&mut self, now: Millis, ticked: bool) {
        self.take_handed(now);
        let asked = self.board.take_displace(self.index);
        for _ in 0..asked {
            if let Some(idx) = self.displaceable() {
                self.close(idx, End::Displaced);
            }
        }
        if !self.waiting.is_empty() {
            for idx in std::mem::take(&mut self.waiting) {
                self.drive(idx, now, false);
            }
        }
        if self.awaits && self.waiting.is_empty() {
            self.awaits = false;
            self.board.set_awaits(self.index, false);
        }
        let instant = Instant::now();
        if self.retry_accept.is_some_and(|t| instant >= t) {
            self.retry_accept = None;
            for i in 0..self.listeners.len() {
                self.accept_all(i, now);
            }
        }
        if ticked {
            self.sweep(now);
        }
        if self.shared.is_stopping() {
            self.stop(instant);
        }
        // The requests begun in this wake-up go out together.
        if let Some(lane) = &self.lane {
            lane.flush();
        }
        let oldest = self
            .displaceable()
            .and_then(|idx| self.conns.get(idx))
            .map_or(u64::MAX, |c| c.last_active);
        self.board.publish(self.index, oldest, self.open);
    }

    /// Serves a connection admitted to this worker.
    fn serve_new(&mut self, sock: Link, now: Millis) {
        self.open += 1;
        let idx = self.conns.insert(Conn::new(sock, now));
        // Most clients have sent their request by now: answer it before
        // asking the kernel to watch the socket.
        if !self.drive(idx, now, true) {
            return;
        }
        let token = self.conn_token(idx);
        let Some(conn) = self.conns.get_mut(idx) else {
            return;
        };
        if watch(self.poll.registry(), conn, token, false).is_err() {
            self.close(idx, End::Io);
        }
    }

    /// Lets connection `idx` do all it can now. False if it was closed.
    fn drive(&mut self, idx: u32, now: Millis, drained_hint: bool) -> bool {
        let token = self.conn_token(idx);
        let sh = &*self.shared;
        let Some(conn) = self.conns.get_mut(idx) else {
            return false;
        };
        let before = conn.last_active;
        let store: &dyn Store = match &self.lane {
            Some(lane) => lane.store(),
            None => &*sh.store,
        };
        let mut env = Env {
            store,
            stats: &sh.stats,
            policy: sh.policy(),
            now,
            clock: sh.clock,
            out: &mut self.out,
            data: &mut self.data,
        };
        let flow = conn.drive(&mut env, &mut self.buf, drained_hint);
        // A reply is never left framed but unsent in the worker's buffer.
        self.out.clear();
        let end = match flow {
            Flow::Closed(end) => Some(end),
            Flow::Parked
                if self.stopping.is_some() && !conn.is_busy() && !conn.is_mid_request() =>
            {
                Some(End::Stopping)
            }
            Flow::Parked => None,
        };
        if let Some(end) = end {
            self.close(idx, end);
            return false;
        }
        if conn.has_unsent()
            && conn.watch == Watch::Read
            && watch(self.poll.registry(), conn, token, true).is_err()
        {
            self.close(idx, End::Io);
            return false;
        }
        if conn.is_waiting() {
            if !self.waiting.contains(&idx) {
                self.waiting.push(idx);
            }
            if !self.awaits {
                // Progress from now on wakes this worker; an answer that
                // came before is taken when the waiting connections are
                // driven at the end of this wake-up.
                self.awaits = true;
                self.board.set_awaits(self.index, true);
            }
        }
        if conn.last_active != before {
            self.conns.touch(idx);
        }
        true
    }

    /// Closes connection `idx`.
    fn close(&mut self, idx: u32, _why: End) {
        if self.conns.remove(idx).is_none() {
            return;
        }
        self.waiting.retain(|&i| i != idx);
        self.open -= 1;
        self.shared.admission.release();
        self.shared.stats.metrics().connection_closed();
    }

    /// Closes the connections that have outlived a time limit.
    fn sweep(&mut self, now: Millis) {
        let idle = self.shared.idle_msecs();
        let expired: Vec<(u32, End)> = self
            .conns
            .iter()
            .filter_map(|(idx, c)| Some((idx, c.expired(now, idle)?)))
            .collect();
        for (idx, end) in expired {
            self.close(idx, end);
        }
    }

    /// Stops accepting, and closes every connection that is not in the
    /// middle of a request; the others get [`STOP_GRACE`] to finish.
    fn stop(&mut self, now: Instant) {
        if self.stopping.is_none() {
            for l in &mut self.listeners {
                let _ = l.deregister(self.poll.registry());
            }
        }
        let since = *self.stopping.get_or_insert(now);
        let grace_over = now.duration_since(since) >= STOP_GRACE;
        let done: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| grace_over || !c.is_busy() && !c.is_mid_request())
            .map(|(idx, _)| idx)
            .collect();
        for idx in done {
            self.close(idx, End::Stopping);
        }
    }
}
