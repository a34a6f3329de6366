//! The on-disk format of a store's log: a file header, then records one
//! after another, each with its own checksum.
//!
//! ```text
//! file header   8 bytes   "DCSLOG" 0x00 0x01   (format 1)
//! record        32-byte header, then the id, then the data:
//!   0   4  magic        0xDC 'R' 'E' 'C'
//!   4   4  CRC-32 (IEEE) of bytes 8.. to the end of the record
//!   8   1  kind         1 = put (a session), 2 = remove (a tombstone)
//!   9   1  id length    1..=64
//!  10   2  zero
//!  12   4  data length  (0 for a remove)
//!  16   8  expiry       wall-clock milliseconds since 1970 (0 for a remove)
//!  24   8  written      wall-clock milliseconds since 1970
//!  32      id, then data
//! ```
//!
//! Integers are little-endian. A later record for an id replaces an
//! earlier one; a remove deletes it. The checksum covers everything after
//! itself, so a record torn by a crash or damaged on disk is never taken
//! for a good one.

/// The first bytes of every log file: a name, and the format number.
pub const FILE_HEADER: [u8; 8] = *b"DCSLOG\x00\x01";
/// Bytes of a record before its id.
pub const RECORD_HEADER: usize = 32;
/// The first bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = [0xDC, b'R', b'E', b'C'];
/// The longest id a record holds.
pub const MAX_ID_LEN: usize = 64;
/// The most data bytes a record is believed to hold (a sanity bound far
/// above what the protocol carries).
pub const MAX_DATA_LEN: usize = 16 << 20;

const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;

/// One record of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A session stored.
    Put {
        /// Its id.
        id: &'a [u8],
        /// Its data.
        data: &'a [u8],
        /// When it expires, wall-clock ms since 1970.
        expires_ms: u64,
        /// When it was added, wall-clock ms since 1970.
        added_ms: u64,
    },
    /// A session removed (by a client, or evicted).
    Remove {
        /// Its id.
        id: &'a [u8],
        /// When, wall-clock ms since 1970.
        at_ms: u64,
    },
}

impl<'a> Record<'a> {
    /// The session id the record is about.
    #[cfg(test)]
    pub fn id(&self) -> &'a [u8] {
        match *self {
            Record::Put { id, .. } | Record::Remove { id, .. } => id,
        }
    }

    /// Bytes the record takes on disk.
    #[cfg(test)]
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Put { id, data, .. } => put_len(id.len(), data.len()),
            Record::Remove { id, .. } => RECORD_HEADER + id.len(),
        }
    }

    /// Appends the record to `out`. The id must be 1 to [`MAX_ID_LEN`]
    /// bytes and the data at most [`MAX_DATA_LEN`]; the store never makes
    /// others (the protocol's limits are far lower).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, id, data, expires, written) = match *self {
            Record::Put {
                id,
                data,
                expires_ms,
                added_ms,
            } => (KIND_PUT, id, data, expires_ms, added_ms),
            Record::Remove { id, at_ms } => (KIND_REMOVE, id, &[][..], 0, at_ms),
        };
        debug_assert!((1..=MAX_ID_LEN).contains(&id.len()) && data.len() <= MAX_DATA_LEN);
        let start = out.len();
        out.extend_from_slice(&RECORD_MAGIC);
        out.extend_from_slice(&[0; 4]);
        out.push(kind);
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&expires.to_le_bytes());
        out.extend_from_slice(&written.to_le_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start + 8..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Bytes a put record of an id and data of these lengths takes on disk.
pub fn put_len(id_len: usize, data_len: usize) -> usize {
    RECORD_HEADER + id_len + data_len
}

/// What the bytes at some position of a log hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A good record of this many bytes.
    Valid(Record<'a>, usize),
    /// Possibly a record, but at least this many bytes are needed to tell.
    Short(usize),
    /// A plausible header for a record of this many bytes, whose checksum
    /// does not match.
    BadChecksum(usize),
    /// Not the start of a record.
    Invalid,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Reads the record at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parse<'_> {
    if bytes.len() < RECORD_HEADER {
        // Reject early what cannot be a record, so that a scan does not
        // wait for more bytes behind garbage.
        let n = bytes.len().min(RECORD_MAGIC.len());
        if bytes[..n] != RECORD_MAGIC[..n] {
            return Parse::Invalid;
        }
        return Parse::Short(RECORD_HEADER);
    }
    if bytes[..4] != RECORD_MAGIC {
        return Parse::Invalid;
    }
    let kind = bytes[8];
    let id_len = usize::from(bytes[9]);
    let data_len = usize::try_from(u32_at(bytes, 12)).unwrap_or(usize::MAX);
    let sane = match kind {
        KIND_PUT => data_len <= MAX_DATA_LEN,
        KIND_REMOVE => data_len == 0 && u64_at(bytes, 16) == 0,
        _ => false,
    };
    if !sane || !(1..=MAX_ID_LEN).contains(&id_len) || bytes[10..12] != [0, 0] {
        return Parse::Invalid;
    }
    let total = RECORD_HEADER + id_len + data_len;
    if bytes.len() < total {
        return Parse::Short(total);
    }
    if crc32fast::hash(&bytes[8..total]) != u32_at(bytes, 4) {
        return Parse::BadChecksum(total);
    }
    let id = &bytes[RECORD_HEADER..RECORD_HEADER + id_len];
    let record = match kind {
        KIND_PUT => Record::Put {
            id,
            data: &bytes[RECORD_HEADER + id_len..total],
            expires_ms: u64_at(bytes, 16),
            added_ms: u64_at(bytes, 24),
        },
        _ => Record::Remove {
            id,
            at_ms: u64_at(bytes, 24),
        },
    };
    Parse::Valid(record, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<'a>(id: &'a [u8], data: &'a [u8]) -> Record<'a> {
        Record::Put {
            id,
            data,
            expires_ms: 1_900_000_000_000,
            added_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn records_round_trip() {
        let records = [
            put(b"i", b""),
            put(&[7; 64], &[1, 2, 3]),
            put(b"id", &[0xAB; 32768]),
            Record::Remove {
                id: b"gone",
                at_ms: 5,
            },
        ];
        let mut log = Vec::new();
        for r in &records {
            r.encode(&mut log);
        }
        let mut at = 0;
        for r in &records {
            match parse(&log[at..]) {
                Parse::Valid(got, len) => {
                    assert_eq!(got, *r);
                    assert_eq!(len, r.encoded_len());
                    at += len;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(at, log.len());
    }

    #[test]
    fn every_truncation_is_short_and_every_bit_flip_is_caught() {
        let mut rec = Vec::new();
        put(b"session", b"some data").encode(&mut rec);
        for cut in 0..rec.len() {
            assert!(
                matches!(parse(&rec[..cut]), Parse::Short(_)),
                "cut at {cut}"
            );
        }
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                match parse(&bad) {
                    Parse::Valid(..) => panic!("flip of bit {bit} in byte {byte} not caught"),
                    Parse::Short(_) | Parse::BadChecksum(_) | Parse::Invalid => {}
                }
            }
        }
    }

    #[test]
    fn garbage_is_invalid_at_once() {
        assert_eq!(parse(b"x"), Parse::Invalid);
        assert_eq!(parse(&[0xDC, b'R', b'X']), Parse::Invalid);
        assert_eq!(parse(&[0xDC, b'R']), Parse::Short(RECORD_HEADER));
        let mut rec = Vec::new();
        put(b"a", b"b").encode(&mut rec);
        rec[8] = 9; // unknown kind
        assert_eq!(parse(&rec), Parse::Invalid);
    }
}
