//! A worker's own links to Redis ([`WorkerLane`]): one connection per
//! master, read and written by the worker's event loop itself, so that a
//! request goes from the client's socket to Redis and its answer back
//! without a hand-over to the background thread and back (two thread
//! wake-ups fewer for each request).
//!
//! The lane carries out what is one command to the master of the key's
//! slot (ADD, GET, HAVE; REMOVE and TAKE when they do not wait for a
//! replica), with the same commands and the same reading of the replies as
//! the background thread ([`super::job`]). Whatever the lane does not
//! handle goes to the background thread, whose cluster client knows every
//! turn a cluster can take:
//! - a request while the lane has no link to the slot's master (TLS, a
//!   master announced by host name, a link that failed less than
//!   [`REST`] ago);
//! - a request Redis refused without carrying it out (`MOVED`, after
//!   which the slot map is corrected, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`,
//!   `LOADING`, `MASTERDOWN`), and one not written yet when its link
//!   failed.
//!
//! A request that was sent on a link that then failed, or that Redis
//! did not answer by its deadline, is answered as failed, never sent
//! again: it may have been carried out. A link whose oldest request is
//! past its deadline is closed (the node is not answering).

mod link;

use super::job::Job;
use super::slots::{moved_to, slot_of, SlotMap};
use super::{RedisStore, Routes};
use crate::cache::{
    Answer, BackendCounts, Lane, ListCursor, ListError, Millis, Op, ProgressFn, Receipt,
    SessionInfo, Started, Store,
};
use link::{Link, Purpose, Sent, Source};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use redis::Value;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// After a link fails, its node's requests go through the background
/// thread for this long before the lane connects again.
const REST: Duration = Duration::from_millis(500);
/// The name the workers' links have in Redis's `CLIENT LIST`.
pub(crate) const LINK_NAME: &str = "distcache-worker";
static NAME: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn name_command() -> Vec<u8> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(LINK_NAME)
        .get_packed_command()
}

/// The error replies of a command that Redis did not carry out, after
/// which the request goes through the background thread.
const HANDED_ON: [&str; 7] = [
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "LOADING",
    "MASTERDOWN",
    "READONLY",
];
/// How long a new link may take to connect, at most (a quarter of the
/// store's timeout when that is less).
const CONNECT_WITHIN: Duration = Duration::from_millis(250);
/// How often a lane asks for the slot map again while a slot has no known
/// master.
const ASK_AGAIN: Duration = Duration::from_secs(1);
/// A link's failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The lane's timer, which fires at the oldest request's deadline.
const TIMER: Token = Token(usize::MAX);
/// Readiness events taken at once.
const EVENTS: usize = 64;

struct State {
    poll: Poll,
    events: Events,
    timer: TimerFd,
    /// When the timer fires next, if it is set.
    armed: Option<Instant>,
    links: Vec<Link>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Links with bytes to write.
    dirty: Vec<usize>,
    map: Arc<SlotMap>,
    version: u64,
    /// When the lane last asked for the map again for a slot it did not
    /// know.
    asked: Option<Instant>,
}

/// The store as one worker uses it: the shared [`RedisStore`], with the
/// worker's own links for the requests that are one command (see the
/// module's documentation).
pub(crate) struct WorkerLane {
    store: Arc<RedisStore>,
    routes: Arc<Routes>,
    state: Mutex<State>,
    fd: RawFd,
}

impl std::fmt::Debug for WorkerLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLane").finish_non_exhaustive()
    }
}

impl WorkerLane {
    /// A lane over `store`'s masters; `None` when the system will not give
    /// it an event loop or a timer.
    pub(super) fn new(store: Arc<RedisStore>) -> Option<WorkerLane> {
        let poll = Poll::new().ok()?;
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags).ok()?;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&timer.as_fd().as_raw_fd()),
                TIMER,
                Interest::READABLE,
            )
            .ok()?;
        let fd = poll.as_raw_fd();
        let routes = store.routes.clone()?;
        let (map, version) = routes.current();
        Some(WorkerLane {
            store,
            routes,
            state: Mutex::new(State {
                poll,
                events: Events::with_capacity(EVENTS),
                timer,
                armed: None,
                links: Vec::new(),
                by_addr: HashMap::new(),
                dirty: Vec::new(),
                map,
                version,
                asked: None,
            }),
            fd,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Only the worker that owns the lane takes the lock; every
        // critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link to the master of `key`'s slot, connected if it was not;
    /// `None` when the lane leaves this request to the background thread.
    fn link_for(&self, st: &mut State, key: &[u8]) -> Option<usize> {
        if let Some((map, version)) = self.routes.since(st.version) {
            st.map = map;
            st.version = version;
        }
        let Some(addr) = st.map.node(slot_of(key)) else {
            // A slot the map does not know: ask the cluster again, now and
            // then (a master announced by host name stays unknown).
            let now = Instant::now();
            if st
                .asked
                .is_none_or(|at| now.duration_since(at) >= ASK_AGAIN)
            {
                st.asked = Some(now);
                self.store.routes_changed();
            }
            return None;
        };
        let at = match st.by_addr.get(&addr) {
            Some(&at) => at,
            None => {
                st.links.push(Link::new(addr));
                st.by_addr.insert(addr, st.links.len() - 1);
                st.links.len() - 1
            }
        };
        let link = &mut st.links[at];
        if link.resting.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        if link.sock.is_none() {
            if let Err(e) = self.open(st, at) {
                let why = format!("{addr}: {e}");
                self.break_link(st, at, &why);
                return None;
            }
        }
        Some(at)
    }

    /// Connects link `at`, its login first in line.
    fn open(&self, st: &mut State, at: usize) -> io::Result<()> {
        let link = &mut st.links[at];
        link.resting = None;
        let mut sock = TcpStream::connect(link.addr)?;
        let _ = sock.set_nodelay(true);
        st.poll.registry().register(
            &mut sock,
            Token(at),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        link.sock = Some(sock);
        // A node that does not take the connection at once (its address
        // dropped by the network) gets a short while, not a request's
        // whole bound, before its requests go the other way.
        let within = (self.store.timeout / 4).clamp(Duration::from_millis(1), CONNECT_WITHIN);
        link.connect_by = Some(Instant::now() + within);
        let deadline = Instant::now() + self.store.timeout;
        if let Some(login) = &self.store.login {
            link.queue(|out| out.extend_from_slice(login), Purpose::Login, deadline);
        }
        let name = NAME.get_or_init(name_command);
        link.queue(|out| out.extend_from_slice(name), Purpose::Name, deadline);
        st.dirty.push(at);
        Ok(())
    }

    /// Takes the replies that came on link `at`; all it can when the
    /// event said the node `closed` its side, to find the end. An error
    /// says why the link cannot go on.
    fn read(&self, st: &mut State, at: usize, closed: bool) -> Result<(), String> {
        let link = &mut st.links[at];
        let Some(sock) = link.sock.as_mut() else {
            return Ok(());
        };
        loop {
            let mut source = Source {
                sock,
                would_block: false,
            };
            match link.parser.parse_value(&mut source) {
                Ok(value) => {
                    let Some(sent) = link.sent.pop_front() else {
                        return Err("a reply to no request".into());
                    };
                    self.heard(sent, value)?;
                    // Nothing more is due: spare the read that would find
                    // the socket empty. Bytes that come anyway wake the
                    // lane again, and are a reply to no request.
                    if link.sent.is_empty() && !closed {
                        return Ok(());
                    }
                }
                Err(_) if source.would_block => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Answers `sent` with `value`, Redis's reply to it; an error when the
    /// link cannot go on.
    fn heard(&self, sent: Sent, value: Value) -> Result<(), String> {
        let store = &*self.store;
        let (seq, job) = match sent.what {
            Purpose::Login => {
                return match value {
                    Value::ServerError(e) => Err(format!("the login was refused: {e}")),
                    _ => Ok(()),
                }
            }
            Purpose::Name => return Ok(()),
            Purpose::Request(seq, job) => (seq, job),
        };
        if let Value::ServerError(e) = &value {
            let code = e.code();
            if code == "MOVED" {
                if let Some((slot, to)) = e.details().and_then(moved_to) {
                    self.routes.moved(slot, to);
                }
            }
            if code == "MOVED" || code == "ASK" {
                store.counts.redirects.fetch_add(1, Ordering::Relaxed);
            }
            // The map is out of date: a slot moved, the cluster is
            // failing over, or the node is a replica now.
            if ["MOVED", "CLUSTERDOWN", "READONLY"].contains(&code) {
                store.routes_changed();
            }
            // Not carried out: the other way knows what to do.
            if HANDED_ON.contains(&code) {
                store.spawn_as(seq, sent.deadline, job);
                return Ok(());
            }
        }
        if Instant::now() >= sent.deadline {
            // Answered as failed already.
            store.timed_out();
            return Ok(());
        }
        let answer = job.answer(value);
        let (answer, data) = match answer {
            Ok(done) => {
                store.answered(sent.began);
                done
            }
            Err(e) => {
                store.failed(&e.to_string());
                (Answer::Failed, Vec::new())
            }
        };
        store.pending.record(seq, answer, data);
        Ok(())
    }

    /// Closes link `at` (`why`): its requests not written yet go to the
    /// background thread, those written are answered as failed.
    fn break_link(&self, st: &mut State, at: usize, why: &str) {
        let now = Instant::now();
        let store = &*self.store;
        let link = &mut st.links[at];
        if let Some(mut sock) = link.sock.take() {
            let _ = st.poll.registry().deregister(&mut sock);
        }
        link.resting = Some(now + REST);
        if link
            .logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            link.logged = Some(now);
            store.log.warn(&format!(
                "store: a worker's connection to {why}; its requests go through the \
                 background thread for the next {} ms",
                REST.as_millis()
            ));
        }
        let written = link.written;
        for sent in link.sent.drain(..) {
            let Purpose::Request(seq, job) = sent.what else {
                continue;
            };
            if sent.start < written {
                if now >= sent.deadline {
                    store.timed_out();
                } else {
                    store.failed(why);
                }
                // Told at once: this may run after the worker looked at its
                // waiting connections for this wake-up (in `flush`).
                store.pending.answer_now(seq, Answer::Failed, Vec::new());
            } else {
                store.spawn_as(seq, sent.deadline, job);
            }
        }
        link.out.clear();
        link.written = 0;
        link.queued = 0;
        link.parser = redis::Parser::new();
        store.routes_changed();
    }

    /// Sets the timer for the oldest request's deadline, unless it fires
    /// before that already. A timer left set when no request is in flight
    /// fires once for nothing: cheaper than two system calls for every
    /// request to set and unset it.
    fn arm(st: &mut State) {
        let Some(oldest) = st
            .links
            .iter()
            .flat_map(|l| [l.sent.front().map(|s| s.deadline), l.connect_by])
            .flatten()
            .min()
        else {
            return;
        };
        if st.armed.is_some_and(|at| at <= oldest) {
            return;
        }
        // At least a microsecond: a zero would unset it.
        let left = oldest
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(1));
        let when = Expiration::OneShot(TimeSpec::from_duration(left));
        let set = st.timer.set(when, TimerSetTimeFlags::empty());
        st.armed = set.is_ok().then_some(oldest);
    }

    /// Closes the links whose oldest request is past its deadline.
    fn expire(&self, st: &mut State) {
        let _ = st.timer.wait();
        st.armed = None;
        let now = Instant::now();
        for at in 0..st.links.len() {
            let link = &st.links[at];
            let why = if link.connect_by.is_some_and(|by| by <= now) {
                format!("{} did not take the connection in time", link.addr)
            } else if link.sent.front().is_some_and(|s| s.deadline <= now) {
                format!(
                    "{} did not answer within {} ms",
                    link.addr,
                    self.store.timeout.as_millis()
                )
            } else {
                continue;
            };
            self.break_link(st, at, &why);
        }
    }
}

impl Lane for WorkerLane {
    fn store(&self) -> &dyn Store {
        self
    }

    fn raw_fd(&self) -> RawFd {
        self.fd
    }

    fn on_ready(&self) {
        let mut st = self.state();
        let st = &mut *st;
        loop {
            let mut events = std::mem::replace(&mut st.events, Events::with_capacity(0));
            if st.poll.poll(&mut events, Some(Duration::ZERO)).is_err() {
                st.events = events;
                break;
            }
            let mut taken = 0;
            for ev in events.iter() {
                taken += 1;
                if ev.token() == TIMER {
                    self.expire(st);
                    continue;
                }
                let at = ev.token().0;
                if at >= st.links.len() || st.links[at].sock.is_none() {
                    continue;
                }
                let mut broken = None;
                // Replies first: a write that fails must not lose the
                // answers already there.
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let closed = ev.is_read_closed() || ev.is_error();
                    broken = self.read(st, at, closed).err();
                }
                if broken.is_none() && ev.is_writable() {
                    broken = st.links[at].write().err();
                }
                if let Some(why) = broken {
                    let why = format!("{}: {why}", st.links[at].addr);
                    self.break_link(st, at, &why);
                }
            }
            st.events = events;
            // A full batch may leave events behind, which would not wake
            // the worker again.
            if taken < EVENTS {
                break;
            }
        }
        Self::arm(st);
    }

    fn flush(&self) {
        let mut st = self.state();
        let st = &mut *st;
        if st.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut st.dirty);
        for &at in &dirty {
            if let Err(why) = st.links[at].write() {
                let why = format!("{}: {why}", st.links[at].addr);
                self.break_link(st, at, &why);
            }
        }
        st.dirty = dirty;
        st.dirty.clear();
        Self::arm(st);
    }
}

impl Store for WorkerLane {
    fn begin(&self, _now: Millis, op: Op<'_>, _data: &mut Vec<u8>) -> Started {
        let store = &*self.store;
        let job = match store.job_for(op) {
            Ok(job) => job,
            Err(answer) => return Started::Done(answer),
        };
        // A job that is more than one command goes the other way.
        let (Some(cmd), Some(key)) = (job.command(store.remove_sync), job.key()) else {
            return Started::Waiting(store.spawn(job));
        };
        let mut st = self.state();
        let st = &mut *st;
        let Some(at) = self.link_for(st, key) else {
            return Started::Waiting(store.spawn(job));
        };
        let deadline = Instant::now() + store.timeout;
        let seq = store.pending.open(deadline);
        store.counts.requests.fetch_add(1, Ordering::Relaxed);
        st.links[at].queue(
            |out| cmd.write_packed_command(out),
            Purpose::Request(seq, job),
            deadline,
        );
        if !st.dirty.contains(&at) {
            st.dirty.push(at);
        }
        Started::Waiting(Receipt { seq, deadline })
    }

    fn finish(&self, receipt: &Receipt, data: &mut Vec<u8>) -> Option<Answer> {
        self.store.finish(receipt, data)
    }

    fn overlaps(&self) -> bool {
        self.store.overlaps()
    }

    fn on_progress(&self, f: ProgressFn) {
        self.store.on_progress(f)
    }

    fn add(
        &self,
        now: Millis,
        timeout_msecs: u32,
        id: &[u8],
        data: &[u8],
    ) -> Result<(), crate::cache::AddError> {
        self.store.add(now, timeout_msecs, id, data)
    }

    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        self.store.get_into(now, id, out)
    }

    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.store.remove(now, id)
    }

    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.store.have(now, id)
    }

    fn len(&self, now: Millis) -> usize {
        self.store.len(now)
    }

    fn backend_counts(&self) -> Option<BackendCounts> {
        self.store.backend_counts()
    }

    fn list(
        &self,
        now: Millis,
        from: Option<ListCursor>,
        max: usize,
        out: &mut Vec<SessionInfo>,
    ) -> Result<Option<ListCursor>, ListError> {
        self.store.list(now, from, max, out)
    }
}
