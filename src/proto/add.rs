use super::{ProtoError, Status, ADD_PREFIX_LEN, MAX_EXPIRY_MS, MAX_ID_LEN, MAX_TOTAL_DATA};

/// The payload of an ADD request: `u32 timeout_msecs | u32 id_len | id | data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddRequest<'a> {
    /// Lifetime of the session from the moment the server stores it.
    pub timeout_msecs: u32,
    /// The session id.
    pub id: &'a [u8],
    /// The session data.
    pub data: &'a [u8],
}

impl<'a> AddRequest<'a> {
    /// Appends the ADD payload for these fields to `out`. Fails when the
    /// payload would not fit in one message.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let len = ADD_PREFIX_LEN + self.id.len() + self.data.len();
        if len > MAX_TOTAL_DATA {
            return Err(ProtoError::PayloadTooLong(len));
        }
        out.reserve(len);
        out.extend_from_slice(&self.timeout_msecs.to_be_bytes());
        // id.len() <= MAX_TOTAL_DATA here, so it fits in u32.
        out.extend_from_slice(&(self.id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.id);
        out.extend_from_slice(self.data);
        Ok(())
    }

    /// Parses an ADD payload the way the server judges it.
    ///
    /// `Err` means the payload cannot even hold its prefix (the connection is
    /// closed). `Ok(Err(status))` is a well-formed request the server refuses
    /// with that status byte; the checks run in the original server's order:
    /// timeout, then id length against the rest, then the id range.
    pub fn parse(payload: &'a [u8]) -> Result<Result<AddRequest<'a>, Status>, ProtoError> {
        let Some((prefix, rest)) = payload.split_first_chunk::<ADD_PREFIX_LEN>() else {
            return Err(ProtoError::ShortAdd(payload.len()));
        };
        let timeout_msecs = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let id_len = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]) as usize;
        if timeout_msecs > MAX_EXPIRY_MS {
            return Ok(Err(Status::AddTimeoutRange));
        }
        if id_len >= rest.len() {
            return Ok(Err(Status::AddCorrupt));
        }
        if id_len == 0 || id_len > MAX_ID_LEN {
            return Ok(Err(Status::AddIdRange));
        }
        let (id, data) = rest.split_at(id_len);
        Ok(Ok(AddRequest {
            timeout_msecs,
            id,
            data,
        }))
    }
}
