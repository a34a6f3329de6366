//! The request loop of an embeddable cache server (`DC_SERVER`): requests
//! read through a [`Plug`], answered from any [`Store`], replies written
//! back through the same plug.

use super::handler::reply_payload;
use crate::cache::{Millis, Store};
use crate::nal::Buffer;
use crate::plug::Plug;

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
