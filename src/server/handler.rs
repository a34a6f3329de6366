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
    let status = |s: Status| [s.wire()];
    let found = |yes: bool| status(if yes { Status::Ok } else { Status::NotFound });
    let reply = |out: &mut Vec<u8>, payload: &[u8]| {
        encode_message(out, true, req.uid, req.command, payload)
    };
    match req.command {
        Command::Add => {
            let code = match AddRequest::parse(&req.payload)? {
                Err(refusal) => refusal,
                Ok(add) => match store.add(now, add.timeout_msecs, add.id, add.data) {
                    Ok(()) => Status::Ok,
                    Err(AddError::Exists) => Status::AddMatchingSession,
                    Err(AddError::Refused) => Status::AddDataRange,
                },
            };
            reply(out, &status(code))
        }
        Command::Get => {
            let mut data = Vec::new();
            if store.get_into(now, &req.payload, &mut data) {
                reply(out, &data)
            } else {
                reply(out, &status(Status::NotFound))
            }
        }
        Command::Remove => reply(out, &found(store.remove(now, &req.payload))),
        Command::Have => reply(out, &found(store.have(now, &req.payload))),
    }
}
