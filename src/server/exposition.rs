//! A [`Report`] in the Prometheus text exposition format, version 0.0.4.

use super::metrics::{command_name, Outcome, LATENCY_BOUNDS_NS};
use super::report::Report;
use crate::proto::Command;
use std::fmt::Write;

/// The `Content-Type` of [`exposition`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Seconds, written the way Prometheus reads floats.
fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

struct Text(String);

impl Text {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        self.sample(name, "", value);
    }
}

/// The metrics page: every figure of `report`, named `distcache_...`.
pub fn exposition(report: &Report) -> String {
    let mut t = Text(String::with_capacity(8192));
    t.single(
        "distcache_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        report.uptime_ms as f64 / 1e3,
    );
    t.single(
        "distcache_start_time_seconds",
        "gauge",
        "When the server started, in seconds since the Unix epoch.",
        report.start_time,
    );
    t.single(
        "distcache_sessions",
        "gauge",
        "Sessions stored.",
        report.sessions,
    );
    if let Some(b) = report.data_bytes {
        t.single(
            "distcache_session_bytes",
            "gauge",
            "Bytes of session data stored (ids not counted).",
            b,
        );
    }
    t.single(
        "distcache_evictions_total",
        "counter",
        "Sessions evicted to make room for new ones.",
        report.drops.evicted,
    );
    t.single(
        "distcache_expirations_total",
        "counter",
        "Sessions dropped because their lifetime ended.",
        report.drops.expired,
    );
    t.single(
        "distcache_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        report.connections_accepted,
    );
    t.single(
        "distcache_connections_open",
        "gauge",
        "Client connections being served.",
        report.connections_open,
    );
    t.single(
        "distcache_protocol_errors_total",
        "counter",
        "Connections closed because they sent bytes that are not valid requests.",
        report.protocol_errors,
    );
    t.header(
        "distcache_operations_total",
        "counter",
        "Requests answered, by operation and result.",
    );
    for (c, o, n) in &report.operations {
        let labels = format!("op=\"{}\",result=\"{}\"", command_name(*c), o.name());
        t.sample("distcache_operations_total", &labels, n);
    }
    t.single(
        "distcache_get_hits_total",
        "counter",
        "GET requests that found their session.",
        report.count(Command::Get, Outcome::Ok),
    );
    t.single(
        "distcache_get_misses_total",
        "counter",
        "GET requests that found no session.",
        report.count(Command::Get, Outcome::Miss),
    );
    let name = "distcache_request_duration_seconds";
    t.header(
        name,
        "histogram",
        "Time the server took to decode and carry out a request, by operation.",
    );
    for (c, l) in &report.latency {
        let op = command_name(*c);
        let mut cumulative = 0;
        for (i, n) in l.counts.iter().enumerate() {
            cumulative += n;
            let le = LATENCY_BOUNDS_NS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |&b| seconds(b));
            let labels = format!("op=\"{op}\",le=\"{le}\"");
            t.sample(&format!("{name}_bucket"), &labels, cumulative);
        }
        let labels = format!("op=\"{op}\"");
        t.sample(&format!("{name}_sum"), &labels, seconds(l.sum_ns));
        t.sample(&format!("{name}_count"), &labels, cumulative);
    }
    if let Some(b) = &report.backend {
        t.single(
            "distcache_backend_requests_total",
            "counter",
            "Requests sent to the store's backend (Redis).",
            b.requests,
        );
        t.single(
            "distcache_backend_errors_total",
            "counter",
            "Backend requests answered with an error, or that could not be sent.",
            b.errors,
        );
        t.single(
            "distcache_backend_timeouts_total",
            "counter",
            "Backend requests not answered within the store's timeout.",
            b.timeouts,
        );
        t.single(
            "distcache_backend_redirects_total",
            "counter",
            "Backend requests that a Redis Cluster sent to another node (MOVED, ASK).",
            b.redirects,
        );
        t.single(
            "distcache_backend_latency_seconds_sum",
            "counter",
            "Seconds the answered backend requests took, summed.",
            seconds(b.latency_sum_ns),
        );
    }
    t.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryStore;
    use crate::server::{Clock, Stats};
    use std::time::Duration;

    #[test]
    fn histograms_are_cumulative_and_end_at_the_count() {
        let stats = Stats::default();
        let m = stats.metrics();
        m.record(Command::Have, Outcome::Ok, Duration::from_micros(1));
        m.record(Command::Have, Outcome::Miss, Duration::from_millis(3));
        m.record(Command::Have, Outcome::Miss, Duration::from_secs(2));
        let store = MemoryStore::new(1);
        let text = exposition(&Report::gather(&stats, &store, &Clock::start()));
        let has = |line: &str| text.lines().any(|l| l == line);
        let b = "distcache_request_duration_seconds_bucket";
        assert!(
            has(&format!("{b}{{op=\"have\",le=\"0.000001\"}} 1")),
            "{text}"
        );
        assert!(
            has(&format!("{b}{{op=\"have\",le=\"0.0025\"}} 1")),
            "{text}"
        );
        assert!(has(&format!("{b}{{op=\"have\",le=\"0.005\"}} 2")), "{text}");
        assert!(has(&format!("{b}{{op=\"have\",le=\"1\"}} 2")), "{text}");
        assert!(has(&format!("{b}{{op=\"have\",le=\"+Inf\"}} 3")), "{text}");
        assert!(has(
            "distcache_request_duration_seconds_count{op=\"have\"} 3"
        ));
        assert!(has(
            "distcache_request_duration_seconds_sum{op=\"have\"} 2.003001"
        ));
        assert!(has(
            "distcache_operations_total{op=\"have\",result=\"miss\"} 2"
        ));
        assert!(has("distcache_sessions 0"));
        assert!(has("# TYPE distcache_request_duration_seconds histogram"));
    }
}
