//! Listing the sessions a Redis store holds, for `dc_admin ls`: `SCAN`
//! over the keys with the store's prefix, on the one server or on each of
//! a cluster's masters in turn, with each key's `PTTL` and `STRLEN`.
//!
//! A listing is not ordered by expiry (Redis keeps no such order), and as
//! `SCAN` promises, a session stored throughout the listing appears at
//! least once; Redis does not know when a session was stored, so its age
//! is given as 0.

use super::backend::{Backend, Kind};
use crate::cache::{ListCursor, Millis, SessionInfo};
use redis::{RedisResult, Value};

/// The masters of a cluster, in a stable order; one `None` for a single
/// server.
async fn nodes(backend: &mut Backend) -> RedisResult<Vec<Option<(String, u16)>>> {
    if backend.kind == Kind::Single {
        return Ok(vec![None]);
    }
    let slots: Value = backend
        .main
        .query(redis::cmd("CLUSTER").arg("SLOTS"))
        .await?;
    let mut masters = Vec::new();
    if let Value::Array(ranges) = slots {
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let Some(Value::Array(master)) = fields.get(2) else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                continue;
            };
            if let Ok(port) = u16::try_from(*port) {
                masters.push(Some((host, port)));
            }
        }
    }
    masters.sort();
    masters.dedup();
    Ok(masters)
}

/// `prefix` as a `SCAN MATCH` pattern that matches it literally, then
/// anything.
pub(super) fn pattern(prefix: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() * 2 + 1);
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            p.push(b'\\');
        }
        p.push(b);
    }
    p.push(b'*');
    p
}

/// One step of a listing: appends the sessions of one `SCAN` call (about
/// `max` keys) and returns where to go on. The cursor is (node number,
/// the node's `SCAN` cursor).
pub(super) async fn page(
    mut backend: Backend,
    prefix: Vec<u8>,
    now: Millis,
    from: Option<ListCursor>,
    max: usize,
) -> RedisResult<(Vec<SessionInfo>, Option<ListCursor>)> {
    let nodes = nodes(&mut backend).await?;
    let ListCursor(mut node, mut cursor) = from.unwrap_or(ListCursor(0, 0));
    let mut out = Vec::new();
    while out.len() < max {
        let Some(at) = usize::try_from(node).ok().and_then(|n| nodes.get(n)) else {
            return Ok((out, None));
        };
        let (next, keys): (u64, Vec<Vec<u8>>) = backend
            .main
            .query_at(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern(&prefix))
                    .arg("COUNT")
                    .arg(max.max(10)),
                at.as_ref(),
            )
            .await?;
        for key in keys {
            let mut p = redis::pipe();
            p.cmd("PTTL").arg(&key).cmd("STRLEN").arg(&key);
            let (ttl, size): (i64, i64) = backend.main.pipe(&p).await?;
            // Gone meanwhile (-2), or not one of ours (-1: no lifetime).
            let (Ok(ttl), Ok(size), Some(id)) = (
                u64::try_from(ttl),
                usize::try_from(size),
                key.get(prefix.len()..),
            ) else {
                continue;
            };
            out.push(SessionInfo {
                id: id.to_vec(),
                size,
                expiry: now.saturating_add(ttl),
                added: now,
            });
        }
        if next == 0 {
            node += 1;
            cursor = 0;
        } else {
            cursor = next;
        }
    }
    let done = usize::try_from(node).map_or(true, |n| n >= nodes.len());
    Ok((out, (!done).then_some(ListCursor(node, cursor))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_the_prefix_literally() {
        assert_eq!(pattern(b"dc:"), b"dc:*");
        assert_eq!(pattern(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\*");
    }
}
