//! A worker: random operations on the ids it owns, each answer checked
//! against the model.

use super::conn::{Conn, Raw};
use super::model::{life, Life, Rng, Slot, Tally};
use super::{SLOTS, TIMEOUT};
use distcache::{Client, Flags};
use std::time::{Duration, Instant};

/// The largest session an ADD can carry with an id of `id_len` bytes.
pub fn max_session(id_len: usize) -> usize {
    32_768 - 8 - id_len
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Persistent,
    PerOperation,
    Raw,
}

pub struct Worker {
    name: String,
    kind: Kind,
    conn: Conn,
    rng: Rng,
    slots: Vec<Slot>,
    ids: Vec<Vec<u8>>,
    pub tally: Tally,
    /// Whether the server may evict (phase 2): losses are counted, not fatal.
    may_evict: bool,
}

impl Worker {
    pub fn new(index: usize, phase: u32, address: &str, may_evict: bool) -> Worker {
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

    pub fn new_session(&mut self, id_len: usize) -> Vec<u8> {
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

    pub fn lifetime(&mut self) -> Duration {
        Duration::from_millis(match self.rng.percent() {
            0..=24 => self.rng.range(300, 2000),
            25..=34 => self.rng.range(2000, 20_000),
            _ => self.rng.range(60_000, 600_000),
        })
    }

    /// A session certainly live was not there: a failure unless the server
    /// may have evicted it.
    pub fn lost(&mut self, op: &str, slot: usize) -> Result<(), String> {
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
    pub fn step(&mut self) -> Result<(), String> {
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

pub enum Answer {
    Added(bool),
    Got(Option<Vec<u8>>),
    Found(bool),
}
