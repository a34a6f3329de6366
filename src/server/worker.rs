//! A worker: one thread and one event loop (epoll, through mio) over every
//! listener and the connections it accepted.
//!
//! Every worker watches every listener; the one the kernel wakes first
//! takes what is queued. A new connection is read at once, before it is
//! registered: a client that connects for one request has usually sent it
//! already. On each wake-up the worker reads what each ready connection
//! sent, answers every complete request, and writes the replies in one go.
//!
//! The worker keeps its connections in a list ordered by last activity,
//! so that the longest idle one is found at once: by the idle timeout,
//! and when a new connection needs its place at the `-maxconns` limit.
//! Workers tell each other, through the [`Board`], how long their longest
//! idle connection has been idle, and ask each other to close it.

use super::admission::{AfterFailure, ACCEPT_BACKOFF};
use super::conn::{Conn, End, Env, Flow, Watch, READ_CHUNK, STOP_GRACE};
use super::engine::Shared;
use crate::cache::Millis;
use crate::nal::{poll, AcceptFailure, Listener, PollFd};
use crate::sys::timer::Ticker;
use crate::tls::Link;
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use socket2::Socket;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The worker's own wake-ups: stop, displacement requests, disk progress.
const WAKER: Token = Token(0);
/// The worker's ticker: time limits, retries, replies waiting for the disk.
const TICK: Token = Token(usize::MAX);
/// How often connections are checked against their time limits, and
/// replies waiting for the disk against their deadlines.
const SWEEP: Duration = Duration::from_millis(100);
/// How far from the head of its list a worker looks for a connection that
/// is not busy, to displace.
const DISPLACE_SCAN: usize = 16;
/// Readiness events taken per wake-up.
const EVENTS: usize = 1024;
/// No link in the list of connections.
const NIL: u32 = u32::MAX;

/// What the workers tell each other.
#[derive(Debug)]
pub(super) struct Board {
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    waker: Arc<Waker>,
    /// Last activity of the worker's longest idle connection that may be
    /// displaced (`u64::MAX`: none).
    oldest: AtomicU64,
    /// Connections other workers asked this one to close to make room.
    displace: AtomicUsize,
    /// Connections the worker serves, as it last said (and others added).
    open: AtomicUsize,
    /// Connections other workers accepted and handed to this one.
    handed: Mutex<Vec<Link>>,
}

/// What a connection is watched for.
fn interest(write: bool) -> Interest {
    if write {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the list consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Board {
    /// Closes the connections handed to workers that had stopped: once
    /// every worker has, no one else will.
    pub(super) fn close_handed(&self) -> usize {
        self.slots
            .iter()
            .map(|s| std::mem::take(&mut *lock(&s.handed)).len())
            .sum()
    }

    /// Wakes every worker (to see the stop flag, say).
    pub(super) fn wake_all(&self) {
        for s in &self.slots {
            let _ = s.waker.wake();
        }
    }
}

/// A listener as a worker sees it: its own non-blocking handle.
enum Listen {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listen {
    fn of(l: &Listener) -> io::Result<Listen> {
        let fd: OwnedFd = l.as_fd().try_clone_to_owned()?;
        Ok(if l.tcp_addr().is_some() {
            Listen::Tcp(TcpListener::from_std(std::net::TcpListener::from(fd)))
        } else {
            Listen::Unix(UnixListener::from_std(
                std::os::unix::net::UnixListener::from(fd),
            ))
        })
    }

    /// Accepts a connection, non-blocking, without waiting.
    fn accept(&self) -> io::Result<Socket> {
        match self {
            Listen::Unix(l) => l.accept().map(|(s, _)| Socket::from(OwnedFd::from(s))),
            Listen::Tcp(l) => {
                let (s, _) = l.accept()?;
                // Replies are small and latency matters more than packets.
                let _ = s.set_nodelay(true);
                Ok(Socket::from(OwnedFd::from(s)))
            }
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listen::Unix(l) => l.as_fd(),
            Listen::Tcp(l) => l.as_fd(),
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listen::Unix(l) => registry.register(l, token, Interest::READABLE),
            Listen::Tcp(l) => registry.register(l, token, Interest::READABLE),
        }
    }
}

/// A connection's place in the worker's table and in its list by last
/// activity (least recent first).
struct Entry {
    conn: Option<Conn>,
    prev: u32,
    next: u32,
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
    entries: Vec<Entry>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    open: usize,
    /// Connections whose reply waits for the disk.
    waiting: Vec<u32>,
    buf: Box<[u8]>,
    out: Vec<u8>,
    data: Vec<u8>,
    stopping: Option<Instant>,
}

/// Sets up `count` workers over `listeners`, and the board they share.
pub(super) fn workers(
    count: usize,
    listeners: &[Arc<Listener>],
    shared: &Arc<Shared>,
) -> io::Result<(Vec<Worker>, Arc<Board>)> {
    let mut polls = Vec::with_capacity(count);
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        slots.push(Slot {
            waker,
            oldest: AtomicU64::new(u64::MAX),
            displace: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            handed: Mutex::new(Vec::new()),
        });
        polls.push(poll);
    }
    let board = Arc::new(Board { slots });
    let mut workers = Vec::with_capacity(count);
    for (index, poll) in polls.into_iter().enumerate() {
        let ticker = Ticker::new(SWEEP)?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&ticker.raw_fd()),
            TICK,
            Interest::READABLE,
        )?;
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
            entries: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            open: 0,
            waiting: Vec::new(),
            buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
            out: Vec::new(),
            data: Vec::new(),
            stopping: None,
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
                    continue;
                }
                if token.0 <= self.listeners.len() {
                    self.accept_all(token.0 - 1, now);
                } else if let Some(idx) = self.conn_index(token) {
                    self.drive(idx, now, !ev.is_read_closed());
                }
            }
            self.after_wake(now, ticked);
            if self.stopping.is_some() && self.open == 0 {
                break;
            }
        }
        // Publish that nothing of ours can be displaced any more.
        self.board.slots[self.index]
            .oldest
            .store(u64::MAX, Ordering::Relaxed);
    }

    /// What is due after the events of a wake-up: requests from other
    /// workers, replies the disk has answered, time limits (when the
    /// ticker `ticked`), the stop.
    fn after_wake(&mut self, now: Millis, ticked: bool) {
        self.take_handed(now);
        let asked = self.board.slots[self.index]
            .displace
            .swap(0, Ordering::AcqRel);
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
        let oldest = self
            .displaceable()
            .and_then(|idx| self.conn(idx))
            .map_or(u64::MAX, |c| c.last_active);
        let slot = &self.board.slots[self.index];
        slot.oldest.store(oldest, Ordering::Relaxed);
        slot.open.store(self.open, Ordering::Relaxed);
    }

    /// Accepts every connection waiting on listener `li`. With several
    /// workers, one at a time does, so that the spare descriptor of
    /// [`Admission::accept_failed`](super::admission::Admission) cannot be
    /// taken by another worker's accept.
    fn accept_all(&mut self, li: usize, now: Millis) {
        if self.board.slots.len() == 1 {
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
                .and_then(|idx| Some((idx, self.conn(idx)?.last_active)));
            let other = self
                .board
                .slots
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.index)
                .map(|(i, s)| (i, s.oldest.load(Ordering::Relaxed)))
                .filter(|&(_, t)| t != u64::MAX)
                .min_by_key(|&(_, t)| t);
            match (mine, other) {
                (Some((idx, t)), other) if other.is_none_or(|(_, o)| t <= o) => {
                    sh.admission.take_displacing();
                    self.close(idx, End::Displaced);
                }
                (_, Some((w, _))) => {
                    sh.admission.take_displacing();
                    let slot = &self.board.slots[w];
                    // It closes its longest idle one at its next wake-up;
                    // until then the server is over its limit by one.
                    slot.displace.fetch_add(1, Ordering::AcqRel);
                    let _ = slot.waker.wake();
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
            let slot = &self.board.slots[w];
            slot.open.fetch_add(1, Ordering::Relaxed);
            lock(&slot.handed).push(sock);
            let _ = slot.waker.wake();
            return;
        }
        self.serve_new(sock, now);
    }

    /// The worker to hand a new connection to: one that serves at least two
    /// fewer than this one.
    fn lighter(&self) -> Option<usize> {
        if self.board.slots.len() == 1 {
            return None;
        }
        let (w, open) = self
            .board
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.index)
            .map(|(i, s)| (i, s.open.load(Ordering::Relaxed)))
            .min_by_key(|&(_, open)| open)?;
        (open + 1 < self.open).then_some(w)
    }

    /// Serves the connections other workers handed to this one.
    fn take_handed(&mut self, now: Millis) {
        let handed = std::mem::take(&mut *lock(&self.board.slots[self.index].handed));
        for sock in handed {
            if self.stopping.is_some() {
                drop(sock);
                self.shared.admission.release();
                self.shared.stats.metrics().connection_closed();
            } else {
                self.serve_new(sock, now);
            }
        }
    }

    /// Serves a connection admitted to this worker.
    fn serve_new(&mut self, sock: Link, now: Millis) {
        self.open += 1;
        let idx = self.insert(Conn::new(sock, now));
        // Most clients have sent their request by now: answer it before
        // asking the kernel to watch the socket.
        if !self.drive(idx, now, true) {
            return;
        }
        let token = self.conn_token(idx);
        let Some(conn) = self.entries[idx as usize].conn.as_mut() else {
            return;
        };
        // Writability is watched only while replies wait for the socket:
        // most connections never need it, and it would wake the worker once
        // for nothing.
        let write = conn.has_unsent();
        conn.watch = if write { Watch::ReadWrite } else { Watch::Read };
        let interest = interest(write);
        let fd = conn.sock.raw_fd();
        let registry = self.poll.registry();
        if registry
            .register(&mut mio::unix::SourceFd(&fd), token, interest)
            .is_err()
        {
            self.close(idx, End::Io);
        }
    }

    fn conn(&self, idx: u32) -> Option<&Conn> {
        self.entries.get(idx as usize)?.conn.as_ref()
    }

    /// Lets connection `idx` do all it can now. False if it was closed.
    fn drive(&mut self, idx: u32, now: Millis, drained_hint: bool) -> bool {
        let token = self.conn_token(idx);
        let sh = &*self.shared;
        let Some(conn) = self
            .entries
            .get_mut(idx as usize)
            .and_then(|e| e.conn.as_mut())
        else {
            return false;
        };
        let before = conn.last_active;
        let mut env = Env {
            store: &*sh.store,
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
        if conn.has_unsent() && conn.watch == Watch::Read {
            conn.watch = Watch::ReadWrite;
            let fd = conn.sock.raw_fd();
            let registry = self.poll.registry();
            if registry
                .reregister(&mut mio::unix::SourceFd(&fd), token, interest(true))
                .is_err()
            {
                self.close(idx, End::Io);
                return false;
            }
        }
        if conn.is_waiting() && !self.waiting.contains(&idx) {
            self.waiting.push(idx);
        }
        if conn.last_active != before {
            self.touch(idx);
        }
        true
    }

    /// Closes connection `idx`.
    fn close(&mut self, idx: u32, _why: End) {
        let Some(entry) = self.entries.get_mut(idx as usize) else {
            return;
        };
        if entry.conn.take().is_none() {
            return;
        }
        self.unlink(idx);
        self.free.push(idx);
        self.waiting.retain(|&i| i != idx);
        self.open -= 1;
        self.shared.admission.release();
        self.shared.stats.metrics().connection_closed();
    }

    /// The connection idle the longest that is not in the middle of an
    /// exchange, if one is near the head of the list.
    fn displaceable(&self) -> Option<u32> {
        let mut idx = self.head;
        for _ in 0..DISPLACE_SCAN {
            let conn = self.conn(idx)?;
            if !conn.is_busy() {
                return Some(idx);
            }
            idx = self.entries[idx as usize].next;
        }
        None
    }

    /// Closes the connections that have outlived a time limit.
    fn sweep(&mut self, now: Millis) {
        let idle = self.shared.idle_msecs();
        let mut expired = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(end) = e.conn.as_ref().and_then(|c| c.expired(now, idle)) {
                expired.push((i as u32, end));
            }
        }
        for (idx, end) in expired {
            self.close(idx, end);
        }
    }

    /// Stops accepting, and closes every connection that is not in the
    /// middle of a request; the others get [`STOP_GRACE`] to finish.
    fn stop(&mut self, now: Instant) {
        if self.stopping.is_none() {
            for l in &mut self.listeners {
                let _ = match l {
                    Listen::Unix(l) => self.poll.registry().deregister(l),
                    Listen::Tcp(l) => self.poll.registry().deregister(l),
                };
            }
        }
        let since = *self.stopping.get_or_insert(now);
        let grace_over = now.duration_since(since) >= STOP_GRACE;
        let done: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&i| {
                self.conn(i)
                    .is_some_and(|c| grace_over || !c.is_busy() && !c.is_mid_request())
            })
            .collect();
        for idx in done {
            self.close(idx, End::Stopping);
        }
    }

    fn insert(&mut self, conn: Conn) -> u32 {
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.entries.push(Entry {
                    conn: None,
                    prev: NIL,
                    next: NIL,
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.entries[idx as usize].conn = Some(conn);
        self.push_back(idx);
        idx
    }

    /// Moves `idx` to the end of the list: the most recently active.
    fn touch(&mut self, idx: u32) {
        if self.tail != idx {
            self.unlink(idx);
            self.push_back(idx);
        }
    }

    fn push_back(&mut self, idx: u32) {
        let e = &mut self.entries[idx as usize];
        e.prev = self.tail;
        e.next = NIL;
        match self.tail {
            NIL => self.head = idx,
            t => self.entries[t as usize].next = idx,
        }
        self.tail = idx;
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
        let e = &mut self.entries[idx as usize];
        e.prev = NIL;
        e.next = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection costs the worker one entry and no buffer: keep
    /// the entry small (the kernel's socket is not counted here).
    #[test]
    fn a_connection_entry_is_small() {
        let size = std::mem::size_of::<Entry>();
        assert!(size <= 256, "{size} bytes");
    }
}
