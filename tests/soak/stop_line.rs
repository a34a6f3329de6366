//! What the fault, hostile-client and soak tests read from a `dc_server`
//! they run with [`crate::dc_server::DcServer`]: the counts of its stop line.
#![allow(dead_code)] // each test binary uses a part

/// The counts of dc_server's last line on a clean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopCounts {
    pub operations: u64,
    pub connections: u64,
    pub sessions: u64,
    pub evicted: u64,
    pub expired: u64,
}

/// Parses `Info, stopped: operations N, connections N, sessions N,
/// evicted N, expired N`, which must be the last line of `stderr`.
pub fn stop_counts(stderr: &str) -> StopCounts {
    let last = stderr.lines().last().unwrap_or("");
    let body = last
        .strip_prefix("Info, stopped: ")
        .unwrap_or_else(|| panic!("last line is not the stop line: {stderr:?}"));
    let mut counts = StopCounts::default();
    for part in body.split(", ") {
        let (name, value) = part
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad stop line {last:?}"));
        let value: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad number in {last:?}"));
        match name {
            "operations" => counts.operations = value,
            "connections" => counts.connections = value,
            "sessions" => counts.sessions = value,
            "evicted" => counts.evicted = value,
            "expired" => counts.expired = value,
            _ => panic!("unknown count {name:?} in {last:?}"),
        }
    }
    counts
}
