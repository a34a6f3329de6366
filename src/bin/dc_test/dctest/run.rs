//! The test run: sessions generated up front, one thread per client, each
//! checking its answers against its own sessions' model.

use super::model::{Answer, Op, Session, SHORTEST_GETTABLE};
use super::options::Options;
use super::rng::{fresh_seed, Rng};
use distcache::internals::client::{breaker_stats, BreakerStats};
use distcache::internals::latency::Histogram;
use distcache::internals::proto::Status;
use distcache::{Client, ClientError, Flags};
use std::collections::HashSet;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Shortest and longest test session ids (the original's 10..63 bytes).
const ID_LEN: (u64, u64) = (10, 63);

/// A run that completed with every answer right.
#[derive(Debug)]
pub struct Report {
    /// Operations performed and checked, all clients together.
    pub ops: u64,
    /// Clients that ran.
    pub clients: usize,
    /// Whether each client kept one connection.
    pub persistent: bool,
    /// From the first operation to the last answer.
    pub elapsed: Duration,
    /// The latency of every operation.
    pub latency: Histogram,
    /// What the client library's breaker did during the run.
    pub breaker: BreakerStats,
}

/// A wrong answer or a failed operation.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The client (0-based) that saw it.
    pub client: usize,
    /// Its operations checked before this one.
    pub after: u64,
    /// What went wrong.
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {}, operation {}: {}",
            self.client + 1,
            self.after + 1,
            self.what
        )
    }
}

/// Why a run did not complete.
#[derive(Debug, Error)]
pub enum RunError {
    /// A client could not be made (a persistent connection could not open).
    #[error("cannot connect to {address}: {source}")]
    Start {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// At least one answer was wrong or an operation failed.
    #[error("{} wrong answer(s) after {succeeded} correct operations", failures.len())]
    Failed {
        /// Operations checked right before the run stopped, all clients.
        succeeded: u64,
        /// Each client's failure.
        failures: Vec<Failure>,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Add(_) => "ADD",
            Op::Remove => "REMOVE",
            Op::Get => "GET",
            Op::Have => "HAVE",
        })
    }
}

/// What the clients share while they run.
struct Shared {
    stop: AtomicBool,
    done: AtomicU64,
    progress: u64,
    terminal: bool,
    start: Instant,
}

impl Shared {
    /// Counts one operation, and reports the count every `progress`.
    fn count(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.progress == 0 || n % self.progress != 0 {
            return;
        }
        let mut err = std::io::stderr().lock();
        // Progress output is best effort: a closed stderr does not stop a test.
        let _ = if self.terminal {
            let secs = self.start.elapsed().as_secs_f64().max(1e-9);
            write!(
                err,
                "\rInfo, total operations = {n:7}  ({:.0} ops/s)",
                n as f64 / secs
            )
        } else {
            writeln!(err, "Info, total operations = {n:7}")
        };
        let _ = err.flush();
    }
}

/// Makes `per_client` sessions for each of `clients` clients, every id
/// distinct, so that no two clients' models ever touch the same session.
fn make_sessions(o: &Options, rng: &mut Rng) -> Vec<Vec<Session>> {
    let mut ids = HashSet::new();
    (0..o.clients)
        .map(|_| {
            (0..o.sessions)
                .map(|_| {
                    let id = loop {
                        let mut id =
                            vec![0; (ID_LEN.0 + rng.below(ID_LEN.1 - ID_LEN.0 + 1)) as usize];
                        rng.fill(&mut id);
                        if ids.insert(id.clone()) {
                            break id;
                        }
                    };
                    let spread = (o.datamax - o.datamin) as u64;
                    let mut data = vec![0; o.datamin + rng.below(spread) as usize];
                    rng.fill(&mut data);
                    Session::new(id, data)
                })
                .collect()
        })
        .collect()
}

/// The timeout of one ADD, in milliseconds: `timeout` seconds give or take
/// up to `timevar`.
fn add_timeout(o: &Options, rng: &mut Rng) -> u32 {
    let base = 1000 * (o.timeout - o.timevar);
    // Both at most 3600 s, so this stays below 10.8 million.
    base + rng.below(2000 * u64::from(o.timevar)) as u32
}

/// Carries out `op` and puts the reply in the model's terms; `Err` is a
/// failed transaction (the network, or a reply that makes no sense).
fn perform(client: &Client, s: &Session, op: Op) -> Result<Answer, ClientError> {
    match op {
        Op::Add(ms) => match client.add(&s.id, &s.data, ms) {
            Ok(()) => Ok(Answer::Stored),
            Err(ClientError::Refused(Status::AddMatchingSession)) => Ok(Answer::Exists),
            Err(e) => Err(e),
        },
        Op::Remove => client.remove(&s.id).map(Answer::Found),
        Op::Have => client.have(&s.id).map(Answer::Found),
        Op::Get => match client.get(&s.id) {
            Ok(Some(d)) => Ok(Answer::Data(d)),
            Ok(None) => Ok(Answer::Miss),
            // The client refuses replies under 5 bytes; the model decides
            // whether this session could have given one.
            Err(ClientError::UnexpectedReply(_)) if s.data.len() < SHORTEST_GETTABLE => {
                Ok(Answer::ShortReply)
            }
            Err(e) => Err(e),
        },
    }
}

struct Outcome {
    succeeded: u64,
    latency: Histogram,
    failure: Option<Failure>,
}

/// One client's run.
fn client_run(
    index: usize,
    client: &Client,
    mut sessions: Vec<Session>,
    mut rng: Rng,
    o: &Options,
    shared: &Shared,
) -> Outcome {
    let mut out = Outcome {
        succeeded: 0,
        latency: Histogram::new(),
        failure: None,
    };
    while out.succeeded < o.ops && !shared.stop.load(Ordering::Relaxed) {
        let s = rng.below(sessions.len() as u64) as usize;
        let op = match rng.below(4) {
            0 => Op::Add(add_timeout(o, &mut rng)),
            1 => Op::Remove,
            2 => Op::Get,
            _ => Op::Have,
        };
        let session = &mut sessions[s];
        let sent = Instant::now();
        let answer = perform(client, session, op);
        let received = Instant::now();
        out.latency.record(received - sent);
        let checked = answer
            .map_err(|e| format!("{op} of session {} failed: {e}", s + 1))
            .and_then(|a| {
                session
                    .check(op, &a, sent, received)
                    .map_err(|e| format!("session {}: {e}", s + 1))
            });
        if let Err(what) = checked {
            shared.stop.store(true, Ordering::Relaxed);
            out.failure = Some(Failure {
                client: index,
                after: out.succeeded,
                what,
            });
            break;
        }
        out.succeeded += 1;
        shared.count();
    }
    out
}

/// Runs the test as `o` says, writing the original's Info lines to `info`
/// (standard error in the tool).
pub fn run(o: &Options, info: &mut dyn Write) -> Result<Report, RunError> {
    let flags = if o.persistent {
        Flags::PERSISTENT
    } else {
        Flags::empty()
    };
    let clients = (0..o.clients)
        .map(|_| Client::new(&o.connect, flags))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| RunError::Start {
            address: o.connect.clone(),
            source,
        })?;
    let seed = o.seed.unwrap_or_else(fresh_seed);
    let mut rng = Rng::new(seed);
    let all_sessions = make_sessions(o, &mut rng);
    // Info lines are best effort, as the progress lines.
    let _ = writeln!(info, "Info, random seed {seed} (repeat with -seed {seed})");
    let _ = writeln!(
        info,
        "Info, {} sessions generated, will run {} random tests",
        o.sessions * o.clients,
        o.ops * o.clients as u64
    );
    let shared = Shared {
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        progress: o.progress,
        terminal: std::io::stderr().is_terminal(),
        start: Instant::now(),
    };
    let rngs: Vec<Rng> = (0..o.clients).map(|i| rng.fork(i as u64)).collect();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .zip(all_sessions)
            .zip(rngs)
            .enumerate()
            .map(|(i, ((client, sessions), rng))| {
                let shared = &shared;
                scope.spawn(move || client_run(i, client, sessions, rng, o, shared))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join().unwrap_or_else(|_| Outcome {
                    succeeded: 0,
                    latency: Histogram::new(),
                    failure: Some(Failure {
                        client: i,
                        after: 0,
                        what: "the client thread panicked".into(),
                    }),
                })
            })
            .collect()
    });
    let elapsed = shared.start.elapsed();
    if shared.terminal && o.progress > 0 && shared.done.load(Ordering::Relaxed) >= o.progress {
        let _ = writeln!(info);
    }
    let succeeded = outcomes.iter().map(|r| r.succeeded).sum();
    let mut latency = Histogram::new();
    let mut failures = Vec::new();
    for r in outcomes {
        latency.merge(&r.latency);
        failures.extend(r.failure);
    }
    if !failures.is_empty() {
        for f in &failures {
            let _ = writeln!(info, "Error, {f}");
        }
        let _ = writeln!(
            info,
            "Info, {succeeded} tests succeeded before the first failure"
        );
        let _ = writeln!(info, "Info, breaker: {}", breaker_line(&breaker_stats()));
        return Err(RunError::Failed {
            succeeded,
            failures,
        });
    }
    let _ = writeln!(info, "Info, all tests complete");
    Ok(Report {
        ops: succeeded,
        clients: o.clients,
        persistent: o.persistent,
        elapsed,
        latency,
        breaker: breaker_stats(),
    })
}

/// The breaker's counts as dc_test prints them.
fn breaker_line(b: &BreakerStats) -> String {
    format!(
        "{} marked down, {} failed probes, {} marked up, {} calls failed at once",
        b.trips, b.failed_probes, b.recoveries, b.fast_failures
    )
}

fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} us", d.as_secs_f64() * 1e6),
    )
}

impl fmt::Display for Report {
    /// The results as the tool prints them on standard output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        };
        writeln!(
            f,
            "operations  {} in {secs:.3} s ({} client{}, {})",
            self.ops,
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            if self.persistent {
                "persistent connections"
            } else {
                "a connection per operation"
            }
        )?;
        writeln!(f, "throughput  {rate:.0} ops/s")?;
        let h = &self.latency;
        let max = (h.count() > 0).then(|| h.max());
        writeln!(
            f,
            "latency     p50 {}  p90 {}  p99 {}  max {}",
            micros(h.quantile(0.50)),
            micros(h.quantile(0.90)),
            micros(h.quantile(0.99)),
            micros(max)
        )?;
        writeln!(f, "breaker     {}", breaker_line(&self.breaker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_follow_the_bounds_and_never_share_an_id() {
        let o = Options {
            sessions: 512,
            clients: 8,
            datamin: 4,
            datamax: 9,
            ..Options::default()
        };
        let all = make_sessions(&o, &mut Rng::new(1));
        assert_eq!(all.len(), 8);
        let mut ids = HashSet::new();
        let mut lens = HashSet::new();
        for s in all.iter().flatten() {
            assert!((10..=63).contains(&s.id.len()));
            assert!((4..9).contains(&s.data.len()));
            lens.insert(s.data.len());
            assert!(ids.insert(s.id.clone()));
        }
        assert_eq!(lens.len(), 5, "every length in [4, 9) occurs");
        let fixed = Options {
            datamin: 7,
            datamax: 7,
            ..Options::default()
        };
        assert!(make_sessions(&fixed, &mut Rng::new(2))[0]
            .iter()
            .all(|s| s.data.len() == 7));
    }

    #[test]
    fn add_timeouts_stay_in_the_window() {
        let o = Options {
            timeout: 10,
            timevar: 3,
            ..Options::default()
        };
        let mut rng = Rng::new(4);
        for _ in 0..1000 {
            assert!((7000..13000).contains(&add_timeout(&o, &mut rng)));
        }
        let exact = Options {
            timeout: 2,
            timevar: 0,
            ..Options::default()
        };
        assert_eq!(add_timeout(&exact, &mut rng), 2000);
    }
}
