//! The matrix cases: a fault on the path (through the proxy) or of the
//! server process (signals to its PID), the calls while it lasts, and the
//! calls once it is over.
//!
//! A call that times out or is refused marks the address down (the
//! client's breaker): the calls after it fail at once with `Down`, without
//! reaching the server, until the back-off is over; then one call probes
//! the address, and it must succeed once the server is back.

use super::dc_server::{DcServer, Net};
use super::proxy::{Fault, FaultProxy};
use super::{call, flags_name, session, Answer, Op, BIG, OPS, SLACK, TIMEOUT};
use distcache::NalError;
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

/// Whether the fault stalls the call until its timeout, which marks the
/// address down.
fn stalls(case: Case) -> bool {
    matches!(
        case,
        Case::Path(Fault::Silent | Fault::HalfFrame | Fault::Late(_))
    )
}

/// How a call made while the fault lasts must fail, `down` once an earlier
/// call marked the address down: at once, without trying.
fn expect_fault_error(case: Case, op: Op, err: &ClientError, took: Duration, down: bool) {
    let timed_out = matches!(err, ClientError::Network(NalError::TimedOut));
    if down {
        assert!(
            matches!(err, ClientError::Down { .. }) && took < TIMEOUT,
            "{case:?}: {op:?} failed with {err:?} after {took:?}, with the address down"
        );
        return;
    }
    let ok = match case {
        _ if stalls(case) => timed_out && took >= TIMEOUT,
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
        Case::Path(_) => false,
    };
    assert!(ok, "{case:?}: {op:?} failed with {err:?} after {took:?}");
}

/// One case of the matrix; prints one line of results.
pub fn run_case(case: Case, net: Net, flags: Flags) {
    let mut server = DcServer::builder()
        .net(net)
        .args(&["-sessions", "1000"])
        .start();
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
            for (i, op) in OPS.into_iter().enumerate() {
                // GET and HAVE ask for the big session (a long reply to
                // cut); ADD and REMOVE, which the server may carry out, for
                // another.
                let id: &[u8] = match op {
                    Op::Get | Op::Have => b"before",
                    Op::Add | Op::Remove => b"during",
                };
                let (r, took) = call(&client, op, id, &small);
                let err = r.expect_err("a call through the fault succeeded");
                expect_fault_error(case, op, &err, took, stalls(case) && i > 0);
                during.push(took);
            }
            // A stall reaches the server once; the calls after it are
            // failed by the breaker. The other faults reach it every time
            // (twice for a call that RETRY repeats).
            if stalls(case) {
                assert_eq!(proxy.injected(), 1, "requests the fault reached");
            } else {
                assert!(
                    proxy.injected() >= OPS.len(),
                    "the proxy applied the fault to only {} requests",
                    proxy.injected()
                );
            }
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
            // With RETRY the call in flight reconnects, and is refused.
            let mut refused = matches!(&err, ClientError::Network(e) if !e.is_disconnect());
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
                expect_fault_error(case, op, &err, took, refused);
                // A connection refused marks the address down (a kept
                // connection that broke does not).
                refused |= matches!(&err, ClientError::Network(e) if !e.is_disconnect());
                during.push(took);
            }
            assert!(refused, "no call found the server's address refusing");
            server.start_again();
        }
        Case::RestartedBetweenCalls => {
            server.kill();
            server.start_again();
        }
    }

    // After: once the back-off of an address marked down is over (it
    // cannot be longer than the breaker's first period: no probe failed),
    // the next calls succeed, with the right data.
    let health = client.health();
    if health.down {
        assert!(health.retry_in <= client.backoff().min, "{health:?}");
        thread::sleep(health.retry_in);
    }
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
