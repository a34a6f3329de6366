//! The request loop of an embeddable cache server (`DC_SERVER`): requests
//! read through a [`Plug`], answered from any [`Store`], replies written
//! back through the same plug.

use super::handler::reply_payload;
use crate::cache::{MemoryStore, Millis, Store};
use crate::nal::Buffer;
use crate::plug::Plug;

/// The session capacities an embedded server over our memory store may be
/// given: those the original's default cache accepted (its
/// `DC_CACHE_MIN_SIZE` and `DC_CACHE_MAX_SIZE`).
pub const MEMORY_CAPACITY: std::ops::RangeInclusive<usize> = 64..=60000;

/// A cache and the count of operations carried out on it.
#[derive(Debug)]
pub struct Embedded {
    store: Box<dyn Store>,
    operations: u64,
}

impl Embedded {
    /// A server over `store`.
    pub fn new(store: Box<dyn Store>) -> Embedded {
        Embedded {
            store,
            operations: 0,
        }
    }

    /// A server over our memory store for `max_sessions` sessions; `None`
    /// when that is outside [`MEMORY_CAPACITY`].
    pub fn with_memory_store(max_sessions: usize) -> Option<Embedded> {
        MEMORY_CAPACITY
            .contains(&max_sessions)
            .then(|| Embedded::new(Box::new(MemoryStore::new(max_sessions))))
    }

    /// Sessions stored at `now` (expired ones are dropped first).
    pub fn items(&self, now: Millis) -> usize {
        self.store.len(now)
    }

    /// Operations carried out since the last reset.
    pub fn operations(&self) -> u64 {
        self.operations
    }

    /// Sets the operation count back to zero.
    pub fn reset_operations(&mut self) {
        self.operations = 0;
    }

    /// Answers the request waiting in `plug`, if there is one and the
    /// previous reply has been framed: decodes from `read`, frames the reply
    /// into `send`. False when the client sent something corrupt or
    /// malformed and must be dropped.
    pub fn process(
        &mut self,
        plug: &mut Plug,
        read: &mut Buffer,
        send: &mut Buffer,
        now: Millis,
    ) -> bool {
        plug.push(send);
        if !plug.pull(read) {
            return false;
        }
        // One reply at a time: a client that does not read its replies is
        // not answered further (its requests wait) rather than dropped.
        if !plug.can_write() {
            return true;
        }
        let Some(req) = plug.read(false) else {
            return true;
        };
        let (uid, command) = (req.uid, req.command);
        let Ok(reply) = reply_payload(self.store.as_ref(), now, command, &req.payload) else {
            plug.consume(read);
            return false;
        };
        let written = plug.write(false, uid, command, &reply) && plug.commit(send);
        self.operations += 1;
        written && plug.consume(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_capacity_is_the_originals() {
        for refused in [0, 63, 60001, usize::MAX] {
            assert!(Embedded::with_memory_store(refused).is_none(), "{refused}");
        }
        for taken in [64, 1000, 60000] {
            let server = Embedded::with_memory_store(taken).expect("in range");
            assert_eq!((server.items(0), server.operations()), (0, 0));
        }
    }
}
