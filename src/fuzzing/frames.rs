//! The wire format: the frame decoder, reassembly across arbitrary splits,
//! and the ADD payload parser.

use super::split_stream;
use crate::proto::{
    AddRequest, Decoder, Message, ProtoError, Role, Status, ADD_PREFIX_LEN, MAX_DECODER_BUFFER,
    MAX_EXPIRY_MS, MAX_ID_LEN, MAX_TOTAL_DATA,
};

/// What a decoder made of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Whole messages, in order, before any error.
    pub msgs: Vec<Message>,
    /// The error that ended the stream, if one did.
    pub err: Option<ProtoError>,
    /// Without an error: whether part of a message is held.
    pub mid: bool,
}

/// Feeds `chunks` in order to a fresh decoder for `role`, checking its
/// contract on every call: a message comes out of at least one byte, in
/// this role's direction and within the payload limit; without a message
/// the whole input was taken; an error is final; the decoder never holds
/// more than [`MAX_DECODER_BUFFER`] bytes.
pub(super) fn decode_checked(role: Role, chunks: &[&[u8]]) -> Outcome {
    let mut dec = Decoder::new(role);
    let mut msgs = Vec::new();
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        loop {
            let result = dec.decode(rest);
            assert!(
                dec.buffered() <= MAX_DECODER_BUFFER,
                "decoder holds {} bytes",
                dec.buffered()
            );
            match result {
                Ok((used, msg)) => {
                    assert!(used <= rest.len(), "took {used} of {} bytes", rest.len());
                    match msg {
                        Some(m) => {
                            assert!(used > 0, "a message out of no bytes");
                            assert!(m.payload.len() <= MAX_TOTAL_DATA);
                            assert_eq!(m.is_response, role == Role::Client, "wrong direction");
                            msgs.push(m);
                        }
                        None => assert_eq!(used, rest.len(), "stopped early with no message"),
                    }
                    rest = &rest[used..];
                    if rest.is_empty() {
                        break;
                    }
                }
                Err(e) => {
                    assert_eq!(dec.decode(&[]), Err(e.clone()), "error not final");
                    assert_eq!(dec.decode(rest), Err(e.clone()), "error not final");
                    return Outcome {
                        msgs,
                        err: Some(e),
                        mid: false,
                    };
                }
            }
        }
    }
    Outcome {
        msgs,
        err: None,
        mid: dec.is_mid_message(),
    }
}

/// The frame decoder, for both roles, over the input as one chunk: the
/// decoder's contract holds, and every message it yields encodes back to
/// frames that decode to the same message.
pub fn decoder(data: &[u8]) {
    for role in [Role::Server, Role::Client] {
        let out = decode_checked(role, &[data]);
        for msg in &out.msgs {
            let mut bytes = Vec::new();
            assert_eq!(msg.encode(&mut bytes), Ok(()), "a decoded message encodes");
            let back = decode_checked(role, &[&bytes]);
            assert_eq!(back.msgs.as_slice(), std::slice::from_ref(msg));
            assert_eq!((back.err, back.mid), (None, false));
        }
    }
}

/// Reassembly: a split stream (flags bit 0: read as a client, otherwise as
/// a server) decodes to the same messages, the same error and the same
/// pending state whether fed whole, in its chunks, or (when short) one byte
/// at a time.
pub fn reassembly(data: &[u8]) {
    let (flags, chunks, stream) = split_stream(data);
    let role = if flags & 1 == 1 {
        Role::Client
    } else {
        Role::Server
    };
    let whole = decode_checked(role, &[stream]);
    assert_eq!(
        whole,
        decode_checked(role, &chunks),
        "the cuts changed the result"
    );
    if stream.len() <= 1024 {
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(whole, decode_checked(role, &bytewise), "bytewise differs");
    }
}

/// The ADD payload parser: a payload too short for its prefix is an error,
/// a refusal carries the status the server's rules give (timeout, then the
/// id length against the rest, then the id range), and an accepted request
/// encodes back to exactly the payload.
pub fn add_payload(data: &[u8]) {
    let parsed = AddRequest::parse(data);
    let Some((prefix, rest)) = data.split_first_chunk::<ADD_PREFIX_LEN>() else {
        assert_eq!(parsed, Err(ProtoError::ShortAdd(data.len())));
        return;
    };
    let timeout = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let id_len = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let refusal = if timeout > MAX_EXPIRY_MS {
        Some(Status::AddTimeoutRange)
    } else if u64::from(id_len) >= rest.len() as u64 {
        Some(Status::AddCorrupt)
    } else if id_len == 0 || id_len as usize > MAX_ID_LEN {
        Some(Status::AddIdRange)
    } else {
        None
    };
    match (parsed, refusal) {
        (Ok(Err(status)), Some(want)) => assert_eq!(status, want),
        (Ok(Ok(add)), None) => {
            assert_eq!(add.timeout_msecs, timeout);
            assert_eq!(add.id.len(), id_len as usize);
            assert!(!add.data.is_empty(), "an accepted ADD carries data");
            let mut again = Vec::new();
            match add.encode(&mut again) {
                Ok(()) => assert_eq!(again, data, "re-encoding changed the payload"),
                Err(e) => assert!(data.len() > MAX_TOTAL_DATA, "refused to encode: {e}"),
            }
        }
        (parsed, want) => panic!("parse gave {parsed:?}, the rules give {want:?}"),
    }
}
