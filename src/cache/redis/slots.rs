//! Which master of a Redis Cluster holds a key: the key's hash slot (the
//! CRC16 of the key, or of its `{hash tag}`, modulo 16384, as the cluster
//! specification defines it) and the map of slots to masters, as `CLUSTER
//! SLOTS` tells it and `MOVED` replies correct it.

use redis::Value;
use std::net::{IpAddr, SocketAddr};

/// Slots in a cluster.
pub(super) const SLOTS: usize = 16384;
/// No master known for a slot.
const NONE: u16 = u16::MAX;

/// The hash slot of `key`.
pub(super) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            Some(&rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    let hashed = tagged.unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS as u16
}

/// Where each slot's master is: a single server holds every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotMap {
    nodes: Vec<SocketAddr>,
    /// For each slot, its master's place in `nodes`, or [`NONE`].
    owner: Vec<u16>,
}

impl SlotMap {
    /// A map in which `node` holds every slot.
    pub(super) fn single(node: SocketAddr) -> SlotMap {
        SlotMap {
            nodes: vec![node],
            owner: vec![0; SLOTS],
        }
    }

    /// A map that knows no master.
    pub(super) fn empty() -> SlotMap {
        SlotMap {
            nodes: Vec::new(),
            owner: vec![NONE; SLOTS],
        }
    }

    /// The map a `CLUSTER SLOTS` reply describes; masters announced by a
    /// host name rather than an IP address are left out (their slots go
    /// the slower way, through the cluster client).
    pub(super) fn from_cluster_slots(reply: &Value) -> SlotMap {
        let mut map = SlotMap::empty();
        let Value::Array(ranges) = reply else {
            return map;
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let ip = match master.first() {
                Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
                Some(Value::SimpleString(s)) => Some(s.as_str()),
                _ => None,
            };
            let (Some(ip), Some(Value::Int(port))) = (ip, master.get(1)) else {
                continue;
            };
            let (Ok(ip), Ok(port)) = (ip.parse::<IpAddr>(), u16::try_from(*port)) else {
                continue;
            };
            let last = (*last).min(SLOTS as i64 - 1);
            let (Ok(first), Ok(last)) = (u16::try_from(*first), u16::try_from(last)) else {
                continue;
            };
            for slot in first..=last {
                map.set(slot, SocketAddr::new(ip, port));
            }
        }
        map
    }

    /// The master of `slot`, if known.
    pub(super) fn node(&self, slot: u16) -> Option<SocketAddr> {
        let at = *self.owner.get(usize::from(slot))?;
        self.nodes.get(usize::from(at)).copied()
    }

    /// Records that `node` is the master of `slot`.
    pub(super) fn set(&mut self, slot: u16, node: SocketAddr) {
        let at = match self.nodes.iter().position(|n| *n == node) {
            Some(at) => at,
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if let (Some(owner), Ok(at)) = (self.owner.get_mut(usize::from(slot)), u16::try_from(at)) {
            *owner = at;
        }
    }
}

/// The slot and the master a `MOVED` error's details name (`SLOT IP:PORT`).
pub(super) fn moved_to(details: &str) -> Option<(u16, SocketAddr)> {
    let (slot, addr) = details.trim().split_once(' ')?;
    let slot = slot
        .parse::<u16>()
        .ok()
        .filter(|&s| usize::from(s) < SLOTS)?;
    Some((slot, addr.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_as_the_cluster_specification_gives_them() {
        // The specification's own example, and hash tags.
        // CRC16 of "123456789" is 0x31C3.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        let whole = crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % 16384;
        assert_eq!(slot_of(b"foo{}{bar}"), whole, "an empty tag: the whole key");
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        // The slot `redis-cli CLUSTER KEYSLOT` gives.
        assert_eq!(slot_of(b"somekey"), 11058);
    }

    #[test]
    fn a_cluster_slots_reply_and_moved() {
        let node = |ip: &str, port| {
            Value::Array(vec![
                Value::BulkString(ip.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("redis-b.example", 7001),
            ]),
        ]);
        let mut map = SlotMap::from_cluster_slots(&reply);
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(map.node(0), Some(a));
        assert_eq!(map.node(5460), Some(a));
        assert_eq!(map.node(5461), None, "a host name is left out");
        let (slot, to) = moved_to("5461 127.0.0.1:7002").unwrap();
        map.set(slot, to);
        assert_eq!(map.node(5461), Some(to));
        assert_eq!(map.node(5462), None);
        assert!(moved_to("99999 127.0.0.1:1").is_none());
        // A range beyond the slots is cut to them, not walked.
        let wild = Value::Array(vec![Value::Array(vec![
            Value::Int(16000),
            Value::Int(i64::MAX),
            node("127.0.0.1", 7000),
        ])]);
        let wild = SlotMap::from_cluster_slots(&wild);
        assert_eq!(wild.node(16383), Some(a));
        assert_eq!(wild.node(0), None);
        assert!(moved_to("garbage").is_none());
    }
}
