//! A soak test with a model: many clients run mixed ADD, GET, REMOVE and
//! HAVE against a real dc_server for minutes, and every answer is checked
//! against what the model knows.
//!
//! `DISTCACHE_SOAK_SECS` sets the run time (default 120 s, split between
//! two phases); `make soak DURATION=600` runs it longer, in release mode.
//!
//! Each worker thread owns its ids (so the model of each id is exact) and
//! its connection(s): a library client that keeps its connection, one that
//! connects for every operation, or a raw connection speaking the wire
//! format by hand (the only kind that can read back sessions of 1 to 4
//! bytes, which the library, like the original, does not take as session
//! data). Sessions are 1 byte to 32 KiB, with lifetimes from 300 ms (they
//! expire during the run) to 10 minutes; ids are reused after their session
//! is removed or gone.
//!
//! The model knows when each ADD was sent and acknowledged, so for any
//! later call it knows whether the session is certainly still live,
//! certainly expired, or either (within a few milliseconds of its expiry).
//! Every answer must fit: data returned must be exactly the data stored; a
//! session certainly expired or removed must not be found; a session
//! certainly live must be found, unless the server evicted it for room.
//! Phase 1 gives the server room for every session, so any loss fails the
//! test; phase 2 gives it room for two thirds of them, and the losses the model sees
//! must not exceed the evictions the server reports when stopped
//! (`Info, stopped: ... evicted N`). In both phases the server's count of
//! operations must equal the clients', and its resident memory, sampled
//! twice a second, must not grow by more than [`RSS_GROWTH_KIB`] after the
//! first third of the phase.

mod server_proc;

use distcache::proto::Status;
use distcache::{Client, ClientError, Flags};
use server_proc::{free_tcp_port, rss_kib, stop_counts, Net, ServerProcess};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// Worker threads: a third of each client kind.
const WORKERS: usize = 12;
/// Ids each worker owns.
const SLOTS: usize = 256;
/// Every call's timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Clock slack allowed around an expiry (the server counts whole ms).
const MARGIN: Duration = Duration::from_millis(5);
/// Growth of the server's VmRSS allowed after warm-up.
const RSS_GROWTH_KIB: u64 = 16 * 1024;
/// The largest session an ADD can carry with an id of `id_len` bytes.
fn max_session(id_len: usize) -> usize {
    32_768 - 8 - id_len
}

// ---------------------------------------------------------------------------
// A small deterministic generator (splitmix64)

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

// ---------------------------------------------------------------------------
// The model of one id

enum Slot {
    /// Certainly not stored.
    Absent,
    Stored {
        data: Vec<u8>,
        /// When the ADD was sent and when its OK came back.
        sent: Instant,
        acked: Instant,
        lifetime: Duration,
    },
}

/// What the model says of a stored session for a call sent at `start`
/// and answered at `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Live when the server handled the call, whenever that was.
    Live,
    /// Expired by then.
    Expired,
    /// Either.
    Unsure,
}

fn life(sent: Instant, acked: Instant, lifetime: Duration, start: Instant, end: Instant) -> Life {
    if end + MARGIN < sent + lifetime {
        Life::Live
    } else if start > acked + lifetime + MARGIN {
        Life::Expired
    } else {
        Life::Unsure
    }
}

/// What a worker counted.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ops: u64,
    adds: u64,
    /// GETs that returned a session, checked byte for byte.
    gets_checked: u64,
    /// HAVE and REMOVE that found a session the model had.
    found_checked: u64,
    /// Calls that correctly found nothing.
    misses_checked: u64,
    /// Sessions certainly live that were gone (evicted, if anything).
    losses: u64,
    /// Sessions stored for 2 s or less (most expire during the run).
    short_lived: u64,
    /// Sessions of 1 to 4 bytes stored (raw clients only).
    tiny: u64,
    bytes_checked: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.ops += o.ops;
        self.adds += o.adds;
        self.gets_checked += o.gets_checked;
        self.found_checked += o.found_checked;
        self.misses_checked += o.misses_checked;
        self.losses += o.losses;
        self.short_lived += o.short_lived;
        self.tiny += o.tiny;
        self.bytes_checked += o.bytes_checked;
    }
}

// ---------------------------------------------------------------------------
// The wire format by hand, for the raw clients

const PROTO_LEVEL: [u8; 4] = [0x00, 0x11, 0x00, 0x00];

fn request(op: u8, uid: u32, payload: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = payload.chunks(2048).collect();
    let mut out = Vec::with_capacity(payload.len() + 14 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&PROTO_LEVEL);
        out.push(0);
        out.extend_from_slice(&uid.to_be_bytes());
        out.extend_from_slice(&[0, op, u8::from(i + 1 == chunks.len())]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

enum RawStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl RawStream {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            RawStream::Unix(s) => s,
            RawStream::Tcp(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A connection speaking the protocol by hand, kept open.
struct Raw {
    stream: RawStream,
    uid: u32,
}

impl Raw {
    fn connect(address: &str) -> Raw {
        let stream = if let Some(path) = address.strip_prefix("UNIX:") {
            let s = UnixStream::connect(path).expect("raw connect");
            s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
            RawStream::Unix(s)
        } else {
            let hostport = address.strip_prefix("IP:").expect("IP: address");
            let s = TcpStream::connect(hostport).expect("raw connect");
            s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
            s.set_nodelay(true).expect("nodelay");
            RawStream::Tcp(s)
        };
        Raw { stream, uid: 0 }
    }

    /// One request, one reply (its payload); every header field checked.
    fn call(&mut self, op: u8, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.uid = self.uid.wrapping_add(1);
        let io = self.stream.io();
        io.write_all(&request(op, self.uid, payload))
            .map_err(|e| format!("send: {e}"))?;
        let mut reply = Vec::new();
        for _ in 0..16 {
            let mut h = [0u8; 14];
            io.read_exact(&mut h).map_err(|e| format!("receive: {e}"))?;
            let uid = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            if h[..4] != PROTO_LEVEL || h[4] != 1 || uid != self.uid || h[9] != 0 || h[10] != op {
                return Err(format!("bad reply header {h:02x?} for uid {}", self.uid));
            }
            let len = usize::from(u16::from_be_bytes([h[12], h[13]]));
            let at = reply.len();
            reply.resize(at + len, 0);
            io.read_exact(&mut reply[at..])
                .map_err(|e| format!("receive: {e}"))?;
            match h[11] {
                1 => return Ok(reply),
                0 => {}
                c => return Err(format!("complete byte {c}")),
            }
        }
        Err("a reply of more than 16 frames".into())
    }
}

// ---------------------------------------------------------------------------
// The clients

enum Conn {
    Lib(Client),
    Raw(Raw),
}

impl Conn {
    /// Ok(true) stored, Ok(false) an existing session was in the way.
    fn add(&mut self, id: &[u8], data: &[u8], ms: u32) -> Result<bool, String> {
        match self {
            Conn::Lib(c) => match c.add(id, data, ms) {
                Ok(()) => Ok(true),
                Err(ClientError::Refused(Status::AddMatchingSession)) => Ok(false),
                Err(e) => Err(e.to_string()),
            },
            Conn::Raw(r) => {
                let mut p = Vec::with_capacity(8 + id.len() + data.len());
                p.extend_from_slice(&ms.to_be_bytes());
                p.extend_from_slice(&(id.len() as u32).to_be_bytes());
                p.extend_from_slice(id);
                p.extend_from_slice(data);
                match r.call(0, &p)?.as_slice() {
                    [0x00] => Ok(true),
                    [0x65] => Ok(false),
                    other => Err(format!("ADD reply {other:02x?}")),
                }
            }
        }
    }

    fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            Conn::Lib(c) => c.get(id).map_err(|e| e.to_string()),
            // A miss is the single byte 0x01, and no session is [0x01].
            Conn::Raw(r) => r
                .call(1, id)
                .map(|reply| (reply != [0x01]).then_some(reply)),
        }
    }

    fn found(&mut self, op: u8, id: &[u8]) -> Result<bool, String> {
        match self {
            Conn::Lib(c) if op == 2 => c.remove(id).map_err(|e| e.to_string()),
            Conn::Lib(c) => c.have(id).map_err(|e| e.to_string()),
            Conn::Raw(r) => match r.call(op, id)?.as_slice() {
                [0x00] => Ok(true),
                [0x01] => Ok(false),
                other => Err(format!("op {op} reply {other:02x?}")),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Persistent,
    PerOperation,
    Raw,
}

struct Worker {
    name: String,
    kind: Kind,
    conn: Conn,
    rng: Rng,
    slots: Vec<Slot>,
    ids: Vec<Vec<u8>>,
    tally: Tally,
    /// Whether the server may evict (phase 2): losses are counted, not fatal.
    may_evict: bool,
}

impl Worker {
    fn new(index: usize, phase: u32, address: &str, may_evict: bool) -> Worker {
        let kind = [Kind::Persistent, Kind::PerOperation, Kind::Raw][index % 3];
        let conn = match kind {
            Kind::Persistent => Conn::Lib(
                Client::new(address, Flags::PERSISTENT | Flags::PERSISTENT_RETRY).expect("client"),
            ),
            Kind::PerOperation => Conn::Lib(Client::new(address, Flags::empty()).expect("client")),
            Kind::Raw => Conn::Raw(Raw::connect(address)),
        };
        if let Conn::Lib(c) = &conn {
            c.set_timeout(TIMEOUT);
        }
        let name = format!("worker {index} ({kind:?}, {address})");
        Worker {
            ids: (0..SLOTS)
                .map(|s| format!("p{phase}-w{index}-s{s}").into_bytes())
                .collect(),
            slots: (0..SLOTS).map(|_| Slot::Absent).collect(),
            name,
            kind,
            conn,
            rng: Rng(0x5eed_0000 + (phase as u64) * 1000 + index as u64),
            tally: Tally::default(),
            may_evict,
        }
    }

    fn new_session(&mut self, id_len: usize) -> Vec<u8> {
        // The library reads a reply under 5 bytes as no session.
        let min = if self.kind == Kind::Raw { 1 } else { 5 };
        let max = max_session(id_len) as u64;
        let len = match self.rng.percent() {
            0..=14 => self.rng.range(min, 64),
            15..=64 => self.rng.range(65, 2048),
            65..=89 => self.rng.range(2049, 16_384),
            90..=97 => self.rng.range(16_385, max),
            _ => max,
        } as usize;
        let seed = self.rng.next();
        let mut data: Vec<u8> = (0..len)
            .map(|i| (seed.rotate_left((i % 64) as u32) as u8).wrapping_add(i as u8))
            .collect();
        if data == [0x01] {
            data[0] = 0x02; // a raw GET could not tell it from a miss
        }
        data
    }

    fn lifetime(&mut self) -> Duration {
        Duration::from_millis(match self.rng.percent() {
            0..=24 => self.rng.range(300, 2000),
            25..=34 => self.rng.range(2000, 20_000),
            _ => self.rng.range(60_000, 600_000),
        })
    }

    /// A session certainly live was not there: a failure unless the server
    /// may have evicted it.
    fn lost(&mut self, op: &str, slot: usize) -> Result<(), String> {
        self.tally.losses += 1;
        if self.may_evict {
            Ok(())
        } else {
            Err(format!(
                "{}: {op} of {} found nothing; the session is certainly live and the \
                 server has room for every session",
                self.name,
                String::from_utf8_lossy(&self.ids[slot])
            ))
        }
    }

    /// One random operation, checked against the model.
    fn step(&mut self) -> Result<(), String> {
        let s = (self.rng.next() % SLOTS as u64) as usize;
        let id = self.ids[s].clone();
        let now = Instant::now();
        let state = match &self.slots[s] {
            Slot::Absent => None,
            Slot::Stored {
                sent,
                acked,
                lifetime,
                ..
            } => Some(life(*sent, *acked, *lifetime, now, now)),
        };
        let roll = self.rng.percent();
        let op = match state {
            None | Some(Life::Expired) if roll < 75 => 0,
            Some(Life::Live) if roll < 5 => 0,
            _ => match roll % 20 {
                0..=10 => 1,
                11..=16 => 3,
                _ => 2,
            },
        };
        let data = (op == 0).then(|| self.new_session(id.len()));
        let lifetime = self.lifetime();
        let start = Instant::now();
        let result = match op {
            0 => {
                let ms = u32::try_from(lifetime.as_millis()).expect("lifetime in ms");
                let data = data.as_deref().expect("data for an ADD");
                self.conn.add(&id, data, ms).map(Answer::Added)
            }
            1 => self.conn.get(&id).map(Answer::Got),
            _ => self.conn.found(op, &id).map(Answer::Found),
        };
        let end = Instant::now();
        self.tally.ops += 1;
        let answer = result.map_err(|e| format!("{}: op {op} failed: {e}", self.name))?;
        if end - start > TIMEOUT + Duration::from_secs(1) {
            return Err(format!("{}: op {op} took {:?}", self.name, end - start));
        }
        let life_now = match &self.slots[s] {
            Slot::Absent => None,
            Slot::Stored {
                sent,
                acked,
                lifetime,
                ..
            } => Some(life(*sent, *acked, *lifetime, start, end)),
        };
        let name = String::from_utf8_lossy(&id).into_owned();
        match answer {
            Answer::Added(true) => {
                if life_now == Some(Life::Live) {
                    // Room for it means the old one was gone.
                    self.lost("ADD", s)?;
                }
                let data = data.expect("data for an ADD");
                self.tally.adds += 1;
                if lifetime <= Duration::from_secs(2) {
                    self.tally.short_lived += 1;
                }
                if data.len() < 5 {
                    self.tally.tiny += 1;
                }
                self.slots[s] = Slot::Stored {
                    data,
                    sent: start,
                    acked: end,
                    lifetime,
                };
            }
            Answer::Added(false) => {
                if !matches!(life_now, Some(Life::Live | Life::Unsure)) {
                    return Err(format!(
                        "{}: ADD of {name} refused as existing; the model has none live \
                         ({life_now:?})",
                        self.name
                    ));
                }
                self.tally.found_checked += 1;
            }
            Answer::Got(Some(got)) => match &self.slots[s] {
                Slot::Stored { data, .. } if life_now != Some(Life::Expired) => {
                    if got != *data {
                        return Err(format!(
                            "{}: GET {name} returned {} bytes that differ from the {} stored",
                            self.name,
                            got.len(),
                            data.len()
                        ));
                    }
                    self.tally.gets_checked += 1;
                    self.tally.bytes_checked += got.len() as u64;
                }
                _ => {
                    return Err(format!(
                        "{}: GET {name} returned {} bytes; the model has none live ({life_now:?})",
                        self.name,
                        got.len()
                    ))
                }
            },
            Answer::Found(true) => {
                if !matches!(life_now, Some(Life::Live | Life::Unsure)) {
                    return Err(format!(
                        "{}: op {op} found {name}; the model has none live ({life_now:?})",
                        self.name
                    ));
                }
                self.tally.found_checked += 1;
                if op == 2 {
                    self.slots[s] = Slot::Absent;
                }
            }
            Answer::Got(None) | Answer::Found(false) => {
                if life_now == Some(Life::Live) {
                    self.lost(if op == 1 { "GET" } else { "HAVE/REMOVE" }, s)?;
                } else {
                    self.tally.misses_checked += 1;
                }
                // Gone for good: it cannot come back.
                self.slots[s] = Slot::Absent;
            }
        }
        Ok(())
    }
}

enum Answer {
    Added(bool),
    Got(Option<Vec<u8>>),
    Found(bool),
}

// ---------------------------------------------------------------------------
// A phase

struct PhaseResult {
    tally: Tally,
    evicted: u64,
    expired: u64,
    server_ops: u64,
    rss_first: u64,
    rss_warm: u64,
    rss_max_after: u64,
    rss_last: u64,
}

fn run_phase(phase: u32, sessions: u32, duration: Duration) -> PhaseResult {
    let port = free_tcp_port();
    let tcp = format!("IP:127.0.0.1:{port}");
    let sessions_arg = sessions.to_string();
    let mut server =
        ServerProcess::start(Net::Unix, &["-sessions", &sessions_arg, "-listen", &tcp]);
    let addresses = [server.address(), tcp];
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let pid = server.pid();
    let start = Instant::now();
    let (tally, samples) = thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                let address = addresses[i / 3 % 2].clone();
                let (stop, failure) = (&stop, &failure);
                s.spawn(move || {
                    let mut w = Worker::new(i, phase, &address, sessions < 100_000);
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = w.step() {
                            failure.lock().unwrap().get_or_insert(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    w.tally
                })
            })
            .collect();
        let mut samples = Vec::new();
        while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            samples.push((start.elapsed(), rss_kib(pid)));
            thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for w in workers {
            tally += w.join().expect("worker");
        }
        (tally, samples)
    });
    if let Some(e) = failure.into_inner().unwrap() {
        panic!("phase {phase}: {e}");
    }
    let counts = stop_counts(&server.terminate());
    let warm = duration / 3;
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(_, r)| *r)
        .collect();
    PhaseResult {
        tally,
        evicted: counts.evicted,
        expired: counts.expired,
        server_ops: counts.operations,
        rss_first: samples.first().map_or(0, |s| s.1),
        rss_warm: after.first().copied().unwrap_or(0),
        rss_max_after: after.iter().copied().max().unwrap_or(0),
        rss_last: samples.last().map_or(0, |s| s.1),
    }
}

fn report(phase: u32, what: &str, r: &PhaseResult, took: Duration) {
    let t = &r.tally;
    println!(
        "soak phase {phase} ({what}), {:.0} s: {} operations ({} ADD of new sessions, {} of \
         them short-lived and {} of 1-4 bytes); checked: {} GETs byte for byte ({} MB), {} \
         HAVE/REMOVE found, {} misses; losses {}; server: {} operations, evicted {}, \
         expired {}; VmRSS {} KiB at start, {} KiB after warm-up, at most {} KiB after, {} KiB \
         at the end",
        took.as_secs_f64(),
        t.ops,
        t.adds,
        t.short_lived,
        t.tiny,
        t.gets_checked,
        t.bytes_checked / 1_000_000,
        t.found_checked,
        t.misses_checked,
        t.losses,
        r.server_ops,
        r.evicted,
        r.expired,
        r.rss_first,
        r.rss_warm,
        r.rss_max_after,
        r.rss_last
    );
}

fn check_common(phase: u32, r: &PhaseResult) {
    assert_eq!(
        r.server_ops, r.tally.ops,
        "phase {phase}: the server counted other operations than the clients made"
    );
    assert!(
        r.tally.gets_checked > 0 && r.tally.misses_checked > 0 && r.tally.short_lived > 0,
        "phase {phase}: the run checked too little: {:?}",
        r.tally
    );
    assert!(
        r.rss_max_after <= r.rss_warm + RSS_GROWTH_KIB,
        "phase {phase}: dc_server VmRSS grew from {} KiB to {} KiB after warm-up",
        r.rss_warm,
        r.rss_max_after
    );
}

#[test]
fn soak_against_a_model() {
    let total = std::env::var("DISTCACHE_SOAK_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 10)
        .unwrap_or(120);
    let half = Duration::from_secs(total / 2);

    // Phase 1: room for every session (12 x 256 ids): nothing may be lost.
    let started = Instant::now();
    let roomy = run_phase(1, 100_000, half);
    report(
        1,
        "-sessions 100000, no eviction",
        &roomy,
        started.elapsed(),
    );
    check_common(1, &roomy);
    assert_eq!(roomy.tally.losses, 0, "phase 1 lost sessions");
    assert_eq!(roomy.evicted, 0, "phase 1: the server evicted sessions");
    assert!(roomy.expired > 0, "phase 1: no session expired");

    // Phase 2: room for two thirds of them: evictions (of the sessions that
    // expire soonest, so few get to expire), each loss accounted for.
    let started = Instant::now();
    let tight = run_phase(2, 2000, half);
    report(2, "-sessions 2000, evicting", &tight, started.elapsed());
    check_common(2, &tight);
    assert!(tight.evicted > 0, "phase 2: the server evicted nothing");
    assert!(
        tight.tally.losses <= tight.evicted,
        "phase 2: {} sessions lost, only {} evicted",
        tight.tally.losses,
        tight.evicted
    );
}
