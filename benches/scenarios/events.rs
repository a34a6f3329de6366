//! Many clients from few threads: each connection is a client with one
//! request in flight at a time (closed loop), driven by an event loop
//! (epoll through mio) instead of a thread of its own. On a machine whose
//! two CPUs also run the server, this leaves the server the CPU time that
//! threads of blocking clients would spend being scheduled, so the figures
//! describe the server, as with clients on other machines of a farm.

use crate::load::PRELOADED;
use crate::nonblocking::{connect_unix, poll_until, read_some, write_some};
use crate::procs::KeyValues;
use crate::wire::{self, Rng};
use distcache::internals::latency::Histogram;
use distcache::internals::proto::{encode_message, AddRequest, Command, Decoder, Message, Role};
use mio::net::UnixStream;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

const WARM_UP: Duration = Duration::from_millis(200);

struct Client {
    stream: UnixStream,
    rng: Rng,
    out: Vec<u8>,
    written: usize,
    decoder: Decoder,
    uid: u32,
    /// What is in flight: the command and the session index.
    pending: (Command, u64),
    sent_at: Instant,
}

impl Client {
    /// Queues the next request of the 80/15/5 mix.
    fn next_request(&mut self, keys: u64, uid: u32) -> Result<(), String> {
        let i = self.rng.below(keys);
        let id = wire::id(PRELOADED, i);
        let roll = self.rng.below(100);
        self.out.clear();
        self.written = 0;
        self.uid = uid;
        let (cmd, result) = if roll < 80 {
            (
                Command::Get,
                encode_message(&mut self.out, false, uid, Command::Get, &id),
            )
        } else if roll < 95 {
            let mut payload = Vec::with_capacity(wire::DATA_LEN + 64);
            AddRequest {
                timeout_msecs: wire::TIMEOUT_MS,
                id: &id,
                data: wire::data(i),
            }
            .encode(&mut payload)
            .map_err(|e| e.to_string())?;
            (
                Command::Add,
                encode_message(&mut self.out, false, uid, Command::Add, &payload),
            )
        } else {
            (
                Command::Remove,
                encode_message(&mut self.out, false, uid, Command::Remove, &id),
            )
        };
        result.map_err(|e| e.to_string())?;
        self.pending = (cmd, i);
        self.sent_at = Instant::now();
        Ok(())
    }

    /// Writes what it can of the queued request.
    fn flush(&mut self) -> Result<(), String> {
        write_some(&mut self.stream, &self.out, &mut self.written)
    }

    fn check(&self, reply: &Message) -> Result<(), String> {
        let (cmd, i) = self.pending;
        if reply.uid != self.uid || reply.command != cmd {
            return Err("a reply for another request".into());
        }
        match cmd {
            Command::Get if reply.payload.len() >= 5 && reply.payload != wire::data(i) => {
                Err(format!("GET of session {i} returned other bytes"))
            }
            Command::Get if reply.payload.len() < 5 && reply.payload != [1] => {
                Err("a malformed GET reply".into())
            }
            _ => Ok(()),
        }
    }
}

/// `mixed-events addr=UNIX:PATH conns=N secs=S keys=K [threads=T]`: the
/// mixed load of [`crate::load::mixed`] from N connections driven by T
/// event-loop threads (default 1); prints the same line.
pub fn mixed_events(kv: &KeyValues) -> Result<(), String> {
    let conns: usize = kv.num("conns")?;
    let secs: f64 = kv.num("secs")?;
    let keys: u64 = kv.num("keys")?;
    let threads: usize = kv.num_or("threads", 1usize)?.clamp(1, conns.max(1));
    let path = kv
        .str("addr")?
        .strip_prefix("UNIX:")
        .ok_or("mixed-events takes a UNIX: address")?
        .to_string();
    let start = Instant::now() + WARM_UP;
    let stop = start + Duration::from_secs_f64(secs);
    let mut workers = Vec::new();
    for t in 0..threads {
        let n = conns / threads + usize::from(t < conns % threads);
        let path = path.clone();
        workers.push(std::thread::spawn(move || {
            drive(t, n, &path, keys, start, stop)
        }));
    }
    let mut all = Histogram::new();
    for w in workers {
        all.merge(
            &w.join()
                .map_err(|_| "an event loop panicked".to_string())??,
        );
    }
    crate::load::print_latencies(&all, secs);
    Ok(())
}

/// One event loop: `n` clients until `stop`; latencies of the requests
/// sent from `start` on.
fn drive(
    t: usize,
    n: usize,
    path: &str,
    keys: u64,
    start: Instant,
    stop: Instant,
) -> Result<Histogram, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut clients = Vec::with_capacity(n);
    let mut uid = (t as u32) << 24;
    for k in 0..n {
        let stream = connect_unix(&poll, path, k)?;
        let mut c = Client {
            stream,
            rng: Rng::new((t * 100_000 + k) as u64 + 7),
            out: Vec::with_capacity(2048),
            written: 0,
            decoder: Decoder::new(Role::Client),
            uid: 0,
            pending: (Command::Get, 0),
            sent_at: Instant::now(),
        };
        uid = uid.wrapping_add(1);
        c.next_request(keys, uid)?;
        c.flush()?;
        clients.push(c);
    }
    let mut events = Events::with_capacity(1024);
    let mut hist = Histogram::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if Instant::now() >= stop {
            return Ok(hist);
        }
        poll_until(&mut poll, &mut events, stop)?;
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if ev.is_writable() {
                c.flush()?;
            }
            if !ev.is_readable() {
                continue;
            }
            while let Some(got) = read_some(&mut c.stream, &mut buf)? {
                let mut input = &buf[..got];
                while !input.is_empty() {
                    let (used, msg) = c.decoder.decode(input).map_err(|e| e.to_string())?;
                    input = &input[used..];
                    let Some(reply) = msg else { continue };
                    c.check(&reply)?;
                    let done = Instant::now();
                    if c.sent_at >= start {
                        hist.record(done - c.sent_at);
                    }
                    uid = uid.wrapping_add(1);
                    c.next_request(keys, uid)?;
                    c.flush()?;
                }
            }
        }
    }
}
