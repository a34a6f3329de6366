//! `dc_admin top`: a live view of a running server, one line per refresh
//! (every second by default), in the manner of `redis-cli --stat`: the
//! sessions stored and their bytes, operations per second by kind, the GET
//! hit ratio, connections open and accepted per second, evictions and
//! expirations per second.
//!
//! Each refresh opens its own connection to the admin socket, reads the
//! counters (`STATS`) and closes it, since the server serves one admin
//! connection at a time: a `top` left running keeps no one else out.
//! The rates are the differences between two readings divided by the time
//! between them, as the server's own uptime counter measures it.

use super::AdminError;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// The counters of one reading, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading(BTreeMap<String, u64>);

impl Reading {
    /// A reading from the `name value` pairs of `STATS`.
    pub fn new(pairs: Vec<(String, u64)>) -> Reading {
        Reading(pairs.into_iter().collect())
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    /// The sum of the counters whose names start with `prefix`, if any do.
    fn sum(&self, prefix: &str) -> Option<u64> {
        let mut found = false;
        let total = self
            .0
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .inspect(|_| found = true)
            .fold(0u64, |acc, (_, v)| acc.saturating_add(*v));
        found.then_some(total)
    }
}

/// The operation kinds shown, with the prefix of their counters.
const KINDS: [(&str, &str); 4] = [
    ("add", "ops.add."),
    ("get", "ops.get."),
    ("remove", "ops.remove."),
    ("have", "ops.have."),
];

/// A new header is printed every this many lines.
pub const HEADER_EVERY: u64 = 20;

/// The two header lines.
pub fn header() -> String {
    let text = format!(
        "{:>9} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>5} | {:>6} {:>7} | {:>7} {:>7}\n\
         {:>9} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>5} | {:>6} {:>7} | {:>7} {:>7}\n",
        "sessions",
        "data",
        "add/s",
        "get/s",
        "remove/s",
        "have/s",
        "total/s",
        "hit%",
        "conns",
        "new/s",
        "evict/s",
        "expire/s",
        "",
        "(bytes)",
        "",
        "",
        "",
        "",
        "",
        "(get)",
        "open",
        "",
        "",
        "",
    );
    text.lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

/// A count of bytes in at most six characters: `812`, `9.0K`, `1.2M`, ...
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

/// `cur - prev` per second over `secs`, or "-" when either is unknown.
fn rate(prev: Option<u64>, cur: Option<u64>, secs: f64) -> String {
    match (prev, cur) {
        // A counter that went down means the server restarted between
        // readings: the new count is what happened since.
        (Some(p), Some(c)) => {
            let d = if c >= p { c - p } else { c };
            format!("{:.0}", d as f64 / secs)
        }
        _ => "-".into(),
    }
}

fn value(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The line for the interval from `prev` to `cur`. The interval's length is
/// taken from the server's `uptime.ms`, else from `fallback`.
pub fn line(prev: &Reading, cur: &Reading, fallback: Duration) -> String {
    let secs = match (prev.get("uptime.ms"), cur.get("uptime.ms")) {
        (Some(p), Some(c)) if c > p => (c - p) as f64 / 1000.0,
        _ => fallback.as_secs_f64(),
    }
    .max(0.001);
    let ops: Vec<String> = KINDS
        .iter()
        .map(|(_, prefix)| rate(prev.sum(prefix), cur.sum(prefix), secs))
        .collect();
    let total = rate(prev.sum("ops."), cur.sum("ops."), secs);
    let delta = |name: &str| match (prev.get(name), cur.get(name)) {
        (Some(p), Some(c)) => Some(if c >= p { c - p } else { c }),
        _ => None,
    };
    let hit = match (delta("get.hits"), delta("get.misses")) {
        (Some(h), Some(m)) if h + m > 0 => format!("{:.1}", 100.0 * h as f64 / (h + m) as f64),
        _ => "-".into(),
    };
    format!(
        "{:>9} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8} | {:>5} | {:>6} {:>7} | {:>7} {:>7}\n",
        value(cur.get("sessions")),
        cur.get("bytes").map_or_else(|| "-".into(), human_bytes),
        ops[0],
        ops[1],
        ops[2],
        ops[3],
        total,
        hit,
        value(cur.get("connections.open")),
        rate(
            prev.get("connections.accepted"),
            cur.get("connections.accepted"),
            secs
        ),
        rate(prev.get("evictions"), cur.get("evictions"), secs),
        rate(prev.get("expirations"), cur.get("expirations"), secs),
    )
}

/// Reads the counters `count` + 1 times (for ever when `count` is None),
/// `interval` apart, and writes a line for each interval to `out`, with a
/// header before the first line and every [`HEADER_EVERY`] lines. `read`
/// takes one reading (a fresh connection each time); `sleep` waits.
pub fn run(
    read: &mut dyn FnMut() -> Result<Reading, AdminError>,
    sleep: &mut dyn FnMut(Duration),
    interval: Duration,
    count: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let output = |source| AdminError::Output {
        what: "the output".into(),
        source,
    };
    let mut prev = read()?;
    let mut shown = 0u64;
    while count.is_none_or(|c| shown < c) {
        sleep(interval);
        let cur = read()?;
        if shown % HEADER_EVERY == 0 {
            out.write_all(header().as_bytes()).map_err(output)?;
        }
        out.write_all(line(&prev, &cur, interval).as_bytes())
            .map_err(output)?;
        out.flush().map_err(output)?;
        prev = cur;
        shown += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(pairs: &[(&str, u64)]) -> Reading {
        Reading::new(pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect())
    }

    fn columns(line: &str) -> Vec<String> {
        line.split_whitespace()
            .filter(|w| *w != "|")
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_line_gives_rates_over_the_servers_own_interval() {
        let prev = reading(&[
            ("uptime.ms", 10_000),
            ("sessions", 5),
            ("bytes", 100),
            ("ops.add.ok", 10),
            ("ops.add.exists", 2),
            ("ops.get.ok", 40),
            ("ops.get.miss", 10),
            ("ops.remove.ok", 0),
            ("ops.have.ok", 0),
            ("get.hits", 40),
            ("get.misses", 10),
            ("connections.open", 3),
            ("connections.accepted", 100),
            ("evictions", 0),
            ("expirations", 7),
        ]);
        // Two seconds later by the server's clock, whatever the caller
        // thought the interval was.
        let cur = reading(&[
            ("uptime.ms", 12_000),
            ("sessions", 25),
            ("bytes", 3 * 1024 * 1024 / 2),
            ("ops.add.ok", 30),
            ("ops.add.exists", 2),
            ("ops.get.ok", 70),
            ("ops.get.miss", 30),
            ("ops.remove.ok", 4),
            ("ops.have.ok", 2),
            ("get.hits", 70),
            ("get.misses", 30),
            ("connections.open", 4),
            ("connections.accepted", 110),
            ("evictions", 8),
            ("expirations", 7),
        ]);
        let got = columns(&line(&prev, &cur, Duration::from_secs(1)));
        // sessions, data, add/s, get/s, remove/s, have/s, total/s, hit%,
        // conns open, new/s, evict/s, expire/s
        assert_eq!(
            got,
            ["25", "1.5M", "10", "25", "2", "1", "38", "60.0", "4", "5", "4", "0"]
        );
        assert_eq!(
            columns(&header()).len(),
            columns(&line(&prev, &cur, Duration::from_secs(1))).len() + 3
        );
    }

    #[test]
    fn unknown_counters_and_idle_intervals_show_a_dash() {
        let prev = reading(&[("uptime.ms", 1000), ("get.hits", 3), ("get.misses", 1)]);
        let cur = reading(&[("uptime.ms", 2000), ("get.hits", 3), ("get.misses", 1)]);
        let got = columns(&line(&prev, &cur, Duration::from_secs(1)));
        assert_eq!(
            got,
            ["-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
        );
    }

    #[test]
    fn a_restart_between_readings_counts_from_zero() {
        let prev = reading(&[("uptime.ms", 50_000), ("ops.get.ok", 1000)]);
        let cur = reading(&[("uptime.ms", 1_000), ("ops.get.ok", 30)]);
        // The uptime went back: the caller's interval is used instead.
        let got = columns(&line(&prev, &cur, Duration::from_secs(2)));
        assert_eq!(got[3], "15");
    }

    #[test]
    fn bytes_are_short() {
        for (n, s) in [
            (0, "0"),
            (1023, "1023"),
            (1024, "1.0K"),
            (9 * 1024 + 100, "9.1K"),
            (200 * 1024, "200K"),
            (5 << 30, "5.0G"),
        ] {
            assert_eq!(human_bytes(n), s, "{n}");
        }
    }

    #[test]
    fn run_reads_count_plus_one_times_and_repeats_the_header() {
        let mut n = 0u64;
        let mut read = || {
            n += 1;
            Ok(reading(&[("uptime.ms", n * 1000), ("ops.get.ok", n * 10)]))
        };
        let mut slept = Vec::new();
        let mut out = Vec::new();
        run(
            &mut read,
            &mut |d| slept.push(d),
            Duration::from_millis(250),
            Some(HEADER_EVERY + 1),
            &mut out,
        )
        .unwrap();
        assert_eq!(slept.len() as u64, HEADER_EVERY + 1);
        assert!(slept.iter().all(|d| *d == Duration::from_millis(250)));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("sessions").count(), 2, "{text}");
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("        -"))
            .collect();
        assert_eq!(rows.len() as u64, HEADER_EVERY + 1, "{text}");
        assert!(rows.iter().all(|r| columns(r)[3] == "10"), "{text}");
    }

    #[test]
    fn a_failed_reading_ends_the_run() {
        let mut first = true;
        let mut read = || {
            if std::mem::take(&mut first) {
                Ok(Reading::default())
            } else {
                Err(AdminError::Closed)
            }
        };
        let mut out = Vec::new();
        let err = run(
            &mut read,
            &mut |_| {},
            Duration::from_secs(1),
            None,
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(err, AdminError::Closed));
        assert!(out.is_empty());
    }
}
