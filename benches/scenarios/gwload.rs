//! The load generator of scenario 11: GET hits of preloaded 1 KiB values
//! and, a given share of the requests, stores of new 1 KiB values (ADD on
//! distcache's wire, `SET key value PX ttl` in RESP) that live one second,
//! either in distcache's protocol to one dc_server (in memory, or a
//! gateway to Redis) on a UNIX socket, or in RESP straight to the masters
//! of a Redis Cluster on loopback TCP. The second is cluster-aware in the
//! simplest way: every client has a connection to each master and sends
//! each GET to the master that owns its key's slot, from the slot map
//! `CLUSTER SLOTS` gave at the start (the cluster does not change during a
//! run). Each client has one request in flight; every reply is checked.

use crate::load::print_latencies;
use crate::nonblocking::{poll_until, read_some, register, write_some};
use crate::peerproto::{text_key, Proto, Reply};
use crate::procs::KeyValues;
use crate::wire::{self, Rng};
use distcache::internals::latency::Histogram;
use distcache::internals::proto::{encode_message, AddRequest, Command, Decoder, Role};
use mio::{Events, Poll};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WARM_UP: Duration = Duration::from_millis(200);
/// How long a connection may take to open.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// Redis Cluster's number of hash slots.
pub const SLOTS: usize = 16384;
/// The family of the ids the stores add, apart from the preloaded ones.
const WRITTEN: u8 = 9;
/// The lifetime of a stored value: the stores of a run never fill a
/// cache, and the soonest-expiring go first if one were full.
pub const WRITE_TTL_MS: u32 = 1000;

/// CRC16-CCITT (XModem), the hash of Redis Cluster's key slots.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key without a hash tag (the bench's keys have none).
pub fn slot(key: &[u8]) -> usize {
    usize::from(crc16(key)) % SLOTS
}

/// The masters of a cluster and which of them owns each slot.
pub struct SlotMap {
    pub nodes: Vec<String>,
    owner: Vec<u8>,
}

impl SlotMap {
    /// Asks the node at `seed` (`host:port`) for `CLUSTER SLOTS`; every
    /// slot must be served.
    pub fn fetch(seed: &str) -> Result<SlotMap, String> {
        let client = redis::Client::open(format!("redis://{seed}/")).map_err(|e| e.to_string())?;
        let mut c = client
            .get_connection_with_timeout(CONNECT_LIMIT)
            .map_err(|e| format!("{seed}: {e}"))?;
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut c)
            .map_err(|e| format!("{seed}: CLUSTER SLOTS: {e}"))?;
        let mut nodes: Vec<String> = Vec::new();
        let mut owner = vec![u8::MAX; SLOTS];
        for range in ranges {
            let bad = || "CLUSTER SLOTS: a range of an unexpected shape".to_string();
            let redis::Value::Array(fields) = range else {
                return Err(bad());
            };
            let (Some(redis::Value::Int(from)), Some(redis::Value::Int(to))) =
                (fields.first(), fields.get(1))
            else {
                return Err(bad());
            };
            let Some(redis::Value::Array(master)) = fields.get(2) else {
                return Err(bad());
            };
            let host: String = master
                .first()
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .ok_or_else(bad)?;
            let port: i64 = master
                .get(1)
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .ok_or_else(bad)?;
            let addr = format!("{host}:{port}");
            let at = match nodes.iter().position(|n| *n == addr) {
                Some(at) => at,
                None => {
                    nodes.push(addr);
                    nodes.len() - 1
                }
            };
            let at = u8::try_from(at).map_err(|_| "more masters than the bench takes")?;
            let (from, to) = (
                usize::try_from(*from).map_err(|_| bad())?,
                usize::try_from(*to).map_err(|_| bad())?,
            );
            if from > to || to >= SLOTS {
                return Err(bad());
            }
            owner[from..=to].fill(at);
        }
        if owner.contains(&u8::MAX) {
            return Err("CLUSTER SLOTS: some slots have no master".into());
        }
        Ok(SlotMap { nodes, owner })
    }

    /// The master of value `i`'s key.
    pub fn node_of(&self, i: u64) -> usize {
        usize::from(self.owner[slot(&text_key(i))])
    }
}

/// A connection of either kind, for the one event loop.
trait Stream: Read + Write + mio::event::Source {}
impl<T: Read + Write + mio::event::Source> Stream for T {}

/// Where the load goes.
enum Target {
    /// A dc_server's UNIX socket.
    Distcache(String),
    /// The masters of a cluster, over TCP.
    Cluster(SlotMap),
}

impl Target {
    fn nodes(&self) -> usize {
        match self {
            Target::Distcache(_) => 1,
            Target::Cluster(map) => map.nodes.len(),
        }
    }

    fn node_of(&self, i: u64) -> usize {
        match self {
            Target::Distcache(_) => 0,
            Target::Cluster(map) => map.node_of(i),
        }
    }

    /// Appends the store of value `i` (a new id) under `uid`.
    fn write(&self, out: &mut Vec<u8>, i: u64, uid: u32) -> Result<(), String> {
        let data = wire::data(i);
        match self {
            Target::Distcache(_) => {
                let mut payload = Vec::with_capacity(wire::DATA_LEN + 64);
                AddRequest {
                    timeout_msecs: WRITE_TTL_MS,
                    id: &wire::id(WRITTEN, i),
                    data,
                }
                .encode(&mut payload)
                .map_err(|e| e.to_string())?;
                encode_message(out, false, uid, Command::Add, &payload).map_err(|e| e.to_string())
            }
            Target::Cluster(_) => {
                out.extend_from_slice(b"*5\r\n$3\r\nSET\r\n$32\r\n");
                out.extend_from_slice(&text_key(i));
                out.extend_from_slice(format!("\r\n${}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                let ttl = WRITE_TTL_MS.to_string();
                out.extend_from_slice(
                    format!("\r\n$2\r\nPX\r\n${}\r\n{ttl}\r\n", ttl.len()).as_bytes(),
                );
                Ok(())
            }
        }
    }

    fn proto(&self) -> Proto {
        match self {
            Target::Distcache(_) => Proto::Distcache,
            Target::Cluster(_) => Proto::Resp,
        }
    }

    fn connect(&self, node: usize) -> Result<Box<dyn Stream>, String> {
        match self {
            Target::Distcache(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)
                    .map_err(|e| format!("{path}: {e}"))?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(Box::new(mio::net::UnixStream::from_std(s)))
            }
            Target::Cluster(map) => {
                let addr = &map.nodes[node];
                let sa: std::net::SocketAddr = addr
                    .parse()
                    .map_err(|_| format!("'{addr}' is not an address"))?;
                let s = std::net::TcpStream::connect_timeout(&sa, CONNECT_LIMIT)
                    .map_err(|e| format!("{addr}: {e}"))?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok(Box::new(mio::net::TcpStream::from_std(s)))
            }
        }
    }
}

/// `gw-load target=distcache unix=PATH | target=cluster seed=HOST:PORT,
/// conns=N secs=S keys=K [writes=PERCENT] [run=R]`: GET hits of random
/// values 0..K, and PERCENT of the requests stores of new values, from N
/// clients of one event loop, one request in flight each; prints `ops=`,
/// `secs=` and the latency percentiles of the requests sent after a
/// warm-up.
pub fn client(kv: &KeyValues) -> Result<(), String> {
    let target = match kv.str("target")? {
        "distcache" => Target::Distcache(kv.str("unix")?.to_string()),
        "cluster" => Target::Cluster(SlotMap::fetch(kv.str("seed")?)?),
        other => return Err(format!("unknown target '{other}'")),
    };
    let conns: usize = kv.num("conns")?;
    let secs: f64 = kv.num("secs")?;
    let keys: u64 = kv.num("keys")?;
    let run: u64 = kv.num_or("run", 1)?;
    let writes: u64 = kv.num_or("writes", 0)?;
    if writes > 100 {
        return Err(format!("writes={writes}: a percentage"));
    }
    let load = Load {
        keys,
        writes,
        // Each run and client stores under ids of its own.
        first_new: (run << 40) | KEYS_RESERVED,
    };
    let hist = events(&target, conns.max(1), &load, run, secs)?;
    if hist.count() == 0 {
        return Err("no GET was answered in the measured window".into());
    }
    print_latencies(&hist, secs);
    Ok(())
}

/// Above the preloaded values' indexes.
const KEYS_RESERVED: u64 = 1 << 32;

/// What the clients ask for.
struct Load {
    keys: u64,
    /// Percent of the requests that store a new value.
    writes: u64,
    /// The index of the first new value of this run.
    first_new: u64,
}

/// The reply awaited to a store: on distcache's wire, OK (status 0); in
/// RESP, `+OK`.
struct Stored {
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Stored {
    fn feed(&mut self, proto: Proto, input: &[u8], uid: u32) -> Result<bool, String> {
        if proto == Proto::Distcache {
            let (used, msg) = self.decoder.decode(input).map_err(|e| e.to_string())?;
            let Some(reply) = msg else {
                return Ok(false);
            };
            if used != input.len() {
                return Err("bytes beyond the reply to the one request in flight".into());
            }
            if reply.uid != uid || reply.command != Command::Add {
                return Err("a reply for another request".into());
            }
            if reply.payload != [0] {
                return Err(format!("an ADD of a new id answered {:?}", reply.payload));
            }
            return Ok(true);
        }
        self.buf.extend_from_slice(input);
        if self.buf.len() < 5 {
            return Ok(false);
        }
        if self.buf != b"+OK\r\n" {
            return Err(format!(
                "a SET answered '{}'",
                String::from_utf8_lossy(&self.buf).trim_end()
            ));
        }
        self.buf.clear();
        Ok(true)
    }
}

/// One client: its connections (one per node) and its request in flight.
struct Client {
    streams: Vec<Box<dyn Stream>>,
    rng: Rng,
    reply: Reply,
    stored: Stored,
    /// Whether the request in flight is a store, and how many it made.
    writing: bool,
    written: u64,
    /// The index of this client's first new value.
    first_new: u64,
    out: Vec<u8>,
    sent: usize,
    key: u64,
    node: usize,
    uid: u32,
    sent_at: Instant,
}

impl Client {
    fn send_next(&mut self, target: &Target, load: &Load, uid: u32) -> Result<(), String> {
        self.writing = self.rng.below(100) < load.writes;
        self.uid = uid;
        self.out.clear();
        self.sent = 0;
        if self.writing {
            self.key = self.first_new + self.written;
            self.written += 1;
            target.write(&mut self.out, self.key, uid)?;
        } else {
            self.key = self.rng.below(load.keys);
            target.proto().get(&mut self.out, self.key, uid)?;
        }
        self.node = target.node_of(self.key);
        self.sent_at = Instant::now();
        self.flush()
    }

    /// Writes what it can of the request.
    fn flush(&mut self) -> Result<(), String> {
        write_some(&mut *self.streams[self.node], &self.out, &mut self.sent)
    }
}

fn events(
    target: &Target,
    n: usize,
    load: &Load,
    run: u64,
    secs: f64,
) -> Result<Histogram, String> {
    let nodes = target.nodes();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut clients = Vec::with_capacity(n);
    for k in 0..n {
        let mut streams = Vec::with_capacity(nodes);
        for node in 0..nodes {
            let mut s = target.connect(node)?;
            register(&poll, &mut *s, k * nodes + node)?;
            streams.push(s);
        }
        clients.push(Client {
            streams,
            rng: Rng::new(run.wrapping_mul(1_000_003).wrapping_add(k as u64)),
            reply: Reply::new(target.proto()),
            stored: Stored {
                decoder: Decoder::new(Role::Client),
                buf: Vec::new(),
            },
            writing: false,
            written: 0,
            first_new: load.first_new + ((k as u64) << 24),
            out: Vec::with_capacity(wire::DATA_LEN + 128),
            sent: 0,
            key: 0,
            node: 0,
            uid: 0,
            sent_at: Instant::now(),
        });
    }
    // Every connection is open before the clock starts.
    let start = Instant::now() + WARM_UP;
    let stop = start + Duration::from_secs_f64(secs);
    let mut uid = 0u32;
    for c in clients.iter_mut() {
        uid = uid.wrapping_add(1);
        c.send_next(target, load, uid)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut hist = Histogram::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll_until(&mut poll, &mut events, stop)?;
        for ev in events.iter() {
            let (k, node) = (ev.token().0 / nodes, ev.token().0 % nodes);
            let c = clients.get_mut(k).ok_or("an event for no connection")?;
            if ev.is_writable() && node == c.node {
                c.flush()?;
            }
            if !ev.is_readable() {
                continue;
            }
            while let Some(got) = read_some(&mut *c.streams[node], &mut buf)? {
                if node != c.node {
                    return Err("bytes from a node no request was sent to".into());
                }
                let done = if c.writing {
                    c.stored.feed(target.proto(), &buf[..got], c.uid)?
                } else {
                    c.reply.feed(&buf[..got], c.key, c.uid)?
                };
                if done {
                    if c.sent_at >= start && c.sent_at < stop {
                        hist.record(c.sent_at.elapsed());
                    }
                    uid = uid.wrapping_add(1);
                    c.send_next(target, load, uid)?;
                    // The next request may be on another connection: this
                    // one has nothing more to say.
                    if c.node != node {
                        break;
                    }
                }
            }
        }
        if Instant::now() >= stop {
            return Ok(hist);
        }
    }
}
