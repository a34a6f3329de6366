//! The matrix cases: a fault on the path (through the proxy) or of the
//! server process (signals to its PID), the calls while it lasts, and the
//! calls once it is over.

use super::proxy::{Fault, FaultProxy};
use super::server_proc::{Net, ServerProcess};
use super::{call, flags_name, session, Answer, Op, BIG, OPS, SLACK, TIMEOUT};
use distcache::nal::NalError;
use distcache::{Client, ClientError, Flags};
use std::thread;
use std::time::{Duration, Instant};

/// The fault of a matrix case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
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

/// One case of the matrix; prints one line of results.
pub fn run_case(case: Case, net: Net, flags: Flags) {
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
