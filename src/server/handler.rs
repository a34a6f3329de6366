use super::metrics::Outcome;
use crate::cache::{AddError, Answer, Millis, Op, Receipt, Started, Store};
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
    /// Begun; the store answers later: [`finish_waiting`] frames the
    /// reply. A TAKE that waits for its removal to reach the disk leaves
    /// the session's data in the caller's `data` buffer, to be kept until
    /// then and handed back to [`finish_waiting`] as `taken`.
    Waiting(Receipt),
}

/// The one way a request is carried out: against `store`, with the reply
/// framed in `out` (a GET hit's data passes through `data`, a buffer the
/// caller keeps). With `begin_only`, a request the store answers later
/// (an ADD or REMOVE waiting for the disk, any request waiting for a
/// remote store) gives [`Begun::Waiting`] and nothing is framed yet;
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

/// Frames the reply to the request `uid` that waits on `receipt`, once
/// `store` has its answer; `None` while it does not. `data` is the
/// caller's buffer for a GET hit's data, as for [`begin_request`];
/// `taken`, the data a TAKE removed before it waited for the disk (empty
/// otherwise).
pub(super) fn finish_waiting(
    store: &dyn Store,
    receipt: &Receipt,
    uid: u32,
    command: Command,
    taken: &[u8],
    out: &mut Vec<u8>,
    data: &mut Vec<u8>,
) -> Option<Outcome> {
    data.clear();
    let answer = match store.finish(receipt, data)? {
        // The removal is on disk: the session the TAKE removed is its.
        Answer::Ok if command == Command::Take && !taken.is_empty() => {
            data.extend_from_slice(taken);
            Answer::Hit
        }
        answer => answer,
    };
    let mark = out.len();
    let framed = match answered(command, answer) {
        Answered::Hit => {
            let framed = encode_message(out, true, uid, command, data).map(|()| Outcome::Ok);
            data.clear();
            framed
        }
        Answered::Status(status, outcome) => {
            encode_message(out, true, uid, command, &[status.wire()]).map(|()| outcome)
        }
    };
    // Data that a store holds fits the frames it came in; should a frame
    // still fail, the request is answered as a failure.
    Some(framed.unwrap_or_else(|_| {
        let (status, outcome) = failure(command);
        out.truncate(mark);
        let _ = encode_message(out, true, uid, command, &[status.wire()]);
        outcome
    }))
}

/// The reply a store's failure gets: 0x02 (`DC_ERR_DISCONNECTED`, the
/// status a proxy sends when it lost its server mid-request), which the
/// client library reports as a failed operation, never as a hit or as
/// "stored".
fn failure(command: Command) -> (Status, Outcome) {
    let outcome = match command {
        Command::Add => Outcome::Refused,
        _ => Outcome::Miss,
    };
    (Status::Disconnected, outcome)
}

/// What a store's answer comes to on the wire.
enum Answered {
    /// A reply of one status byte.
    Status(Status, Outcome),
    /// A hit: the session's data is in the caller's buffer.
    Hit,
}

impl From<Answered> for Carried {
    fn from(a: Answered) -> Carried {
        match a {
            Answered::Status(status, outcome) => Carried::Status(status, outcome),
            Answered::Hit => Carried::Hit,
        }
    }
}

/// What a store's answer to `command` comes to on the wire.
fn answered(command: Command, answer: Answer) -> Answered {
    let (status, outcome) = match answer {
        Answer::Ok => (Status::Ok, Outcome::Ok),
        Answer::Hit => return Answered::Hit,
        Answer::Miss => (Status::NotFound, Outcome::Miss),
        Answer::Exists => (Status::AddMatchingSession, Outcome::Exists),
        Answer::Refused => (Status::AddDataRange, Outcome::Refused),
        Answer::NotKept if command == Command::Add => (Status::AddDataRange, Outcome::Refused),
        Answer::NotKept => (Status::NotFound, Outcome::Miss),
        Answer::Failed => failure(command),
    };
    Answered::Status(status, outcome)
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
    /// Begun; the store answers later.
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
    // GET and TAKE: the session's data, now in `data`, or a miss.
    let fetched = |hit: bool| {
        if hit {
            Carried::Hit
        } else {
            Carried::Status(Status::NotFound, Outcome::Miss)
        }
    };
    if begin_only {
        let op = match command {
            Command::Add => match AddRequest::parse(payload)? {
                Err(refusal) => return Ok(Carried::Status(refusal, Outcome::Refused)),
                Ok(add) => Op::Add {
                    timeout_msecs: add.timeout_msecs.max(policy.min_expiry_msecs),
                    id: add.id,
                    data: add.data,
                },
            },
            Command::Get => Op::Get(payload),
            Command::Have => Op::Have(payload),
            Command::Remove => Op::Remove(payload),
            Command::Take => Op::Take(payload),
        };
        data.clear();
        return Ok(match store.begin(now, op, data) {
            Started::Done(answer) => answered(command, answer).into(),
            Started::Waiting(receipt) => Carried::Waiting(receipt),
        });
    }
    Ok(match command {
        Command::Add => match AddRequest::parse(payload)? {
            Err(refusal) => Carried::Status(refusal, Outcome::Refused),
            Ok(add) => {
                let timeout = add.timeout_msecs.max(policy.min_expiry_msecs);
                let (status, outcome) = add_status(store.add(now, timeout, add.id, add.data));
                Carried::Status(status, outcome)
            }
        },
        Command::Get => {
            data.clear();
            fetched(store.get_into(now, payload, data))
        }
        Command::Remove => found(store.remove(now, payload)),
        Command::Take => {
            data.clear();
            fetched(store.take_into(now, payload, data))
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

    /// An answer and its data, kept for [`Later::finish`].
    type Kept = (Answer, Vec<u8>);

    /// A store that answers every operation later: the memory store's
    /// answer (or a failure, for ids starting with `!`), kept until
    /// asked for.
    #[derive(Debug)]
    struct Later {
        inner: MemoryStore,
        answers: std::sync::Mutex<Vec<Option<Kept>>>,
    }

    impl Store for Later {
        fn add(&self, now: Millis, t: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
            self.inner.add(now, t, id, data)
        }
        fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
            self.inner.get_into(now, id, out)
        }
        fn remove(&self, now: Millis, id: &[u8]) -> bool {
            self.inner.remove(now, id)
        }
        fn have(&self, now: Millis, id: &[u8]) -> bool {
            self.inner.have(now, id)
        }
        fn len(&self, now: Millis) -> usize {
            self.inner.len(now)
        }
        fn begin(&self, now: Millis, op: Op<'_>, _data: &mut Vec<u8>) -> Started {
            let id = match op {
                Op::Add { id, .. } => id,
                Op::Get(id) | Op::Have(id) | Op::Remove(id) | Op::Take(id) => id,
            };
            let mut data = Vec::new();
            let answer = if id.starts_with(b"!") {
                Answer::Failed
            } else {
                match self.inner.begin(now, op, &mut data) {
                    Started::Done(answer) => answer,
                    Started::Waiting(_) => unreachable!("the memory store never waits"),
                }
            };
            let mut answers = self.answers.lock().unwrap();
            answers.push(Some((answer, data)));
            Started::Waiting(Receipt {
                seq: answers.len() as u64 - 1,
                deadline: Instant::now(),
            })
        }
        fn finish(&self, receipt: &Receipt, data: &mut Vec<u8>) -> Option<Answer> {
            let (answer, got) = self.answers.lock().unwrap()[receipt.seq as usize].take()?;
            data.extend_from_slice(&got);
            Some(answer)
        }
    }

    /// The reply payload of one request begun and finished later.
    fn later(store: &Later, command: Command, payload: &[u8]) -> Vec<u8> {
        let (mut out, mut data) = (Vec::new(), Vec::new());
        let req = Request {
            uid: 9,
            command,
            payload,
        };
        let begun = begin_request(Policy::default(), store, 0, req, &mut out, &mut data, true);
        let Ok(Begun::Waiting(receipt)) = begun else {
            panic!("{command:?} answered at once: {begun:?}");
        };
        assert!(out.is_empty(), "nothing framed before the answer");
        assert!(finish_waiting(store, &receipt, 9, command, &[], &mut out, &mut data).is_some());
        assert!(
            finish_waiting(store, &receipt, 9, command, &[], &mut Vec::new(), &mut data).is_none(),
            "answered once"
        );
        let (msgs, partial) = decode_all(Role::Client, &out).expect("valid reply");
        assert!(!partial);
        assert_eq!(msgs.len(), 1);
        assert_eq!((msgs[0].uid, msgs[0].command), (9, command));
        msgs[0].payload.clone()
    }

    #[test]
    fn every_operation_can_be_answered_later() {
        let s = Later {
            inner: MemoryStore::new(10),
            answers: Default::default(),
        };
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(later(&s, Command::Add, &add(1000, b"id", &big)), [0x00]);
        assert_eq!(later(&s, Command::Add, &add(1000, b"id", b"x")), [0x65]);
        assert_eq!(later(&s, Command::Get, b"id"), big);
        assert_eq!(later(&s, Command::Have, b"id"), [0x00]);
        assert_eq!(later(&s, Command::Remove, b"id"), [0x00]);
        assert_eq!(later(&s, Command::Remove, b"id"), [0x01]);
        assert_eq!(later(&s, Command::Get, b"id"), [0x01]);
        assert_eq!(later(&s, Command::Have, b"id"), [0x01]);
        // A failure is 0x02 for every operation, never a hit or "stored".
        for (command, payload) in [
            (Command::Add, add(1000, b"!x", b"data")),
            (Command::Get, b"!x".to_vec()),
            (Command::Have, b"!x".to_vec()),
            (Command::Remove, b"!x".to_vec()),
        ] {
            assert_eq!(later(&s, command, &payload), [0x02], "{command:?}");
        }
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
