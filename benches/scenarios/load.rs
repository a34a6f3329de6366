//! The client side of the scenarios, through the library's own [`Client`]
//! (what `DC_CTX_*` runs): round trips on one connection or a connection
//! each, a mixed load from many threads with latency percentiles, and the
//! preloading of a server's cache.

use crate::procs::KeyValues;
use crate::wire::{self, Rng};
use distcache::internals::latency::Histogram;
use distcache::internals::proto::{encode_message, AddRequest, Command, Decoder, Role};
use distcache::{Client, ClientError, Flags};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Family of the preloaded sessions.
pub const PRELOADED: u8 = 1;
const WARM_UP: Duration = Duration::from_millis(200);

/// Calls `op` for `secs` seconds; returns how many calls and the seconds
/// they took.
pub fn timed(secs: f64, mut op: impl FnMut() -> Result<(), String>) -> Result<(u64, f64), String> {
    let start = Instant::now();
    let window = Duration::from_secs_f64(secs);
    let mut ops = 0u64;
    loop {
        op()?;
        ops += 1;
        // Reading the clock costs tens of nanoseconds (vDSO); a round trip
        // costs microseconds.
        let elapsed = start.elapsed();
        if elapsed >= window {
            return Ok((ops, elapsed.as_secs_f64()));
        }
    }
}

fn client_for(kv: &KeyValues) -> Result<Client, String> {
    let flags = if kv.num_or("persistent", 1u8)? == 1 {
        Flags::PERSISTENT
    } else {
        Flags::empty()
    };
    let c = Client::new(kv.str("addr")?, flags).map_err(|e| e.to_string())?;
    c.set_timeout(Duration::from_secs(5));
    Ok(c)
}

fn get_hit(c: &Client, i: u64) -> Result<(), String> {
    match c.get(&wire::id(PRELOADED, i)) {
        Ok(Some(d)) if d == wire::data(i) => Ok(()),
        Ok(Some(_)) => Err(format!("GET of session {i} returned other bytes")),
        Ok(None) => Err(format!("GET of preloaded session {i} missed")),
        Err(e) => Err(format!("GET: {e}")),
    }
}

/// `client addr=ADDR op=get|add secs=S keys=N [persistent=0|1] [seed=K]
/// [tag=T] [resume=0|1]`: GET hits on random preloaded sessions (checked
/// byte for byte), or ADDs of new sessions of family T; prints `ops=N
/// secs=S`. With `resume=0` a `TLS:` client forgets its TLS session before
/// each GET, so that each connection makes a full handshake.
pub fn client(kv: &KeyValues) -> Result<(), String> {
    let c = client_for(kv)?;
    let secs: f64 = kv.num("secs")?;
    let keys: u64 = kv.num_or("keys", 1)?;
    let mut rng = Rng::new(kv.num_or("seed", 1)?);
    let tag: u8 = kv.num_or("tag", 2)?;
    // The expected data is computed outside the timed calls.
    let mut next = 0u64;
    let mut op: Box<dyn FnMut() -> Result<(), String>> = match kv.str("op")? {
        "get" if kv.num_or("resume", 1u8)? == 0 => Box::new(|| {
            c.forget_tls_session();
            get_hit(&c, rng.below(keys))
        }),
        "get" => Box::new(|| get_hit(&c, rng.below(keys))),
        "add" => Box::new(|| {
            next += 1;
            c.add(&wire::id(tag, next), wire::data(next), wire::TIMEOUT_MS)
                .map_err(|e| format!("ADD: {e}"))
        }),
        other => return Err(format!("unknown op '{other}'")),
    };
    let warm = Instant::now();
    while warm.elapsed() < WARM_UP {
        op()?;
    }
    let (ops, elapsed) = timed(secs, &mut op)?;
    println!("ops={ops} secs={elapsed:.4}");
    Ok(())
}

const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// `mixed addr=ADDR threads=N secs=S keys=K`: N threads, each a persistent
/// client, run 80% GET, 15% ADD, 5% REMOVE on K sessions for S seconds;
/// prints the aggregate `ops=`, `secs=` and `p50_us=`, `p99_us=`,
/// `p999_us=`, `max_us=`. A refused ADD (the session exists) is an answer
/// like any other; a network or protocol error fails the run.
pub fn mixed(kv: &KeyValues) -> Result<(), String> {
    let threads: usize = kv.num("threads")?;
    let secs: f64 = kv.num("secs")?;
    let keys: u64 = kv.num("keys")?;
    let addr = kv.str("addr")?.to_string();
    let phase = Arc::new(AtomicU8::new(WARMING));
    let ready = Arc::new(Barrier::new(threads + 1));
    let mut workers = Vec::new();
    for t in 0..threads {
        let (phase, ready, addr) = (phase.clone(), ready.clone(), addr.clone());
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || mixed_worker(t as u64, &addr, keys, &phase, &ready))
            .map_err(|e| e.to_string())?;
        workers.push(worker);
    }
    ready.wait();
    std::thread::sleep(WARM_UP);
    phase.store(MEASURING, Ordering::SeqCst);
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    phase.store(STOPPED, Ordering::SeqCst);
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Histogram::new();
    for w in workers {
        let h = w
            .join()
            .map_err(|_| "a client thread panicked".to_string())??;
        all.merge(&h);
    }
    print_latencies(&all, elapsed);
    Ok(())
}

/// Prints the `ops=`, `secs=` and percentile line of a mixed load.
pub fn print_latencies(all: &Histogram, secs: f64) {
    let us = |q: f64| all.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e6);
    println!(
        "ops={} secs={secs:.4} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        all.count(),
        us(0.50),
        us(0.99),
        us(0.999),
        all.max().as_secs_f64() * 1e6
    );
}

fn mixed_worker(
    seed: u64,
    addr: &str,
    keys: u64,
    phase: &AtomicU8,
    ready: &Barrier,
) -> Result<Histogram, String> {
    let c = Client::new(addr, Flags::PERSISTENT).map_err(|e| e.to_string());
    ready.wait();
    let c = c?;
    c.set_timeout(Duration::from_secs(5));
    let mut rng = Rng::new(seed + 1000);
    let mut hist = Histogram::new();
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOPPED {
            return Ok(hist);
        }
        let i = rng.below(keys);
        let id = wire::id(PRELOADED, i);
        let roll = rng.below(100);
        let start = Instant::now();
        let result = if roll < 80 {
            match c.get(&id) {
                Ok(Some(d)) if d != wire::data(i) => {
                    return Err(format!("GET of session {i} returned other bytes"))
                }
                other => other.map(drop),
            }
        } else if roll < 95 {
            match c.add(&id, wire::data(i), wire::TIMEOUT_MS) {
                Err(ClientError::Refused(_)) => Ok(()),
                other => other,
            }
        } else {
            c.remove(&id).map(drop)
        };
        let took = start.elapsed();
        result.map_err(|e| format!("client {seed}: {e}"))?;
        if p == MEASURING {
            hist.record(took);
        }
    }
}

/// `preload unix=PATH count=N`: stores sessions 0..N of the preloaded
/// family through one connection, requests pipelined; prints `added=N`.
pub fn preload_cmd(kv: &KeyValues) -> Result<(), String> {
    let path = kv.str("unix")?;
    let count: u64 = kv.num("count")?;
    let added = preload(path, count)?;
    println!("added={added}");
    Ok(())
}

/// Requests sent before their replies are read. The original server drops
/// a client whose replies pile up, so the window stays small.
const PRELOAD_WINDOW: u64 = 16;

/// Stores sessions 0..count through one connection, [`PRELOAD_WINDOW`]
/// requests at a time.
pub fn preload(path: &str, count: u64) -> Result<u64, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new(Role::Client);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    let mut payload = Vec::new();
    let mut ok = 0u64;
    let mut next = 0u64;
    while next < count {
        out.clear();
        let end = (next + PRELOAD_WINDOW).min(count);
        for i in next..end {
            payload.clear();
            let (id, data) = (wire::id(PRELOADED, i), wire::data(i));
            AddRequest {
                timeout_msecs: wire::TIMEOUT_MS,
                id: &id,
                data,
            }
            .encode(&mut payload)
            .map_err(|e| e.to_string())?;
            encode_message(&mut out, false, i as u32, Command::Add, &payload)
                .map_err(|e| e.to_string())?;
        }
        stream
            .write_all(&out)
            .map_err(|e| format!("preload: {e}"))?;
        let mut replies = next;
        while replies < end {
            let n = stream.read(&mut buf).map_err(|e| format!("preload: {e}"))?;
            if n == 0 {
                return Err("preload: the server closed the connection".into());
            }
            let mut input = &buf[..n];
            while !input.is_empty() {
                let (used, msg) = decoder.decode(input).map_err(|e| e.to_string())?;
                input = &input[used..];
                if let Some(m) = msg {
                    replies += 1;
                    ok += u64::from(m.payload == [0]);
                }
            }
        }
        next = end;
    }
    Ok(ok)
}
