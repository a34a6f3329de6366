//! dc_server's limits, against live server processes: `-maxconns`, running
//! out of file descriptors, `-idle` and the half-sent-request timeout,
//! `-maxbytes`, and the memory a misbehaving client can make it hold.

mod common;
mod dc_server;
mod live;
mod replay;

use common::run_tool;
use dc_server::{dc_server_bin, DcServer};
use distcache::internals::proto::Status;
use distcache::{Client, ClientError, Flags};
use live::{ask, connect, read_to_close, request, Answer};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const IO_LIMIT: Duration = Duration::from_secs(5);
/// A refused client must know within this.
const PROMPT: Duration = Duration::from_secs(2);
/// An episode of refusals ends at the first connection served this long
/// after the last refusal (src/server/admission.rs).
const EPISODE_QUIET: Duration = Duration::from_millis(1100);

/// Connects and asks one HAVE; how it went, and how long it took.
fn try_once(srv: &DcServer, uid: u32) -> (Option<UnixStream>, Answer, Duration) {
    let start = Instant::now();
    let mut s = match connect(srv.socket(), IO_LIMIT) {
        Ok(s) => s,
        Err(e) => {
            return (
                None,
                Answer::Other(format!("connect: {e}")),
                start.elapsed(),
            )
        }
    };
    let answer = ask(&mut s, uid);
    (Some(s), answer, start.elapsed())
}

/// Asks on new connections until one is served (at most `limit`).
fn served_within(srv: &DcServer, limit: Duration) -> Option<UnixStream> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let (Some(s), Answer::Served, _) = try_once(srv, 77) {
            return Some(s);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn maxconns_displaces_the_longest_idle_and_logs_once_per_episode() {
    let mut srv = DcServer::start(&["-maxconns", "4"]);
    let mut held = Vec::new();
    for uid in 0..4 {
        let (s, answer, _) = try_once(&srv, uid);
        assert_eq!(answer, Answer::Served, "connection {uid} within the limit");
        held.push(s.unwrap());
        // Distinct moments of last activity.
        thread::sleep(Duration::from_millis(20));
    }
    // A fifth client is served in the place of the longest idle (#0).
    let (fifth, answer, took) = try_once(&srv, 10);
    assert_eq!(answer, Answer::Served, "a new client at the limit");
    assert!(took < PROMPT, "the new client waited {took:?}");
    let got = read_to_close(&mut held[0], PROMPT).expect("the longest idle is closed");
    assert!(got.is_empty(), "a reply to nothing: {got:02x?}");
    // Activity counts: #1 speaks, so #2 is now the longest idle.
    assert_eq!(ask(&mut held[1], 11), Answer::Served);
    thread::sleep(Duration::from_millis(20));
    let (sixth, answer, _) = try_once(&srv, 12);
    assert_eq!(answer, Answer::Served, "another new client at the limit");
    let got = read_to_close(&mut held[2], PROMPT).expect("the next longest idle is closed");
    assert!(got.is_empty());
    for i in [1, 3] {
        assert_eq!(
            ask(&mut held[i], 20 + i as u32),
            Answer::Served,
            "kept #{i}"
        );
    }
    let displacing = "connections displaced: at the -maxconns limit (4 open)";
    assert!(
        srv.wait_for_log(displacing, IO_LIMIT),
        "log:\n{}",
        srv.stderr()
    );
    assert_eq!(
        srv.log_lines("connections displaced").len(),
        1,
        "{}",
        srv.stderr()
    );
    assert!(
        srv.log_lines("connections refused").is_empty(),
        "{}",
        srv.stderr()
    );

    // Below the limit after a quiet second, the episode ends.
    drop((held, fifth, sixth));
    thread::sleep(EPISODE_QUIET);
    let _again = served_within(&srv, IO_LIMIT).expect("served after the episode");
    let relieved = "connection limit relieved: 2 idle connections displaced";
    assert!(
        srv.wait_for_log(relieved, IO_LIMIT),
        "log:\n{}",
        srv.stderr()
    );
    assert_eq!(srv.log_lines("connection limit relieved").len(), 1);
    assert!(srv.is_running());
}

/// A connection made busy: it asks for a large session many times without
/// reading, so that replies wait on it for as long as it lives.
fn busy_connection(srv: &DcServer, id: &[u8]) -> UnixStream {
    let mut s = connect(srv.socket(), IO_LIMIT).expect("connect");
    let mut batch = Vec::new();
    for uid in 0..400 {
        batch.extend(request(1, uid, id));
    }
    s.write_all(&batch).expect("pipelined GETs");
    s
}

#[test]
fn maxconns_refuses_at_once_when_every_connection_is_busy() {
    let mut srv = DcServer::start(&["-maxconns", "2"]);
    let id = b"large-session";
    // Stored over a connection that is closed, and seen closed by the
    // server, before the busy ones come: it holds no place.
    let mut s = connect(srv.socket(), IO_LIMIT).expect("connect");
    s.write_all(&request(
        0,
        1,
        &replay::add_payload(60_000, id, &[7u8; 30_000]),
    ))
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = read_to_close(&mut s, PROMPT).expect("the server closes after replying");
    assert_eq!(reply.len(), 15, "one status reply: {reply:02x?}");
    assert_eq!(reply[14], Status::Ok.wire(), "stored");
    // Each busy connection has about 12 MB of replies to read.
    let busy: Vec<UnixStream> = (0..2).map(|_| busy_connection(&srv, id)).collect();
    // The server stops reading each once its replies pile up; give it time
    // to get that far.
    thread::sleep(Duration::from_millis(300));
    for uid in 30..35 {
        let (_, answer, took) = try_once(&srv, uid);
        assert_eq!(
            answer,
            Answer::Closed,
            "connection {uid} with every place busy"
        );
        assert!(took < PROMPT, "a refused client waited {took:?}");
    }
    let reached = "connections refused: at the -maxconns limit (2 open, all busy)";
    assert!(
        srv.wait_for_log(reached, IO_LIMIT),
        "log:\n{}",
        srv.stderr()
    );
    assert_eq!(
        srv.log_lines("connections refused").len(),
        1,
        "{}",
        srv.stderr()
    );
    assert!(
        srv.log_lines("connections displaced").is_empty(),
        "{}",
        srv.stderr()
    );
    drop(busy);
    thread::sleep(EPISODE_QUIET);
    let _again = served_within(&srv, IO_LIMIT).expect("served once the busy ones left");
    let cleared = "connections served again: 5 refused at the -maxconns limit";
    assert!(
        srv.wait_for_log(cleared, IO_LIMIT),
        "log:\n{}",
        srv.stderr()
    );
    assert!(srv.is_running());
}

fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Duration::from_millis((fields[11] + fields[12]) * 10)
}

/// Fills the server's descriptors with connections until one is refused;
/// returns the connections served. Every attempt must end promptly: served,
/// or closed at once.
fn fill_descriptors(srv: &DcServer, max: usize) -> Vec<UnixStream> {
    let mut held = Vec::new();
    let mut refused = 0;
    for uid in 0..max as u32 {
        let (s, answer, took) = try_once(srv, uid);
        assert!(took < PROMPT, "attempt {uid} took {took:?} ({answer:?})");
        match answer {
            Answer::Served => held.push(s.unwrap()),
            Answer::Closed => {
                refused += 1;
                if refused == 8 {
                    return held;
                }
            }
            Answer::Other(why) => panic!("attempt {uid}: {why}; log:\n{}", srv.stderr()),
        }
    }
    panic!(
        "no connection refused in {max} attempts; log:\n{}",
        srv.stderr()
    );
}

/// With its open-file limit at 64 (soft and hard, so that it cannot raise
/// it), the server serves connections until it has no descriptor left,
/// then closes each new one at once (its client fails at once instead of
/// hanging in the backlog), logs that once, does not spin, and serves again
/// once connections close; a second episode is logged again.
#[test]
fn out_of_descriptors_refuses_at_once_logs_once_and_recovers() {
    // A -maxconns above what the descriptors hold, so that they run out.
    let mut srv = DcServer::builder()
        .nofile(64)
        .args(&["-maxconns", "1024"])
        .start();
    assert_eq!(srv.nofile_limits(), (64, 64));
    assert_eq!(
        srv.log_lines("the open-file limit (64) is below -maxconns (1024)")
            .len(),
        1,
        "{}",
        srv.stderr()
    );
    let out = "connections refused: out of file descriptors";
    let cleared = "connections served again: ";
    for episode in 1..=2 {
        let held = fill_descriptors(&srv, 200);
        eprintln!(
            "episode {episode}: {} connections served with 64 descriptors ({} open)",
            held.len(),
            srv.open_fds()
        );
        assert!(
            (32..64).contains(&held.len()),
            "served {} connections",
            held.len()
        );
        assert!(srv.wait_for_log(out, IO_LIMIT), "log:\n{}", srv.stderr());
        assert_eq!(srv.log_lines(out).len(), episode, "{}", srv.stderr());
        // Out of descriptors and idle: no thread spins.
        let before = cpu_time(srv.pid());
        thread::sleep(Duration::from_secs(1));
        let used = cpu_time(srv.pid()) - before;
        assert!(used < Duration::from_millis(300), "{used:?} of CPU in 1 s");
        // Still refusing, promptly, and not logging it again.
        for uid in 0..5 {
            let (_, answer, took) = try_once(&srv, 1000 + uid);
            assert_eq!(
                answer,
                Answer::Closed,
                "attempt {uid}; log:\n{}",
                srv.stderr()
            );
            assert!(took < PROMPT, "took {took:?}");
        }
        assert_eq!(srv.log_lines(out).len(), episode, "{}", srv.stderr());
        assert!(srv.is_running());

        drop(held);
        thread::sleep(EPISODE_QUIET);
        let again = served_within(&srv, IO_LIMIT).expect("served once descriptors freed up");
        assert!(
            srv.wait_for_log(cleared, IO_LIMIT),
            "log:\n{}",
            srv.stderr()
        );
        let lines = srv.log_lines(cleared);
        assert_eq!(lines.len(), episode, "{}", srv.stderr());
        assert!(
            lines[episode - 1].ends_with("refused for lack of file descriptors"),
            "{}",
            lines[episode - 1]
        );
        drop(again);
    }
    assert!(srv.is_running());
}

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    let mut srv = DcServer::start(&["-idle", "300"]);
    let start = Instant::now();
    let mut silent = connect(srv.socket(), IO_LIMIT).unwrap();
    let mut half = connect(srv.socket(), IO_LIMIT).unwrap();
    half.write_all(&request(3, 1, b"some-id")[..9]).unwrap();
    let mut busy = connect(srv.socket(), IO_LIMIT).unwrap();
    for uid in 0..10 {
        assert_eq!(ask(&mut busy, uid), Answer::Served, "busy, request {uid}");
        thread::sleep(Duration::from_millis(100));
    }
    // By now (a second) the silent and half-sent ones are gone.
    for (what, s) in [("silent", &mut silent), ("half-sent", &mut half)] {
        let got = read_to_close(s, PROMPT).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(got.is_empty(), "{what}: a reply to nothing");
    }
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(ask(&mut busy, 99), Answer::Served, "busy closed");

    // Closed no earlier than the idle time.
    let mut fresh = connect(srv.socket(), IO_LIMIT).unwrap();
    let opened = Instant::now();
    read_to_close(&mut fresh, PROMPT).expect("idle connection closed");
    assert!(
        opened.elapsed() >= Duration::from_millis(290),
        "{:?}",
        opened.elapsed()
    );
    assert!(srv.is_running());

    // Without -idle, a silent connection stays.
    let plain = DcServer::start(&[]);
    let mut quiet = connect(plain.socket(), IO_LIMIT).unwrap();
    assert!(read_to_close(&mut quiet, Duration::from_millis(1500)).is_err());
    assert_eq!(ask(&mut quiet, 5), Answer::Served);
}

/// A request started must be finished within 30 s, whether the client
/// stops half-way or trickles a byte at a time.
#[test]
fn a_request_left_half_sent_is_dropped_after_30_s() {
    let srv = DcServer::start(&[]);
    let mut stopped = connect(srv.socket(), IO_LIMIT).unwrap();
    let frame = request(
        0,
        1,
        &replay::add_payload(60_000, b"slow", &vec![b'x'; 2000]),
    );
    stopped.write_all(&frame[..20]).unwrap();
    let mut trickle = connect(srv.socket(), IO_LIMIT).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let trickled = loop {
        if trickle.write_all(&frame[sent..sent + 1]).is_err() {
            break start.elapsed();
        }
        sent += 1;
        thread::sleep(Duration::from_millis(500));
        if start.elapsed() > Duration::from_secs(40) {
            panic!("the trickling client was not dropped in 40 s");
        }
        // Written bytes succeed until the close is seen; look for it.
        trickle.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let closed = matches!(std::io::Read::read(&mut trickle, &mut b), Ok(0));
        trickle.set_nonblocking(false).unwrap();
        if closed {
            break start.elapsed();
        }
    };
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(33)).contains(&trickled),
        "trickling client dropped after {trickled:?}"
    );
    let got = read_to_close(&mut stopped, Duration::from_secs(5)).expect("stopped client dropped");
    assert!(got.is_empty());
    assert!(start.elapsed() >= Duration::from_secs(29));
}

#[test]
fn maxbytes_evicts_the_soonest_expiring_and_refuses_what_cannot_fit() {
    let srv = DcServer::start(&["-maxbytes", "64k", "-sessions", "1000"]);
    let client = Client::new(&srv.address(), Flags::PERSISTENT).unwrap();
    client.set_timeout(Duration::from_secs(5));
    let data = |b: u8| vec![b; 30_000];
    // 3 x (6-byte id + 30000 bytes) > 65536: the third evicts the first,
    // which expires soonest (though it was not added first).
    client.add(b"late-1", &data(1), 600_000).unwrap();
    client.add(b"soon-2", &data(2), 60_000).unwrap();
    client.add(b"late-3", &data(3), 600_000).unwrap();
    assert!(!client.have(b"soon-2").unwrap());
    assert_eq!(client.get(b"late-1").unwrap(), Some(data(1)));
    assert_eq!(client.get(b"late-3").unwrap(), Some(data(3)));

    let small = DcServer::start(&["-maxbytes", "1k"]);
    let client = Client::new(&small.address(), Flags::PERSISTENT).unwrap();
    client.set_timeout(Duration::from_secs(5));
    client.add(b"fits", &[7; 1000], 60_000).unwrap();
    match client.add(b"too-big", &[8; 1019], 60_000) {
        Err(ClientError::Refused(Status::AddDataRange)) => {}
        other => panic!("a session larger than -maxbytes: {other:?}"),
    }
    assert!(client.have(b"fits").unwrap(), "a refused ADD evicted");
    client.add(b"exact", &[9; 1019], 60_000).unwrap();
    assert!(!client.have(b"fits").unwrap());
    assert_eq!(client.get(b"exact").unwrap(), Some(vec![9; 1019]));
}

/// The largest session a single ADD can carry with a `len`-byte id.
fn max_data(id_len: usize) -> usize {
    32_768 - 8 - id_len
}

/// Clients that pipeline thousands of GETs of 32 KiB sessions and never
/// read a reply make the server hold a bounded amount each (its VmRSS grows
/// by under 512 KiB per client), and other clients are served meanwhile.
#[test]
fn memory_per_misbehaving_client_is_bounded() {
    const CLIENTS: usize = 16;
    const GETS: u32 = 4_000;
    const BOUND_KB: u64 = 512;
    let srv = DcServer::start(&["-sessions", "100"]);
    let ids: Vec<Vec<u8>> = (0..4).map(|i| format!("big-{i}").into_bytes()).collect();
    let good = Client::new(&srv.address(), Flags::PERSISTENT).unwrap();
    good.set_timeout(Duration::from_secs(5));
    for (i, id) in ids.iter().enumerate() {
        good.add(id, &vec![i as u8; max_data(id.len())], 600_000)
            .unwrap();
    }
    // Let a few connections go through whole request/reply cycles, so that
    // the baseline has the allocator's arenas and thread stacks warmed up.
    for _ in 0..CLIENTS {
        let c = Client::new(&srv.address(), Flags::empty()).unwrap();
        c.set_timeout(Duration::from_secs(5));
        for id in &ids {
            assert!(c.get(id).unwrap().is_some());
        }
    }
    thread::sleep(Duration::from_millis(300));
    let before = srv.status_kb("VmRSS");

    let gets: Vec<u8> = (0..GETS)
        .flat_map(|uid| request(1, uid, &ids[uid as usize % ids.len()]))
        .collect();
    let hogs: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = connect(srv.socket(), Duration::from_millis(500)).unwrap();
            // Writes stop once the server stops reading (its replies are
            // stuck in our unread socket buffer): that is the point.
            let mut sent = 0;
            while sent < gets.len() {
                match s.write(&gets[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            s
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let during = srv.status_kb("VmRSS");
    let per_client = during.saturating_sub(before) / CLIENTS as u64;
    eprintln!(
        "VmRSS {before} kB before, {during} kB with {CLIENTS} clients that never read: \
         {per_client} kB each"
    );
    assert!(
        per_client < BOUND_KB,
        "VmRSS grew by {per_client} kB per misbehaving client"
    );
    // Others are served meanwhile, large sessions included.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            good.get(id).unwrap(),
            Some(vec![i as u8; max_data(id.len())])
        );
    }
    let (_, answer, _) = try_once(&srv, 5);
    assert_eq!(answer, Answer::Served);
    drop(hogs);
}

#[test]
fn limit_options_are_checked() {
    for (args, needle) in [
        (&["-maxconns", "0"][..], "-maxconns"),
        (&["-maxconns", "1000001"], "-maxconns"),
        (&["-maxconns", "many"], "-maxconns"),
        (&["-idle", "3600001"], "-idle"),
        (&["-idle", "-1"], "-idle"),
        (&["-maxbytes", "1T"], "-maxbytes"),
        (&["-maxbytes", "1025G"], "-maxbytes"),
        (&["-maxbytes", "12kb"], "-maxbytes"),
        (&["-maxbytes"], "maxbytes"),
    ] {
        let run = run_tool(
            Command::new(dc_server_bin())
                .args(["-listen", "UNIX:/nonexistent/dir/s.sock"])
                .args(args),
            Duration::from_secs(10),
        );
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
    }
    let mut srv = DcServer::start(&["--maxconns", "10", "-idle", "60000", "-maxbytes", "2G"]);
    let (_, answer, _) = try_once(&srv, 1);
    assert_eq!(answer, Answer::Served);
    assert!(srv.is_running());
    assert!(
        srv.log_lines("open-file limit").is_empty(),
        "{}",
        srv.stderr()
    );
}
