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
//! persistent connection without RETRY after a restart. A call that times
//! out or is refused marks the address down: the calls after it fail at
//! once (`Down`) without reaching the server, and the first call after the
//! back-off (one second) must succeed.
//!
//! The cases are in `matrix.rs`. Faults on the path are made by a proxy in
//! front of the server (`proxy.rs`); faults of the server itself by
//! signals to its PID. Beside the matrix: one client shared by 32 threads
//! while the server is killed and restarted several times
//! (`threads32_through_restarts.rs`), and the C program
//! `tests/c_harness/faults.c` (`c_api.rs`: the C return conventions while
//! the server is down, `fork()` after a restart with and without PIDCHECK,
//! and `fork()` while other threads use the context).
//!
//! Already covered elsewhere, and not repeated: the failure alone against
//! a silent, half-answering or lying server (`tests/client.rs`,
//! `tests/c_harness.rs` hang.c), a server that is down from the start
//! (client.rs, down.c), a restart over UNIX and TCP in C (restart.c), and
//! `fork()` with and without PIDCHECK against a healthy server (fork.c).

mod c_api;
#[allow(dead_code)] // shared with the C harness; a part is used here
#[path = "../c_support/mod.rs"]
mod c_support;
#[path = "../common/mod.rs"]
mod common;
mod dc_client_breaker;
#[path = "../dc_server/mod.rs"]
mod dc_server;
mod matrix;
mod proxy;
mod threads32_through_restarts;

use dc_server::Net;
use distcache::{Client, ClientError, Flags};
use matrix::{run_case, Case};
use proxy::Fault;
use std::time::{Duration, Instant};

/// The timeout of the matrix's calls.
pub const TIMEOUT: Duration = Duration::from_millis(300);
/// What a call may take beyond its timeout (a loaded machine runs late).
pub const SLACK: Duration = Duration::from_secs(1);
/// Size of the session stored before the fault: 15 frames in a reply.
pub const BIG: usize = 30_000;

pub fn session(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Get,
    Have,
    Remove,
}

pub const OPS: [Op; 4] = [Op::Add, Op::Get, Op::Have, Op::Remove];

/// What a successful call returned.
#[derive(PartialEq, Eq)]
pub enum Answer {
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
pub fn call(
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

/// The flags as the C macros name them.
pub fn flags_name(flags: Flags) -> String {
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
