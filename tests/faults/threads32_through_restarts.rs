//! One client shared by 32 threads while dc_server is killed and restarted
//! several times: every call bounded, successes while the server is up,
//! failures while it is down, and never another session's data.
//!
//! A refused connection marks the address down (the client's breaker, here
//! with a back-off of 200 ms to 400 ms): after a restart, calls may fail at
//! once with `Down` only while the breaker can still hold the address, as
//! `turned_away_rightly` says: in the back-off that follows the last
//! refusal, and while the one call that probes the address after it is
//! under way.

use super::dc_server::{DcServer, Net};
use super::{call, flags_name, session, Answer, Op, OPS};
use distcache::Backoff;
use distcache::{Client, ClientError, Flags};
use std::thread;
use std::time::{Duration, Instant};

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

/// When the back-off after the restart that opened the up window `up` is
/// over at the latest: the longest back-off after the last refusal the
/// breaker was told of, which came no later than the restart itself or the
/// end of a call begun before it that failed on the network (a refusal
/// reported after the new server was up).
fn back_off_end(
    up: (Instant, Instant),
    backoff: Backoff,
    records: &[(Record, Option<Answer>, Option<Instant>)],
) -> Instant {
    records
        .iter()
        .filter(|(q, _, _)| q.start < up.0 && matches!(q.error, Some(ClientError::Network(_))))
        .map(|(q, _, _)| q.end)
        .fold(up.0, Instant::max)
        + backoff.max
}

/// Whether a call that failed at once with `Down { retry_in }` after a
/// restart is one the breaker was right to turn away: it began before
/// the back-off was over (`back_off_end`), or while the one call that
/// probes the address after the back-off was under way. Every other call
/// is turned away until that probe has reached the server, and told to
/// retry when the probe's lease (its timeout and a grace period) runs out,
/// which is longer than any back-off. When the probe starts depends on
/// when a thread next calls: on a loaded machine it can be later than the
/// longest back-off after the restart.
fn turned_away_rightly(
    r: &Record,
    retry_in: Duration,
    back_off_end: Instant,
    backoff: Backoff,
    records: &[(Record, Option<Answer>, Option<Instant>)],
) -> bool {
    if r.start < back_off_end {
        return true;
    }
    // The probe: a call of another thread, let through, overlapping this one.
    retry_in > backoff.max
        && records.iter().any(|(q, _, _)| {
            q.thread != r.thread
                && !matches!(q.error, Some(ClientError::Down { .. }))
                && q.start <= r.end
                && q.end >= r.start
        })
}

fn threads_through_restarts(net: Net, flags: Flags) {
    const THREADS: usize = 32;
    const CYCLES: usize = 3;
    const UP: Duration = Duration::from_millis(800);
    const DOWN: Duration = Duration::from_millis(300);
    const CALL_TIMEOUT: Duration = Duration::from_secs(2);
    // Idle connections a client keeps (client/pool.rs MAX_IDLE): without RETRY,
    // each may fail one call once the new server is up.
    const MAX_IDLE: usize = 32;
    const BACKOFF: Backoff = Backoff {
        min: Duration::from_millis(200),
        max: Duration::from_millis(400),
    };

    let mut server = DcServer::builder()
        .net(net)
        .args(&["-sessions", "100000"])
        .start();
    let client = Client::new(&server.address(), flags).expect("client");
    client.set_timeout(CALL_TIMEOUT);
    client.set_backoff(BACKOFF);
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
    let mut down_after_restart = 0;
    // Of those, turned away while a probe was under way, after the back-off.
    let mut probe_late = 0;
    let mut verified = 0;
    for (i, window) in ups.iter().enumerate() {
        let back_off_end = back_off_end(*window, BACKOFF, &records);
        let mut stale = 0;
        for (r, answer, added_at) in records.iter().filter(|(r, _, _)| within(*window, r)) {
            match &r.error {
                None => ok_while_up += 1,
                Some(ClientError::Network(e)) if !retry_or_none && e.is_disconnect() => stale += 1,
                // Marked down while the server was, and not yet probed.
                Some(ClientError::Down { retry_in })
                    if i > 0
                        && turned_away_rightly(r, *retry_in, back_off_end, BACKOFF, &records) =>
                {
                    down_after_restart += 1;
                    if r.start >= back_off_end {
                        probe_late += 1;
                    }
                }
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
    // The first call of each thread that began after the last restart and
    // the longest back-off, and that the breaker did not rightly turn away.
    let last_window = *ups.last().expect("a window");
    let last_up = last_window.0 + BACKOFF.max;
    let last_back_off_end = back_off_end(last_window, BACKOFF, &records);
    for t in 0..THREADS {
        let first = records
            .iter()
            .filter(|(r, _, _)| r.thread == t && r.start >= last_up)
            .filter(|(r, _, _)| match r.error {
                Some(ClientError::Down { retry_in }) => {
                    !turned_away_rightly(r, retry_in, last_back_off_end, BACKOFF, &records)
                }
                _ => true,
            })
            .min_by_key(|(r, _, _)| r.start)
            .expect("a call after the last restart");
        if retry_or_none {
            assert!(
                first.0.error.is_none(),
                "thread {t}: the first call after the last restart and back-off failed: {:?}",
                first.0.error
            );
        }
    }
    println!(
        "THREADS {net:?} flags {}: {} calls from {THREADS} threads over {CYCLES} kills and \
         restarts; {ok_while_up} succeeded while the server was up ({verified} of them \
         found a session stored in the same window, byte for byte), {stale_total} failed \
         on a connection to a killed server after the new one was up, {down_after_restart} \
         failed at once in the back-off after a restart ({probe_late} of them after it, \
         while the address was probed), {failed_while_down} failed while \
         it was down, {straddling} overlapped a kill or a start",
        flags_name(flags),
        records.len()
    );
}

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
