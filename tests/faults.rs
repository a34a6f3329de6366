//! The client's fault matrix: every fault a server or the path to it can
//! show, over a UNIX socket and TCP, with each kind of connection policy.
//!
//! A case is `<fault>::<transport>_<flags>`. Each one stores a 30000-byte
//! session through a real `dc_server`, brings on the fault, makes all four
//! calls (ADD, GET, HAVE, REMOVE) while it lasts, ends it, and then checks
//! the calls that follow. Every call must return within its timeout plus
//! one second, fail while the fault lasts (with the error the fault
//! explains), and return the right data once the server is back: the
//! session stored before (unless the server was restarted, which empties
//! it) and a full round trip. The only call allowed to fail after the
//! server is back is the one the flags promise: the first call on a
//! persistent connection without RETRY after a restart.
//!
//! Faults on the path are made by a proxy in front of the server
//! (`tests/fault_proxy`); faults of the server itself by signals to its
//! PID. Then: one client shared by 32 threads while the server is killed
//! and restarted several times, and the C programs of
//! `tests/c_harness/faults.c` (the C return conventions while the server is
//! down, `fork()` after a restart with and without PIDCHECK, and `fork()`
//! while other threads use the context).
//!
//! Already covered elsewhere, and not repeated: the failure alone against
//! a silent, half-answering or lying server (`tests/client.rs`,
//! `tests/c_harness.rs` hang.c), a server that is down from the start
//! (client.rs, down.c), a restart over UNIX and TCP in C (restart.c), and
//! `fork()` with and without PIDCHECK against a healthy server (fork.c).

#[allow(dead_code)] // shared with the C harness; a part is used here
mod c_support;
mod fault_proxy;
mod server_proc;

use distcache::nal::NalError;
use distcache::{Client, ClientError, Flags};
use fault_proxy::{Fault, FaultProxy};
use server_proc::{Net, ServerProcess};
use std::thread;
use std::time::{Duration, Instant};

/// The timeout of the matrix's calls.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a call may take beyond its timeout (a loaded machine runs late).
const SLACK: Duration = Duration::from_secs(1);
/// Size of the session stored before the fault: 15 frames in a reply.
const BIG: usize = 30_000;

fn session(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Get,
    Have,
    Remove,
}

const OPS: [Op; 4] = [Op::Add, Op::Get, Op::Have, Op::Remove];

/// What a successful call returned.
#[derive(PartialEq, Eq)]
enum Answer {
    Added,
    Got(Option<Vec<u8>>),
    Found(bool),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Added => write!(f, "Added"),
            Answer::Got(None) => write!(f, "Got(None)"),
            Answer::Got(Some(d)) => write!(
                f,
                "Got({} bytes, first {:?})",
                d.len(),
                &d[..d.len().min(8)]
            ),
            Answer::Found(b) => write!(f, "Found({b})"),
        }
    }
}

/// One call, which must end within `timeout` + [`SLACK`]; returns its
/// result and how long it took.
fn call(
    client: &Client,
    op: Op,
    id: &[u8],
    data: &[u8],
) -> (Result<Answer, ClientError>, Duration) {
    let start = Instant::now();
    let result = match op {
        Op::Add => client.add(id, data, 60_000).map(|()| Answer::Added),
        Op::Get => client.get(id).map(Answer::Got),
        Op::Have => client.have(id).map(Answer::Found),
        Op::Remove => client.remove(id).map(Answer::Found),
    };
    let took = start.elapsed();
    assert!(
        took <= client.timeout() + SLACK,
        "{op:?} took {took:?} with a timeout of {:?}",
        client.timeout()
    );
    (result, took)
}

/// The fault of a matrix case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// SIGKILL while a GET waits for its reply (the server was stopped with
    /// SIGSTOP so that it could not answer first); calls while it is down;
    /// then a new server.
    KilledMidOperation,
    /// SIGKILL and a new server between two calls, none while it was down.
    RestartedBetweenCalls,
    /// The path through the proxy: see [`Fault`].
    Path(Fault),
}

/// How a call made while the fault lasts must fail.
fn expect_fault_error(case: Case, op: Op, err: &ClientError, took: Duration) {
    let timed_out = matches!(err, ClientError::Network(NalError::TimedOut));
    let ok = match case {
        Case::Path(Fault::Silent | Fault::HalfFrame | Fault::Late(_)) => {
            timed_out && took >= TIMEOUT
        }
        Case::Path(Fault::WrongUid | Fault::WrongOp) => {
            matches!(err, ClientError::UnexpectedReply(_))
        }
        Case::Path(Fault::CloseMidReply) => {
            matches!(err, ClientError::Network(e) if e.is_disconnect())
        }
        // The server is down: refused, or the reused connection is dead.
        Case::KilledMidOperation | Case::RestartedBetweenCalls => {
            matches!(err, ClientError::Network(_)) && !timed_out
        }
        Case::Path(Fault::Pass) => false,
    };
    assert!(ok, "{case:?}: {op:?} failed with {err:?} after {took:?}");
}

fn flags_name(flags: Flags) -> String {
    let names = [
        (Flags::PERSISTENT, "PERSISTENT"),
        (Flags::PERSISTENT_PIDCHECK, "PIDCHECK"),
        (Flags::PERSISTENT_RETRY, "RETRY"),
        (Flags::PERSISTENT_LATE, "LATE"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "0".into()
    } else {
        set.join("|")
    }
}

/// One case of the matrix; prints one line of results.
fn run_case(case: Case, net: Net, flags: Flags) {
    let mut server = ServerProcess::start(net, &["-sessions", "1000"]);
    let proxy = match case {
        Case::Path(_) => Some(FaultProxy::start(net, server.endpoint())),
        _ => None,
    };
    let address = proxy
        .as_ref()
        .map_or_else(|| server.address(), FaultProxy::address);
    let client = Client::new(&address, flags).expect("client");
    client.set_timeout(TIMEOUT);
    let big = session(BIG, 1);
    let small = session(700, 2);

    // Before: a session stored and read back.
    assert!(matches!(
        call(&client, Op::Add, b"before", &big).0,
        Ok(Answer::Added)
    ));
    assert_eq!(
        call(&client, Op::Get, b"before", &[]).0.unwrap(),
        Answer::Got(Some(big.clone()))
    );

    // The fault, and the calls made while it lasts.
    let mut during = Vec::new();
    match case {
        Case::Path(fault) => {
            let proxy = proxy.as_ref().expect("a proxy");
            proxy.set(fault);
            for op in OPS {
                // GET and HAVE ask for the big session (a long reply to
                // cut); ADD and REMOVE, which the server may carry out, for
                // another.
                let id: &[u8] = match op {
                    Op::Get | Op::Have => b"before",
                    Op::Add | Op::Remove => b"during",
                };
                let (r, took) = call(&client, op, id, &small);
                let err = r.expect_err("a call through the fault succeeded");
                expect_fault_error(case, op, &err, took);
                during.push(took);
            }
            assert!(
                proxy.injected() >= OPS.len(),
                "the proxy applied the fault to only {} requests",
                proxy.injected()
            );
            proxy.set(Fault::Pass);
        }
        Case::KilledMidOperation => {
            // A persistent client's call in flight uses the connection of
            // the calls before; flags 0 connects to the stopped server
            // (the kernel queues the connection).
            server.pause();
            client.set_timeout(Duration::from_secs(5));
            let in_flight = thread::scope(|s| {
                let t = s.spawn(|| {
                    let (r, _) = call(&client, Op::Get, b"before", &[]);
                    (r, Instant::now())
                });
                thread::sleep(Duration::from_millis(300));
                let killed_at = Instant::now();
                server.kill();
                let (r, ended) = t.join().expect("the call in flight");
                assert!(ended >= killed_at, "the call ended before the kill: {r:?}");
                (r, ended - killed_at)
            });
            let (r, after_kill) = in_flight;
            let err = r.expect_err("a GET to a stopped, then killed, server succeeded");
            assert!(
                matches!(err, ClientError::Network(_)),
                "the call in flight failed with {err:?}"
            );
            // It fails when the server dies, not at its 5 s timeout.
            assert!(
                after_kill <= SLACK,
                "the call in flight ended {after_kill:?} after the kill"
            );
            during.push(after_kill);
            client.set_timeout(TIMEOUT);
            for op in OPS {
                let (r, took) = call(&client, op, b"down", &small);
                let err = r.expect_err("a call while the server is down succeeded");
                expect_fault_error(case, op, &err, took);
                during.push(took);
            }
            server.start_again();
        }
        Case::RestartedBetweenCalls => {
            server.kill();
            server.start_again();
        }
    }

    // After: the next calls succeed, with the right data.
    let restarted = matches!(case, Case::KilledMidOperation | Case::RestartedBetweenCalls);
    let stale_first = case == Case::RestartedBetweenCalls
        && flags.contains(Flags::PERSISTENT)
        && !flags.contains(Flags::PERSISTENT_RETRY);
    let mut after = Vec::new();
    if stale_first {
        // The connection to the old server is dead: that call fails (at
        // once), and the next one connects afresh.
        let (r, took) = call(&client, Op::Get, b"before", &[]);
        let err = r.expect_err("a call on a connection to a killed server succeeded");
        assert!(
            matches!(&err, ClientError::Network(e) if e.is_disconnect()),
            "{err:?}"
        );
        after.push(took);
    }
    let want_before = (!restarted).then(|| big.clone());
    let (r, took) = call(&client, Op::Get, b"before", &[]);
    after.push(took);
    assert_eq!(
        r.expect("the first call after the server is back"),
        Answer::Got(want_before),
        "the session stored before"
    );
    let id = b"after";
    for (op, want) in [
        (Op::Add, Answer::Added),
        (Op::Get, Answer::Got(Some(small.clone()))),
        (Op::Have, Answer::Found(true)),
        (Op::Remove, Answer::Found(true)),
        (Op::Have, Answer::Found(false)),
    ] {
        let (r, took) = call(&client, op, id, &small);
        after.push(took);
        assert_eq!(r.expect("a call after the server is back"), want, "{op:?}");
    }
    let ms = |v: &[Duration]| -> Vec<u128> { v.iter().map(Duration::as_millis).collect() };
    println!(
        "MATRIX {case:?} {net:?} flags {}: faulty calls failed in {:?} ms; \
         {} after-calls ok{} in {:?} ms",
        flags_name(flags),
        ms(&during),
        after.len() - usize::from(stale_first),
        if stale_first {
            " (the first one failed, as without RETRY it must)"
        } else {
            ""
        },
        ms(&after)
    );
}

/// The matrix: a module per fault, a test per transport and flags.
macro_rules! matrix {
    ($($name:ident => $case:expr;)*) => {$(
        mod $name {
            use super::*;
            const P: Flags = Flags::PERSISTENT;
            const R: Flags = Flags::PERSISTENT_RETRY;
            const L: Flags = Flags::PERSISTENT_LATE;
            const C: Flags = Flags::PERSISTENT_PIDCHECK;
            #[test] fn unix_flags_0() { run_case($case, Net::Unix, Flags::empty()) }
            #[test] fn unix_persistent() { run_case($case, Net::Unix, P) }
            #[test] fn unix_persistent_retry() { run_case($case, Net::Unix, P | R) }
            #[test] fn unix_persistent_late() { run_case($case, Net::Unix, P | L) }
            #[test] fn unix_all_flags() { run_case($case, Net::Unix, P | C | R | L) }
            #[test] fn tcp_flags_0() { run_case($case, Net::Tcp, Flags::empty()) }
            #[test] fn tcp_persistent() { run_case($case, Net::Tcp, P) }
            #[test] fn tcp_persistent_retry() { run_case($case, Net::Tcp, P | R) }
            #[test] fn tcp_persistent_late() { run_case($case, Net::Tcp, P | L) }
            #[test] fn tcp_all_flags() { run_case($case, Net::Tcp, P | C | R | L) }
        }
    )*};
}

matrix! {
    killed_mid_operation => Case::KilledMidOperation;
    restarted_between_calls => Case::RestartedBetweenCalls;
    silent_server => Case::Path(Fault::Silent);
    half_frame_then_stall => Case::Path(Fault::HalfFrame);
    wrong_uid => Case::Path(Fault::WrongUid);
    wrong_op => Case::Path(Fault::WrongOp);
    closed_mid_reply => Case::Path(Fault::CloseMidReply);
    late_reply => Case::Path(Fault::Late(Duration::from_millis(700)));
}

// ---------------------------------------------------------------------------
// One client, 32 threads, a server killed and restarted several times

/// One call made by a worker.
struct Record {
    thread: usize,
    op: Op,
    start: Instant,
    end: Instant,
    /// None when it succeeded; the error otherwise.
    error: Option<ClientError>,
}

/// What the workers found wrong at once: data that differs from what was
/// stored, or an answer no server state explains.
type Wrong = std::sync::Mutex<Vec<String>>;

/// Add, get, have and remove of a fresh id, over and over, until `stop`.
/// A session is expected back (and as found) only when the calls since its
/// ADD lie in one window in which the server was up; that is checked
/// afterwards against the timeline.
fn worker(
    t: usize,
    client: &Client,
    stop: &std::sync::atomic::AtomicBool,
    wrong: &Wrong,
) -> Vec<(Record, Option<Answer>, Option<Instant>)> {
    let mut records = Vec::new();
    let mut seq = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        seq += 1;
        let id = format!("t{t}-{seq}").into_bytes();
        let data = session(5 + (seq as usize * 97 + t * 31) % 3000, t as u8);
        // When the ADD of this id was sent, if it succeeded.
        let mut added_at: Option<Instant> = None;
        for op in OPS {
            let start = Instant::now();
            let (result, _) = call(client, op, &id, &data);
            let end = Instant::now();
            let (answer, error) = match result {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(e)),
            };
            match (&answer, added_at) {
                (Some(Answer::Added), _) => added_at = Some(start),
                (Some(Answer::Got(Some(d))), Some(_)) if *d != data => wrong.lock().unwrap().push(
                    format!("thread {t}: GET {} returned {} other bytes", seq, d.len()),
                ),
                (Some(Answer::Got(Some(_))) | Some(Answer::Found(true)), None) => {
                    wrong.lock().unwrap().push(format!(
                        "thread {t}: {op:?} found id {seq}, whose ADD failed"
                    ))
                }
                _ => {}
            }
            let failed = error.is_some();
            records.push((
                Record {
                    thread: t,
                    op,
                    start,
                    end,
                    error,
                },
                answer,
                added_at,
            ));
            if failed {
                // The server is probably down: do not spin on refusals.
                thread::sleep(Duration::from_millis(10));
                break;
            }
        }
    }
    records
}

fn threads_through_restarts(net: Net, flags: Flags) {
    const THREADS: usize = 32;
    const CYCLES: usize = 3;
    const UP: Duration = Duration::from_millis(800);
    const DOWN: Duration = Duration::from_millis(300);
    const CALL_TIMEOUT: Duration = Duration::from_secs(2);
    // Idle connections a client keeps (client.rs MAX_IDLE): without RETRY,
    // each may fail one call once the new server is up.
    const MAX_IDLE: usize = 32;

    let mut server = ServerProcess::start(net, &["-sessions", "100000"]);
    let client = Client::new(&server.address(), flags).expect("client");
    client.set_timeout(CALL_TIMEOUT);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let wrong = Wrong::default();
    // (up since, killed at) and (dead at, restarted at).
    let mut ups: Vec<(Instant, Instant)> = Vec::new();
    let mut downs: Vec<(Instant, Instant)> = Vec::new();
    let records: Vec<_> = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (client, stop, wrong) = (&client, &stop, &wrong);
                s.spawn(move || worker(t, client, stop, wrong))
            })
            .collect();
        let mut up_since = Instant::now();
        for _ in 0..CYCLES {
            thread::sleep(UP);
            let kill_at = Instant::now();
            server.kill();
            let dead_at = Instant::now();
            ups.push((up_since, kill_at));
            thread::sleep(DOWN);
            downs.push((dead_at, Instant::now()));
            server.start_again();
            up_since = Instant::now();
        }
        thread::sleep(UP);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let records = workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect();
        ups.push((up_since, Instant::now()));
        records
    });

    let wrong = wrong.into_inner().unwrap();
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    let within = |(from, to): (Instant, Instant), r: &Record| r.start >= from && r.end <= to;
    let retry_or_none =
        !flags.contains(Flags::PERSISTENT) || flags.contains(Flags::PERSISTENT_RETRY);
    let mut ok_while_up = 0;
    let mut failed_while_down = 0;
    let mut straddling = 0;
    let mut stale_total = 0;
    let mut verified = 0;
    for (i, window) in ups.iter().enumerate() {
        let mut stale = 0;
        for (r, answer, added_at) in records.iter().filter(|(r, _, _)| within(*window, r)) {
            match &r.error {
                None => ok_while_up += 1,
                Some(ClientError::Network(e)) if !retry_or_none && e.is_disconnect() => stale += 1,
                Some(e) => panic!(
                    "thread {} {:?} failed while the server was up (window {i}): {e:?}",
                    r.thread, r.op
                ),
            }
            // Stored and looked up within one window: it must be there.
            let kept = added_at.is_some_and(|a| a >= window.0);
            let lost = matches!(
                (r.op, answer),
                (Op::Get, Some(Answer::Got(None)))
                    | (Op::Have | Op::Remove, Some(Answer::Found(false)))
            );
            assert!(
                !(kept && lost),
                "thread {} {:?}: a session stored while the server was up is gone (window {i})",
                r.thread,
                r.op
            );
            if kept && r.op != Op::Add && r.error.is_none() {
                verified += 1;
            }
        }
        stale_total += stale;
        assert!(
            stale <= MAX_IDLE,
            "{stale} calls failed on connections to a dead server in window {i}"
        );
        // Every thread got calls through in every window.
        for t in 0..THREADS {
            assert!(
                records
                    .iter()
                    .any(|(r, _, _)| r.thread == t && r.error.is_none() && within(*window, r)),
                "thread {t} made no successful call in window {i}"
            );
        }
    }
    for window in &downs {
        for (r, _, _) in records.iter().filter(|(r, _, _)| within(*window, r)) {
            assert!(
                r.error.is_some(),
                "thread {} {:?} succeeded while the server was down",
                r.thread,
                r.op
            );
            failed_while_down += 1;
        }
    }
    for (r, _, _) in &records {
        if !ups.iter().chain(&downs).any(|w| within(*w, r)) {
            straddling += 1;
        }
    }
    // The first call of each thread that began after the last restart.
    let last_up = ups.last().expect("a window").0;
    for t in 0..THREADS {
        let first = records
            .iter()
            .filter(|(r, _, _)| r.thread == t && r.start >= last_up)
            .min_by_key(|(r, _, _)| r.start)
            .expect("a call after the last restart");
        if retry_or_none {
            assert!(
                first.0.error.is_none(),
                "thread {t}: the first call after the last restart failed: {:?}",
                first.0.error
            );
        }
    }
    println!(
        "THREADS {net:?} flags {}: {} calls from {THREADS} threads over {CYCLES} kills and \
         restarts; {ok_while_up} succeeded while the server was up ({verified} of them \
         found a session stored in the same window, byte for byte), {stale_total} failed \
         on a connection to a killed server after the new one was up, {failed_while_down} \
         failed while it was down, {straddling} overlapped a kill or a start",
        flags_name(flags),
        records.len()
    );
}

mod threads32_through_restarts {
    use super::*;

    #[test]
    fn unix_flags_0() {
        threads_through_restarts(Net::Unix, Flags::empty());
    }
    #[test]
    fn unix_persistent() {
        threads_through_restarts(Net::Unix, Flags::PERSISTENT);
    }
    #[test]
    fn unix_persistent_retry() {
        threads_through_restarts(Net::Unix, Flags::PERSISTENT | Flags::PERSISTENT_RETRY);
    }
    #[test]
    fn tcp_flags_0() {
        threads_through_restarts(Net::Tcp, Flags::empty());
    }
    #[test]
    fn tcp_persistent() {
        threads_through_restarts(Net::Tcp, Flags::PERSISTENT);
    }
    #[test]
    fn tcp_persistent_retry() {
        threads_through_restarts(Net::Tcp, Flags::PERSISTENT | Flags::PERSISTENT_RETRY);
    }
}

// ---------------------------------------------------------------------------
// The C API: tests/c_harness/faults.c against the staged library

/// Runs `faults <address> <case>` against a dc_server and plays the
/// driver's part of its handshakes: kill the server, start a new one.
fn c_faults(case: &str, net: Net) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = c_support::compile_harness("faults", dir.path());
    let mut server = ServerProcess::start(net, &[]);
    let mut cmd = std::process::Command::new(&prog);
    cmd.arg(server.address()).arg(case);
    let what = format!("faults {} {case}", server.address());
    let mut p = c_support::Proc::spawn(&what, &mut cmd, true);
    let handshake = Duration::from_secs(60);
    match case {
        "down" => {
            p.wait_line("READY down", handshake);
            server.kill();
            p.send_line("go");
            p.wait_line("READY up", handshake);
            server.start_again();
            p.send_line("go");
        }
        "fork-restart" => {
            p.wait_line("READY restart", handshake);
            server.kill();
            server.start_again();
            p.send_line("go");
        }
        _ => {}
    }
    p.finish_ok(Duration::from_secs(120));
}

mod c_api {
    use super::*;

    #[test]
    fn down_then_back_unix() {
        c_faults("down", Net::Unix);
    }
    #[test]
    fn down_then_back_tcp() {
        c_faults("down", Net::Tcp);
    }
    #[test]
    fn fork_after_restart_with_and_without_pidcheck_unix() {
        c_faults("fork-restart", Net::Unix);
    }
    #[test]
    fn fork_after_restart_with_and_without_pidcheck_tcp() {
        c_faults("fork-restart", Net::Tcp);
    }
    #[test]
    fn fork_while_threads_use_the_ctx() {
        c_faults("fork-busy", Net::Unix);
    }
}
