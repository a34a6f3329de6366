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
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
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
/// to `out`.
///
/// `Err` means the request is malformed beyond a status reply (an ADD whose
/// payload cannot hold its prefix): the connection must be closed, and
/// nothing was appended.
pub fn handle_request(
    store: &dyn Store,
    now: Millis,
    req: &Message,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    handle_request_with(Policy::default(), store, now, req, out)
}

/// [`handle_request`] under `policy`.
pub fn handle_request_with(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    req: &Message,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    handle_request_outcome(policy, store, now, req, out).map(|_| ())
}

/// [`handle_request_with`], also telling how the request ended (an `Err`
/// is an ADD counted as [`Outcome::Malformed`]).
pub fn handle_request_outcome(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    req: &Message,
    out: &mut Vec<u8>,
) -> Result<Outcome, ProtoError> {
    let (payload, outcome) = carry_out(policy, store, now, req.command, &req.payload)?;
    encode_message(out, true, req.uid, req.command, &payload)?;
    Ok(outcome)
}

/// How [`begin_request`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Begun {
    /// Answered; the reply is framed.
    Done(Outcome),
    /// An ADD whose reply waits for the disk: [`finish_add`] frames it.
    Waiting(Receipt),
}

/// [`handle_request_outcome`] for a caller that must not wait: an ADD that
/// a store answers only once it is on disk gives [`Begun::Waiting`], and
/// nothing is appended to `out` yet.
pub(super) fn begin_request(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    req: &Message,
    out: &mut Vec<u8>,
) -> Result<Begun, ProtoError> {
    if req.command != Command::Add {
        return handle_request_outcome(policy, store, now, req, out).map(Begun::Done);
    }
    let (status, outcome) = match AddRequest::parse(&req.payload)? {
        Err(refusal) => (refusal, Outcome::Refused),
        Ok(add) => {
            let timeout = add.timeout_msecs.max(policy.min_expiry_msecs);
            match store.add_begin(now, timeout, add.id, add.data) {
                AddBegun::Done(result) => add_status(result),
                AddBegun::Waiting(receipt) => return Ok(Begun::Waiting(receipt)),
            }
        }
    };
    encode_message(out, true, req.uid, Command::Add, &[status.wire()])?;
    Ok(Begun::Done(outcome))
}

/// Frames the reply to the ADD `uid` that waits on `receipt`, once `store`
/// knows it; `None` while it does not.
pub(super) fn finish_add(
    store: &dyn Store,
    receipt: &Receipt,
    uid: u32,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let (status, outcome) = add_status(store.add_outcome(receipt)?);
    // A one-byte payload always fits a frame.
    encode_message(out, true, uid, Command::Add, &[status.wire()]).ok()?;
    Some(outcome)
}

/// The reply status of an ADD the store carried out.
fn add_status(result: Result<(), AddError>) -> (Status, Outcome) {
    match result {
        Ok(()) => (Status::Ok, Outcome::Ok),
        Err(AddError::Exists) => (Status::AddMatchingSession, Outcome::Exists),
        Err(AddError::Refused) => (Status::AddDataRange, Outcome::Refused),
    }
}

/// Carries out one request against `store` and returns the reply's payload:
/// a status byte, or a GET hit's session data. `Err` as for
/// [`handle_request`].
pub fn reply_payload(
    store: &dyn Store,
    now: Millis,
    command: Command,
    payload: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    reply_payload_with(Policy::default(), store, now, command, payload)
}

/// [`reply_payload`] under `policy`.
pub fn reply_payload_with(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    command: Command,
    payload: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    carry_out(policy, store, now, command, payload).map(|(reply, _)| reply)
}

/// The reply's payload and how the request ended.
fn carry_out(
    policy: Policy,
    store: &dyn Store,
    now: Millis,
    command: Command,
    payload: &[u8],
) -> Result<(Vec<u8>, Outcome), ProtoError> {
    let status = |s: Status, o: Outcome| (vec![s.wire()], o);
    let found = |yes: bool| {
        if yes {
            status(Status::Ok, Outcome::Ok)
        } else {
            status(Status::NotFound, Outcome::Miss)
        }
    };
    Ok(match command {
        Command::Add => match AddRequest::parse(payload)? {
            Err(refusal) => status(refusal, Outcome::Refused),
            Ok(add) => {
                let timeout = add.timeout_msecs.max(policy.min_expiry_msecs);
                let (s, o) = add_status(store.add(now, timeout, add.id, add.data));
                status(s, o)
            }
        },
        Command::Get => {
            let mut data = Vec::new();
            if store.get_into(now, payload, &mut data) {
                (data, Outcome::Ok)
            } else {
                status(Status::NotFound, Outcome::Miss)
            }
        }
        Command::Remove => found(store.remove(now, payload)),
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
        handle_request(store, now, &req, &mut out).expect("handled");
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
            handle_request_with(policy, &s, 0, &req, &mut out).unwrap();
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
        handle_request_with(policy, &s, 0, &req, &mut out).unwrap();
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
        assert!(handle_request(&s, 0, &req, &mut out).is_err());
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
