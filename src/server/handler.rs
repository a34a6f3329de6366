use crate::cache::{AddError, Millis, Store};
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
    let payload = reply_payload(store, now, req.command, &req.payload)?;
    encode_message(out, true, req.uid, req.command, &payload)
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
    let status = |s: Status| vec![s.wire()];
    let found = |yes: bool| status(if yes { Status::Ok } else { Status::NotFound });
    Ok(match command {
        Command::Add => status(match AddRequest::parse(payload)? {
            Err(refusal) => refusal,
            Ok(add) => match store.add(now, add.timeout_msecs, add.id, add.data) {
                Ok(()) => Status::Ok,
                Err(AddError::Exists) => Status::AddMatchingSession,
                Err(AddError::Refused) => Status::AddDataRange,
            },
        }),
        Command::Get => {
            let mut data = Vec::new();
            if store.get_into(now, payload, &mut data) {
                data
            } else {
                status(Status::NotFound)
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
