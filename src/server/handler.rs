use super::metrics::Outcome;
use crate::cache::{AddBegun, AddError, Millis, Receipt, Store};
use crate::proto::{encode_message, AddRequest, Command, Message, ProtoError, Status};
use std::time::Instant;

/// The server's monotonic clock, in milliseconds since it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock reading 0 now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }
    /// Milliseconds since the clock started.
    pub fn now(&self) -> Millis {
        self.at(Instant::now())
    }

    /// The clock's reading at `t`.
    pub fn at(&self, t: Instant) -> Millis {
        u64::try_from(t.saturating_duration_since(self.0).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Rules a server applies to requests beyond the protocol's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// An ADD asking for a shorter lifetime is stored for this many
    /// milliseconds instead (0: lifetimes are kept as asked). Stock Apache
    /// mod_socache_dc sends only the millisecond part of the lifetime,
    /// 0..999 ms.
    pub min_expiry_msecs: u32,
}

/// Carries out one request against `store` and appends the reply's frames
/// to `out`; tells how the request ended. A store whose ADD waits for its
/// disk is waited for.
///
/// `Err` means the request is malformed beyond a status reply (an ADD whose
/// payload cannot hold its prefix): the connection must be closed, and
/// nothing was appended.
pub fn handle_request(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    req: &Message,
    out: &mut Vec<u8>,
) -> Result<Outcome, ProtoError> {
    let mut data = Vec::new();
    let req = Request {
        uid: req.uid,
        command: req.command,
        payload: &req.payload,
    };
    match begin_request(policy, store, now, req, out, &mut data, false)? {
        Begun::Done(outcome) => Ok(outcome),
        // Not asked to begin only.
        Begun::Waiting(_) => Ok(Outcome::Refused),
    }
}

/// A request as the engine decodes it, its payload borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request<'a> {
    pub(super) uid: u32,
    pub(super) command: Command,
    pub(super) payload: &'a [u8],
}

/// How [`begin_request`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Begun {
    /// Answered; the reply is framed.
    Done(Outcome),
    /// An ADD, or a REMOVE or TAKE that found its session, whose reply
    /// waits for the disk: [`finish_waiting`] frames it. A TAKE's session
    /// data is left in the caller's `data` buffer, to be kept until then.
    Waiting(Receipt),
}

/// The one way a request is carried out: against `store`, with the reply
/// framed in `out` (a GET hit's data passes through `data`, a buffer the
/// caller keeps). With `begin_only`, an ADD that the store answers only
/// once it is on disk (and a REMOVE or TAKE, likewise) gives [`Begun::Waiting`]
/// and nothing is framed yet;
/// otherwise it is waited for. `Err` as for [`handle_request`].
pub(super) fn begin_request(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    req: Request<'_>,
    out: &mut Vec<u8>,
    data: &mut Vec<u8>,
    begin_only: bool,
) -> Result<Begun, ProtoError> {
    let carried = carry_out(
        policy,
        store,
        now,
        req.command,
        req.payload,
        data,
        begin_only,
    )?;
    let (status, outcome) = match carried {
        Carried::Status(status, outcome) => (status, outcome),
        Carried::Hit => {
            let framed = encode_message(out, true, req.uid, req.command, data);
            data.clear();
            framed?;
            return Ok(Begun::Done(Outcome::Ok));
        }
        Carried::Waiting(receipt) => return Ok(Begun::Waiting(receipt)),
    };
    encode_message(out, true, req.uid, req.command, &[status.wire()])?;
    Ok(Begun::Done(outcome))
}

/// Frames the reply to the request `uid` (an ADD, a REMOVE or a TAKE)
/// that waits on `receipt`, once `store` knows whether its change is on
/// disk; `None` while it does not. A change that did not reach the disk is
/// answered as a failure: the ADD refused, the REMOVE and the TAKE as
/// finding nothing. `taken`: the session data a TAKE removed.
pub(super) fn finish_waiting(
    store: &dyn Store,
    receipt: &Receipt,
    uid: u32,
    command: Command,
    taken: &[u8],
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let (status, outcome) = match (store.synced(receipt)?, command) {
        (true, Command::Take) => {
            // Session data is at most one message long.
            encode_message(out, true, uid, command, taken).ok()?;
            return Some(Outcome::Ok);
        }
        (true, _) => (Status::Ok, Outcome::Ok),
        (false, Command::Add) => (Status::AddDataRange, Outcome::Refused),
        (false, _) => (Status::NotFound, Outcome::Miss),
    };
    // A one-byte payload always fits a frame.
    encode_message(out, true, uid, command, &[status.wire()]).ok()?;
    Some(outcome)
}

/// Carries out one request against `store` and returns the reply's payload:
/// a status byte, or the session data of a GET or TAKE hit. `Err` as for
/// [`handle_request`].
pub fn reply_payload(
    store: &dyn Store,
    now: Millis,
    command: Command,
    payload: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    let mut data = Vec::new();
    Ok(
        match carry_out(
            Policy::default(),
            store,
            now,
            command,
            payload,
            &mut data,
            false,
        )? {
            Carried::Status(status, _) => vec![status.wire()],
            Carried::Hit => data,
            Carried::Waiting(_) => vec![Status::AddDataRange.wire()],
        },
    )
}

/// What a request came to.
enum Carried {
    /// A reply of one status byte.
    Status(Status, Outcome),
    /// A GET or TAKE hit: the session's data is in the caller's buffer.
    Hit,
    /// A change whose answer waits for the disk.
    Waiting(Receipt),
}

/// The reply status of an ADD the store carried out.
fn add_status(result: Result<(), AddError>) -> (Status, Outcome) {
    match result {
        Ok(()) => (Status::Ok, Outcome::Ok),
        Err(AddError::Exists) => (Status::AddMatchingSession, Outcome::Exists),
        Err(AddError::Refused) => (Status::AddDataRange, Outcome::Refused),
    }
}

fn carry_out(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    command: Command,
    payload: &[u8],
    data: &mut Vec<u8>,
    begin_only: bool,
) -> Result<Carried, ProtoError> {
    let found = |yes: bool| {
        if yes {
            Carried::Status(Status::Ok, Outcome::Ok)
        } else {
            Carried::Status(Status::NotFound, Outcome::Miss)
        }
    };
    Ok(match command {
        Command::Add => match AddRequest::parse(payload)? {
            Err(refusal) => Carried::Status(refusal, Outcome::Refused),
            Ok(add) => {
                let timeout = add.timeout_msecs.max(policy.min_expiry_msecs);
                let result = if begin_only {
                    match store.add_begin(now, timeout, add.id, add.data) {
                        AddBegun::Done(result) => result,
                        AddBegun::Waiting(receipt) => return Ok(Carried::Waiting(receipt)),
                    }
                } else {
                    store.add(now, timeout, add.id, add.data)
                };
                let (status, outcome) = add_status(result);
                Carried::Status(status, outcome)
            }
        },
        Command::Get => {
            data.clear();
            if store.get_into(now, payload, data) {
                Carried::Hit
            } else {
                Carried::Status(Status::NotFound, Outcome::Miss)
            }
        }
        Command::Remove if begin_only => match store.remove_begin(now, payload) {
            (true, Some(receipt)) => Carried::Waiting(receipt),
            (removed, _) => found(removed),
        },
        Command::Remove => found(store.remove(now, payload)),
        Command::Take => {
            data.clear();
            let (taken, receipt) = if begin_only {
                store.take_begin(now, payload, data)
            } else {
                (store.take_into(now, payload, data), None)
            };
            match (taken, receipt) {
                (true, Some(receipt)) => Carried::Waiting(receipt),
                (true, None) => Carried::Hit,
                (false, _) => Carried::Status(Status::NotFound, Outcome::Miss),
            }
        }
        Command::Have => found(store.have(now, payload)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryStore;
    use crate::proto::{decode_all, Role};

    fn run(store: &MemoryStore, now: Millis, command: Command, payload: Vec<u8>) -> Vec<u8> {
        let req = Message {
            is_response: false,
            uid: 7,
            command,
            payload,
        };
        let mut out = Vec::new();
        handle_request(Policy::default(), store, now, &req, &mut out).expect("handled");
        let (msgs, partial) = decode_all(Role::Client, &out).expect("valid reply");
        assert!(!partial);
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].uid, msgs[0].command), (7, command));
        msgs[0].payload.clone()
    }

    fn add(timeout: u32, id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        AddRequest {
            timeout_msecs: timeout,
            id,
            data,
        }
        .encode(&mut p)
        .unwrap();
        p
    }

    #[test]
    fn operations_and_statuses() {
        let s = MemoryStore::new(100);
        assert_eq!(run(&s, 0, Command::Add, add(1000, b"id", b"data")), [0x00]);
        assert_eq!(run(&s, 0, Command::Add, add(1000, b"id", b"other")), [0x65]);
        assert_eq!(run(&s, 1, Command::Get, b"id".to_vec()), b"data");
        assert_eq!(run(&s, 1, Command::Have, b"id".to_vec()), [0x00]);
        assert_eq!(
            run(&s, 1000, Command::Have, b"id".to_vec()),
            [0x01],
            "expired at +timeout"
        );
        assert_eq!(run(&s, 1, Command::Get, b"nope".to_vec()), [0x01]);
        assert_eq!(run(&s, 1, Command::Get, Vec::new()), [0x01]);
        assert_eq!(
            run(&s, 0, Command::Add, add(604_800_001, b"id2", b"d")),
            [0x66]
        );
        assert_eq!(run(&s, 0, Command::Add, add(1, &[b'x'; 65], b"d")), [0x67]);
        assert_eq!(run(&s, 0, Command::Add, add(1, b"", b"d")), [0x67]);
        assert_eq!(run(&s, 0, Command::Add, add(1000, b"id3", b"d")), [0x00]);
        assert_eq!(run(&s, 1, Command::Remove, b"id3".to_vec()), [0x00]);
        assert_eq!(run(&s, 1, Command::Remove, b"id3".to_vec()), [0x01]);
    }

    #[test]
    fn take_answers_like_get_once() {
        let s = MemoryStore::new(100);
        assert_eq!(run(&s, 0, Command::Add, add(1000, b"id", b"data")), [0x00]);
        assert_eq!(run(&s, 1, Command::Take, b"id".to_vec()), b"data");
        assert_eq!(run(&s, 1, Command::Take, b"id".to_vec()), [0x01]);
        assert_eq!(run(&s, 1, Command::Get, b"id".to_vec()), [0x01]);
        assert_eq!(run(&s, 1, Command::Take, b"never".to_vec()), [0x01]);
        assert_eq!(run(&s, 0, Command::Add, add(10, b"old", b"d")), [0x00]);
        assert_eq!(
            run(&s, 10, Command::Take, b"old".to_vec()),
            [0x01],
            "expired"
        );
        assert_eq!(s.len(10), 0);
    }

    #[test]
    fn min_expiry_raises_short_lifetimes_only() {
        let s = MemoryStore::new(100);
        let policy = Policy {
            min_expiry_msecs: 2000,
        };
        let mut out = Vec::new();
        for (id, timeout) in [(&b"short"[..], 300), (b"zero", 0), (b"long", 5000)] {
            let req = Message {
                is_response: false,
                uid: 1,
                command: Command::Add,
                payload: add(timeout, id, b"data"),
            };
            handle_request(policy, &s, 0, &req, &mut out).unwrap();
        }
        assert!(s.have(1999, b"short") && s.have(1999, b"zero"));
        assert!(!s.have(2000, b"short") && !s.have(2000, b"zero"));
        assert!(s.have(4999, b"long") && !s.have(5000, b"long"));
        // Without the policy, 300 ms means 300 ms.
        assert_eq!(run(&s, 0, Command::Add, add(300, b"plain", b"d")), [0x00]);
        assert!(s.have(299, b"plain") && !s.have(300, b"plain"));
        // A lifetime over 7 days is still refused.
        let req = Message {
            is_response: false,
            uid: 1,
            command: Command::Add,
            payload: add(604_800_001, b"x", b"d"),
        };
        out.clear();
        handle_request(policy, &s, 0, &req, &mut out).unwrap();
        let (msgs, _) = decode_all(Role::Client, &out).unwrap();
        assert_eq!(msgs[0].payload, [0x66]);
    }

    #[test]
    fn short_add_closes() {
        let s = MemoryStore::new(10);
        let req = Message {
            is_response: false,
            uid: 1,
            command: Command::Add,
            payload: vec![0; 7],
        };
        let mut out = Vec::new();
        assert!(handle_request(Policy::default(), &s, 0, &req, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn large_session_spans_frames() {
        let s = MemoryStore::new(10);
        let data: Vec<u8> = (0..32_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(run(&s, 0, Command::Add, add(1000, b"big", &data)), [0x00]);
        assert_eq!(run(&s, 0, Command::Get, b"big".to_vec()), data);
    }
}
