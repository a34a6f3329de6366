//! The load generator of scenario 8: GET hits of preloaded 1 KiB values in
//! the protocol of each server ([`crate::peerproto`]), from one blocking
//! connection or from many connections of one event loop, each connection
//! with one request in flight. Every reply is checked: a miss, an error or
//! other bytes fail the run.

use crate::load::print_latencies;
use crate::nonblocking::{connect_unix, poll_until, read_some, write_some};
use crate::peerproto::{connect, Proto, Reply};
use crate::procs::KeyValues;
use crate::wire::Rng;
use distcache::internals::latency::Histogram;
use mio::{Events, Poll};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WARM_UP: Duration = Duration::from_millis(200);

/// `peer-load proto=distcache|memcache|resp unix=PATH conns=N secs=S
/// keys=K [seed=R]`: GET hits of random values 0..K from N connections
/// (one blocking connection when N is 1, else one event loop), one
/// request in flight on each; prints `ops=`, `secs=` and the latency
/// percentiles of the requests sent after a warm-up.
pub fn client(kv: &KeyValues) -> Result<(), String> {
    let proto = Proto::parse(kv.str("proto")?)?;
    let path = kv.str("unix")?;
    let conns: usize = kv.num("conns")?;
    let secs: f64 = kv.num("secs")?;
    let keys: u64 = kv.num("keys")?;
    let seed: u64 = kv.num_or("seed", 1)?;
    let start = Instant::now() + WARM_UP;
    let stop = start + Duration::from_secs_f64(secs);
    let hist = if conns <= 1 {
        blocking(proto, path, keys, seed, start, stop)?
    } else {
        events(proto, path, conns, keys, seed, start, stop)?
    };
    if hist.count() == 0 {
        return Err("no GET was answered in the measured window".into());
    }
    print_latencies(&hist, secs);
    Ok(())
}

/// One connection, a request at a time with blocking calls.
fn blocking(
    proto: Proto,
    path: &str,
    keys: u64,
    seed: u64,
    start: Instant,
    stop: Instant,
) -> Result<Histogram, String> {
    let mut s = connect(path)?;
    let mut rng = Rng::new(seed);
    let mut reply = Reply::new(proto);
    let mut out = Vec::with_capacity(128);
    let mut buf = vec![0u8; 16 * 1024];
    let mut hist = Histogram::new();
    let mut uid = 0u32;
    loop {
        let i = rng.below(keys);
        uid = uid.wrapping_add(1);
        out.clear();
        proto.get(&mut out, i, uid)?;
        let sent = Instant::now();
        if sent >= stop {
            return Ok(hist);
        }
        s.write_all(&out).map_err(|e| e.to_string())?;
        loop {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            if reply.feed(&buf[..n], i, uid)? {
                break;
            }
        }
        if sent >= start {
            hist.record(sent.elapsed());
        }
    }
}

/// A connection of the event loop and its request in flight.
struct Conn {
    stream: mio::net::UnixStream,
    rng: Rng,
    out: Vec<u8>,
    written: usize,
    reply: Reply,
    key: u64,
    uid: u32,
    sent_at: Instant,
}

impl Conn {
    fn send_next(&mut self, proto: Proto, keys: u64, uid: u32) -> Result<(), String> {
        self.key = self.rng.below(keys);
        self.uid = uid;
        self.out.clear();
        self.written = 0;
        proto.get(&mut self.out, self.key, uid)?;
        self.sent_at = Instant::now();
        self.flush()
    }

    /// Writes what it can of the request.
    fn flush(&mut self) -> Result<(), String> {
        write_some(&mut self.stream, &self.out, &mut self.written)
    }
}

/// `n` connections driven by one event loop (epoll through mio).
fn events(
    proto: Proto,
    path: &str,
    n: usize,
    keys: u64,
    seed: u64,
    start: Instant,
    stop: Instant,
) -> Result<Histogram, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(n);
    let mut uid = 0u32;
    for k in 0..n {
        let stream = connect_unix(&poll, path, k)?;
        let mut c = Conn {
            stream,
            rng: Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(k as u64)),
            out: Vec::with_capacity(128),
            written: 0,
            reply: Reply::new(proto),
            key: 0,
            uid: 0,
            sent_at: Instant::now(),
        };
        uid = uid.wrapping_add(1);
        c.send_next(proto, keys, uid)?;
        conns.push(c);
    }
    let mut events = Events::with_capacity(1024);
    let mut hist = Histogram::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll_until(&mut poll, &mut events, stop)?;
        for ev in events.iter() {
            let c = conns
                .get_mut(ev.token().0)
                .ok_or("an event for no connection")?;
            if ev.is_writable() {
                c.flush()?;
            }
            if !ev.is_readable() {
                continue;
            }
            while let Some(got) = read_some(&mut c.stream, &mut buf)? {
                if c.reply.feed(&buf[..got], c.key, c.uid)? {
                    if c.sent_at >= start && c.sent_at < stop {
                        hist.record(c.sent_at.elapsed());
                    }
                    uid = uid.wrapping_add(1);
                    c.send_next(proto, keys, uid)?;
                }
            }
        }
        if Instant::now() >= stop {
            return Ok(hist);
        }
    }
}
