//! Scenario 9: a cache that goes silent under a handshake-like load.
//!
//! 8 client processes, each a TLS server's worth of handshakes: a GET of a
//! session, then an ADD of a new one, a connection per operation (flags 0),
//! then 1 ms for the rest of the handshake, with the library's default
//! timeout and back-off, for 20 s. dc_server is
//! stopped with SIGSTOP from 5 s to 12 s (its kernel still accepts
//! connections; nothing answers) and continued then. Each process reports
//! the three phases (healthy, silent, back): operations per second, how
//! many succeeded, latency percentiles; while silent, the p99 of the calls
//! after the process's first timeout, and its timeouts against what the
//! breaker allows (the first one, and one per failed probe); once back, how
//! long until its first success.

use crate::matrix::Config;
use crate::procs::{self, me, Cpu, KeyValues, Proc};
use crate::report::{Figure, Report, Row};
use crate::wire::{self, Rng};
use distcache::internals::latency::Histogram;
use distcache::Backoff;
use distcache::NalError;
use distcache::{Client, ClientError, Flags};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROCESSES: usize = 8;
const SILENT_AT: u64 = 5_000;
const BACK_AT: u64 = 12_000;
const END_AT: u64 = 20_000;
/// Family of the sessions this scenario adds.
const FAMILY: u8 = 9;
/// What the rest of a handshake takes, between two of a process.
const HANDSHAKE: Duration = Duration::from_millis(1);

/// Milliseconds since the epoch: a clock the conductor and its client
/// processes share.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits until the wall clock reads `ms`.
fn sleep_until(ms: u64) {
    let now = wall_ms();
    if ms > now {
        std::thread::sleep(Duration::from_millis(ms - now));
    }
}

/// One phase as a client process saw it.
#[derive(Default)]
struct Phase {
    latency: Histogram,
    ok: u64,
    timeouts: u64,
}

/// `silent-client addr=ADDR t0=MS seed=K [breaker=0]`: the handshake loop
/// from wall clock `t0` to `t0` + 20 s (with `breaker=0`, the breaker off);
/// prints the phases as `key=value`.
pub fn client(kv: &KeyValues) -> Result<(), String> {
    let addr = kv.str("addr")?;
    let t0: u64 = kv.num("t0")?;
    let seed: u64 = kv.num("seed")?;
    let c = Client::new(addr, Flags::empty()).map_err(|e| e.to_string())?;
    if kv.num_or("breaker", 1u8)? == 0 {
        c.set_backoff(Backoff::OFF);
    }
    let mut rng = Rng::new(seed);
    let mut phases: [Phase; 3] = Default::default();
    // While silent: the calls that began after this process's first
    // timeout ended.
    let mut after_first = Histogram::new();
    let mut first_timeout_end: Option<u64> = None;
    let mut back_after: Option<u64> = None;
    // The back-off the address had when the server came back.
    let mut backoff_at_back: Option<Duration> = None;
    let mut n = 0u64;
    sleep_until(t0);
    while wall_ms() < t0 + END_AT {
        n += 1;
        let get_id = wire::id(FAMILY, rng.below(1 << 20));
        let add_id = wire::id(FAMILY, (seed << 40) | n);
        for add in [false, true] {
            let start_ms = wall_ms() - t0;
            let start = Instant::now();
            let result = if add {
                match c.add(&add_id, wire::data(n), wire::TIMEOUT_MS) {
                    Err(ClientError::Refused(_)) => Ok(()),
                    other => other,
                }
            } else {
                c.get(&get_id).map(drop)
            };
            let took = start.elapsed();
            let end_ms = wall_ms() - t0;
            let p = match start_ms {
                t if t < SILENT_AT => 0,
                t if t < BACK_AT => 1,
                _ => 2,
            };
            if p == 2 && backoff_at_back.is_none() {
                backoff_at_back = Some(c.health().backoff);
            }
            let phase = &mut phases[p];
            phase.latency.record(took);
            match result {
                Ok(()) => {
                    phase.ok += 1;
                    if p == 2 && back_after.is_none() {
                        back_after = Some(end_ms - BACK_AT);
                    }
                }
                Err(ClientError::Network(NalError::TimedOut)) => {
                    phase.timeouts += 1;
                    if p == 1 && first_timeout_end.is_none() {
                        first_timeout_end = Some(end_ms);
                    }
                }
                Err(_) => {}
            }
            if p == 1 && first_timeout_end.is_some_and(|t| start_ms >= t) {
                after_first.record(took);
            }
        }
        std::thread::sleep(HANDSHAKE);
    }
    let us = |h: &Histogram, q: f64| h.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e6);
    let mut line = String::new();
    for (name, phase) in ["healthy", "silent", "back"].iter().zip(&phases) {
        line.push_str(&format!(
            "{name}_ops={} {name}_ok={} {name}_timeouts={} {name}_p50_us={:.1} {name}_p99_us={:.1} \
             {name}_p999_us={:.1} ",
            phase.latency.count(),
            phase.ok,
            phase.timeouts,
            us(&phase.latency, 0.50),
            us(&phase.latency, 0.99),
            us(&phase.latency, 0.999),
        ));
    }
    let b = distcache::internals::client::breaker_stats();
    println!(
        "{line}silent_after_first_p99_us={:.1} back_after_ms={} backoff_at_back_ms={} trips={} \
         failed_probes={} recoveries={}",
        us(&after_first, 0.99),
        back_after.map_or(-1, |v| v as i64),
        backoff_at_back.map_or(0, |d| d.as_millis()),
        b.trips,
        b.failed_probes,
        b.recoveries
    );
    Ok(())
}

/// Sends `signal` (a `kill -s` name) to `pid`.
fn signal(pid: u32, name: &str) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -s {name}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("kill -s {name} {pid}: {status}"))
}

/// The conductor's part: one 20 s run with the breaker, and one without
/// it for comparison (the phases are the measurement; `BENCH_RUNS` and
/// `BENCH_SECS` do not apply).
pub fn run(cfg: &Config, report: &mut Report) -> Result<(), String> {
    run_once(cfg, report, true)?;
    run_once(cfg, report, false)
}

fn run_once(cfg: &Config, report: &mut Report, breaker: bool) -> Result<(), String> {
    let unix = cfg.dir.path().join(format!("silent-{breaker}.sock"));
    let args = vec![
        "-listen".to_string(),
        format!("UNIX:{}", unix.display()),
        "-sessions".to_string(),
        "1000000".to_string(),
    ];
    let server_bin = std::path::Path::new(env!("CARGO_BIN_EXE_dc_server"));
    let mut server = Proc::spawn("dc_server (scenario 9)", Cpu::Any, server_bin, &args)?;
    server.wait_unix(&unix)?;
    let addr = format!("UNIX:{}", unix.display());
    let t0 = wall_ms() + 1000;
    let label = if breaker { "breaker on" } else { "breaker off" };
    eprintln!(
        "scenario 9: {PROCESSES} processes for 20 s, dc_server silent from 5 s to 12 s, {label}"
    );
    let limit = Duration::from_millis(END_AT + 60_000);
    let lines = std::thread::scope(|s| -> Result<Vec<KeyValues>, String> {
        let clients: Vec<_> = (0..PROCESSES)
            .map(|i| {
                let args = vec![
                    "silent-client".to_string(),
                    format!("addr={addr}"),
                    format!("t0={t0}"),
                    format!("seed={}", i + 1),
                    format!("breaker={}", u8::from(breaker)),
                ];
                s.spawn(move || procs::run(Cpu::Any, &me(), &args, limit))
            })
            .collect();
        sleep_until(t0 + SILENT_AT);
        let stopped = signal(server.pid(), "STOP");
        sleep_until(t0 + BACK_AT);
        let continued = signal(server.pid(), "CONT");
        let lines = clients
            .into_iter()
            .map(|c| {
                c.join()
                    .map_err(|_| "a client thread panicked".to_string())?
            })
            .collect::<Result<Vec<_>, _>>();
        stopped?;
        continued?;
        lines
    })?;
    drop(server);

    let sum = |key: &str| -> Result<f64, String> {
        lines
            .iter()
            .map(|kv| kv.num::<f64>(key))
            .sum::<Result<f64, String>>()
    };
    let max = |key: &str| -> Result<f64, String> {
        lines
            .iter()
            .map(|kv| kv.num::<f64>(key))
            .try_fold(f64::NEG_INFINITY, |m, v| v.map(|v| m.max(v)))
    };
    let phases = [
        ("healthy", "healthy, 0–5 s", SILENT_AT),
        ("silent", "silent, 5–12 s", BACK_AT - SILENT_AT),
        ("back", "back, 12–20 s", END_AT - BACK_AT),
    ];
    for (key, phase, ms) in phases {
        let secs = ms as f64 / 1000.0;
        let ops = sum(&format!("{key}_ops"))?;
        let ok = sum(&format!("{key}_ok"))?;
        let mut row = Row::new(
            9,
            format!("{PROCESSES} processes, GET then ADD, flags 0, {label}: {phase}"),
            Figure::new(vec![ops / secs]),
            None,
            None,
        );
        row.latency = Some((
            max(&format!("{key}_p50_us"))?,
            max(&format!("{key}_p99_us"))?,
            max(&format!("{key}_p999_us"))?,
        ));
        row.note = format!(
            "ops/s counts failures too; {:.0} succeeded/s; {:.0} timeouts; latencies the \
             highest of the processes",
            ok / secs,
            sum(&format!("{key}_timeouts"))?
        );
        if key == "silent" && breaker {
            let p99 = max("silent_after_first_p99_us")?;
            // Each timeout is the first one or a failed probe: one per
            // back-off period.
            let within = lines.iter().all(|kv| {
                let t = kv.num::<u64>("silent_timeouts").unwrap_or(u64::MAX);
                let probes = kv.num::<u64>("failed_probes").unwrap_or(0);
                t <= 1 + probes
            });
            row.note.push_str(&format!(
                "; p99 after each process's first timeout {p99:.0} µs (≤ 1 ms: {}); \
                 timeouts per process at most one per back-off period: {}",
                yes(p99 <= 1000.0),
                yes(within)
            ));
        }
        if key == "back" && breaker {
            // Found again within the back-off it had then and a second.
            let within = lines.iter().all(|kv| {
                let after = kv.num::<i64>("back_after_ms").unwrap_or(-1);
                let backoff = kv.num::<i64>("backoff_at_back_ms").unwrap_or(0);
                (0..=backoff + 1000).contains(&after)
            });
            row.note.push_str(&format!(
                "; first success {:.0} ms after the server came back (slowest process), \
                 back-off then {:.0} ms; within the back-off + 1 s: {}",
                max("back_after_ms")?,
                max("backoff_at_back_ms")?,
                yes(within)
            ));
        }
        report.push(row);
    }
    Ok(())
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
