//! Everything the inspection interfaces (the admin socket's `STATS`, the
//! `/metrics` page) tell about a running server, gathered in one place.

use super::metrics::{command_name, Latency, Outcome};
use super::{Clock, Stats};
use crate::cache::{BackendCounts, DropCounts, Store};
use crate::proto::Command;

/// A server's counters and its store's figures, read at one moment (each
/// counter as it was when read).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Milliseconds since the server started.
    pub uptime_ms: u64,
    /// When the server started, in seconds since the Unix epoch.
    pub start_time: f64,
    /// Live sessions stored.
    pub sessions: u64,
    /// Bytes of session data stored, if the store can tell.
    pub data_bytes: Option<u64>,
    /// Sessions the store evicted and expired.
    pub drops: DropCounts,
    /// Connections accepted since the start.
    pub connections_accepted: u64,
    /// Connections being served.
    pub connections_open: u64,
    /// Connections closed because they sent bytes that are not requests.
    pub protocol_errors: u64,
    /// Requests answered, by operation and outcome (every outcome the
    /// operation can have, zeros included).
    pub operations: Vec<(Command, Outcome, u64)>,
    /// The latency histogram of each operation.
    pub latency: Vec<(Command, Latency)>,
    /// The store's remote backend, if it has one.
    pub backend: Option<BackendCounts>,
}

impl Report {
    /// Reads the counters of `stats` and the figures of `store`.
    pub fn gather(stats: &Stats, store: &dyn Store, clock: &Clock) -> Report {
        let now = clock.now();
        let m = stats.metrics();
        let mut operations = Vec::new();
        for c in Command::ALL {
            for &o in Outcome::possible_for(c) {
                operations.push((c, o, m.operations(c, o)));
            }
        }
        Report {
            uptime_ms: now,
            start_time: m.start_time(),
            sessions: store.len(now) as u64,
            data_bytes: store.data_bytes(now),
            drops: store.drop_counts(),
            backend: store.backend_counts(),
            connections_accepted: stats.connections(),
            connections_open: m.connections_open(),
            protocol_errors: m.protocol_errors(),
            operations,
            latency: Command::ALL.iter().map(|&c| (c, m.latency(c))).collect(),
        }
    }

    /// Requests of `command` that ended with `outcome`.
    pub fn count(&self, command: Command, outcome: Outcome) -> u64 {
        self.operations
            .iter()
            .find(|(c, o, _)| (*c, *o) == (command, outcome))
            .map_or(0, |(_, _, n)| *n)
    }

    /// The report as `name value` pairs, in a fixed order: what the admin
    /// socket's `STATS` sends. Names are made of lower-case words joined by
    /// dots; times are in milliseconds or microseconds, as their names say.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = vec![
            ("uptime.ms".into(), self.uptime_ms),
            ("sessions".into(), self.sessions),
        ];
        if let Some(b) = self.data_bytes {
            out.push(("bytes".into(), b));
        }
        out.extend([
            ("evictions".into(), self.drops.evicted),
            ("expirations".into(), self.drops.expired),
            ("connections.accepted".into(), self.connections_accepted),
            ("connections.open".into(), self.connections_open),
            ("connections.protocol_errors".into(), self.protocol_errors),
            ("get.hits".into(), self.count(Command::Get, Outcome::Ok)),
            ("get.misses".into(), self.count(Command::Get, Outcome::Miss)),
        ]);
        for (c, o, n) in &self.operations {
            out.push((format!("ops.{}.{}", command_name(*c), o.name()), *n));
        }
        for (c, l) in &self.latency {
            let name = command_name(*c);
            out.push((format!("latency.{name}.count"), l.count()));
            out.push((format!("latency.{name}.sum_us"), l.sum_ns / 1000));
        }
        if let Some(b) = &self.backend {
            out.extend([
                ("backend.requests".into(), b.requests),
                ("backend.errors".into(), b.errors),
                ("backend.timeouts".into(), b.timeouts),
                ("backend.redirects".into(), b.redirects),
                ("backend.latency_sum_us".into(), b.latency_sum_ns / 1000),
            ]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryStore;
    use std::time::Duration;

    #[test]
    fn pairs_name_every_figure_once() {
        let stats = Stats::default();
        let store = MemoryStore::new(10);
        store.add(0, 60_000, b"id", b"data").unwrap();
        stats
            .metrics()
            .record(Command::Get, Outcome::Miss, Duration::from_micros(3));
        let report = Report::gather(&stats, &store, &Clock::start());
        let pairs = report.pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("sessions"), Some(1));
        assert_eq!(get("bytes"), Some(4));
        assert_eq!(get("get.misses"), Some(1));
        assert_eq!(get("ops.get.miss"), Some(1));
        assert_eq!(get("ops.add.exists"), Some(0));
        assert_eq!(get("ops.get.exists"), None, "not an outcome of GET");
        assert_eq!(get("latency.get.count"), Some(1));
        assert_eq!(get("latency.get.sum_us"), Some(3));
        let mut names: Vec<&String> = pairs.iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), pairs.len());
        assert!(pairs.iter().all(|(n, _)| n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')));
    }
}
