//! What a running server counts beyond [`Stats`](super::Stats)' totals:
//! requests by operation and result, a latency histogram per operation,
//! open connections and connections closed for bad input.
//!
//! Every counter is an atomic, updated without a lock on the request path;
//! readers ([`Report::gather`]) see each counter as it is at that moment,
//! not all of them at one instant.

use crate::proto::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored, found or removed.
    Ok,
    /// An ADD for an id already stored.
    Exists,
    /// A GET, REMOVE or HAVE for an id not stored.
    Miss,
    /// An ADD refused with a status: a lifetime over seven days, an id
    /// length out of range or past the payload, or a session the store
    /// cannot hold.
    Refused,
    /// An ADD whose payload cannot hold its own header: the connection was
    /// closed.
    Malformed,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Exists,
        Outcome::Miss,
        Outcome::Refused,
        Outcome::Malformed,
    ];

    /// The outcome's name in reports (`ok`, `exists`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Exists => "exists",
            Outcome::Miss => "miss",
            Outcome::Refused => "refused",
            Outcome::Malformed => "malformed",
        }
    }

    /// The outcomes a request of `command` can have.
    pub fn possible_for(command: Command) -> &'static [Outcome] {
        match command {
            Command::Add => &[
                Outcome::Ok,
                Outcome::Exists,
                Outcome::Refused,
                Outcome::Malformed,
            ],
            Command::Get | Command::Remove | Command::Have | Command::Take => {
                &[Outcome::Ok, Outcome::Miss]
            }
        }
    }
}

/// The name of an operation in reports (`add`, `get`, `remove`, `have`,
/// `take`).
pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::Add => "add",
        Command::Get => "get",
        Command::Remove => "remove",
        Command::Have => "have",
        Command::Take => "take",
    }
}

/// Upper bounds of the latency buckets, in nanoseconds, from 250 ns to
/// 1 s; a last bucket (`+Inf`) takes the rest. (Carrying out a request
/// usually takes well under a microsecond.)
pub const LATENCY_BOUNDS_NS: [u64; 18] = [
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    1_000_000_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;
const COMMANDS: usize = Command::ALL.len();
const OUTCOMES: usize = Outcome::ALL.len();

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, ns: u64) {
        let i = LATENCY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    fn snapshot(&self) -> Latency {
        let mut counts = [0u64; BUCKETS];
        for (c, b) in counts.iter_mut().zip(&self.buckets) {
            *c = b.load(Relaxed);
        }
        Latency {
            counts,
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

/// One operation's latency histogram as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Requests per bucket (not cumulative): `counts[i]` took at most
    /// `LATENCY_BOUNDS_NS[i]` and more than the bound before; the last one
    /// took longer than every bound.
    pub counts: [u64; BUCKETS],
    /// The time all of them took, in nanoseconds.
    pub sum_ns: u64,
}

impl Latency {
    /// How many requests were timed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Copies of the per-request counters: each thread counts in its own, so
/// that worker threads on different CPUs do not contend for one cache
/// line per request; readers add them up.
const SHARDS: usize = 8;

/// One copy of the per-request counters, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    operations: [[AtomicU64; OUTCOMES]; COMMANDS],
    latency: [Histogram; COMMANDS],
}

/// The shard the calling thread counts in: threads take them in turn.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// The counters of a running server (see the module's documentation).
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Shard]>,
    open: AtomicU64,
    protocol_errors: AtomicU64,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            open: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            started: SystemTime::now(),
        }
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    Outcome::ALL.iter().position(|&o| o == outcome).unwrap_or(0)
}

impl Metrics {
    /// Counts one request of `command` that ended with `outcome` after
    /// `took`.
    pub fn record(&self, command: Command, outcome: Outcome, took: Duration) {
        let c = usize::from(command.wire());
        let shard = &self.shards[my_shard()];
        shard.operations[c][outcome_index(outcome)].fetch_add(1, Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        shard.latency[c].observe(ns);
    }

    /// Requests of `command` that ended with `outcome`.
    pub fn operations(&self, command: Command, outcome: Outcome) -> u64 {
        let (c, o) = (usize::from(command.wire()), outcome_index(outcome));
        self.shards
            .iter()
            .map(|s| s.operations[c][o].load(Relaxed))
            .sum()
    }

    /// Requests answered, whatever their outcome, but those that were
    /// malformed (the connection was closed instead).
    pub fn answered(&self) -> u64 {
        let counted = Outcome::ALL.iter().filter(|&&o| o != Outcome::Malformed);
        counted
            .flat_map(|&o| Command::ALL.iter().map(move |&c| (c, o)))
            .map(|(c, o)| self.operations(c, o))
            .sum()
    }

    /// The latency histogram of `command`.
    pub fn latency(&self, command: Command) -> Latency {
        let c = usize::from(command.wire());
        let mut total = Latency {
            counts: [0; BUCKETS],
            sum_ns: 0,
        };
        for s in self.shards.iter() {
            let l = s.latency[c].snapshot();
            for (t, n) in total.counts.iter_mut().zip(l.counts) {
                *t += n;
            }
            total.sum_ns += l.sum_ns;
        }
        total
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn open_connection(&self) -> OpenConnection<'_> {
        self.open.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    /// Counts a connection as open, until [`Metrics::connection_closed`].
    pub(super) fn connection_opened(&self) {
        self.open.fetch_add(1, Relaxed);
    }

    /// Counts a connection counted by [`Metrics::connection_opened`] as
    /// closed.
    pub(super) fn connection_closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    /// Connections being served now.
    pub fn connections_open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// Counts a connection closed because it sent bytes that are not valid
    /// requests.
    pub fn count_protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    /// Connections closed because they sent bytes that are not valid
    /// requests.
    pub fn protocol_errors(&self) -> u64 {
        self.protocol_errors.load(Relaxed)
    }

    /// When the counters started, in seconds since the Unix epoch.
    pub fn start_time(&self) -> f64 {
        self.started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// Keeps a connection counted as open (see [`Metrics::open_connection`]).
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_increasing() {
        assert!(LATENCY_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn requests_land_in_their_bucket() {
        let m = Metrics::default();
        let us = Duration::from_micros;
        m.record(Command::Get, Outcome::Ok, Duration::ZERO);
        m.record(Command::Get, Outcome::Ok, us(1));
        m.record(Command::Get, Outcome::Miss, us(2));
        m.record(Command::Get, Outcome::Miss, us(7));
        m.record(Command::Get, Outcome::Miss, Duration::from_secs(5));
        m.record(Command::Add, Outcome::Exists, us(30));
        let get = m.latency(Command::Get);
        assert_eq!(&get.counts[..6], &[1, 0, 1, 1, 0, 1]);
        assert_eq!(get.counts[BUCKETS - 1], 1);
        assert_eq!(get.count(), 5);
        assert_eq!(get.sum_ns, 5_000_010_000);
        assert_eq!(m.latency(Command::Add).counts[7], 1);
        assert_eq!(m.latency(Command::Have).count(), 0);
        assert_eq!(m.operations(Command::Get, Outcome::Miss), 3);
        assert_eq!(m.operations(Command::Get, Outcome::Ok), 2);
        assert_eq!(m.operations(Command::Add, Outcome::Exists), 1);
        assert_eq!(m.operations(Command::Add, Outcome::Ok), 0);
    }

    #[test]
    fn open_connections_are_counted_while_held() {
        let m = Metrics::default();
        let a = m.open_connection();
        let b = m.open_connection();
        assert_eq!(m.connections_open(), 2);
        drop(a);
        assert_eq!(m.connections_open(), 1);
        drop(b);
        assert_eq!(m.connections_open(), 0);
    }

    #[test]
    fn every_possible_outcome_is_known() {
        for c in Command::ALL {
            assert!(!Outcome::possible_for(c).is_empty());
            assert!(Outcome::possible_for(c).contains(&Outcome::Ok));
        }
    }
}
