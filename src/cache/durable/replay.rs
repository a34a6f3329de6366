//! Reading a whole log back: the sessions it holds, and what was wrong
//! with it.

use super::record::{Record, FILE_HEADER};
use super::scan::{Item, Scanner};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A session as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its data.
    pub data: Box<[u8]>,
    /// When it expires: wall-clock milliseconds since 1970.
    pub expires_ms: u64,
    /// When it was added: wall-clock milliseconds since 1970.
    pub added_ms: u64,
}

/// What a log holds.
#[derive(Debug, Default)]
pub struct Replay {
    /// The last put of every id not removed since, expired or not.
    pub sessions: HashMap<Box<[u8]>, StoredSession>,
    /// Damaged records (or stretches of damaged bytes) skipped before
    /// the last good record.
    pub corrupt: usize,
    /// Their bytes.
    pub corrupt_bytes: u64,
    /// Bytes after the last good record that hold no good record: a
    /// write that a crash or a `kill -9` cut short.
    pub torn_bytes: u64,
    /// Whether damage was found before the last good record (so that
    /// cutting the file short cannot remove it).
    pub damaged_inside: bool,
    /// The end of the last good record: where appending may go on.
    pub valid_end: u64,
    /// The file's length.
    pub file_len: u64,
}

/// Why a file cannot be replayed.
#[derive(Debug)]
pub enum ReplayError {
    /// It does not start with a log header.
    NotALog,
    /// Reading it failed.
    Io(io::Error),
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Io(e)
    }
}

/// Reads every record of the log in `file`. A file shorter than the header
/// whose bytes begin the header (a log whose creation a crash cut short)
/// is an empty log.
pub fn replay(file: &File) -> Result<Replay, ReplayError> {
    let file_len = file.metadata()?.len();
    let header_len = FILE_HEADER.len() as u64;
    let mut head = vec![0; usize::try_from(file_len.min(header_len)).unwrap_or(0)];
    file.read_exact_at(&mut head, 0)?;
    if head[..] != FILE_HEADER[..head.len()] {
        return Err(ReplayError::NotALog);
    }
    let mut out = Replay {
        file_len,
        valid_end: header_len.min(file_len),
        ..Replay::default()
    };
    if file_len < header_len {
        return Ok(out);
    }
    let mut scanner = Scanner::new(file, header_len, file_len);
    while let Some(item) = scanner.next_item()? {
        match item {
            Item::Record {
                record,
                raw,
                offset,
            } => {
                out.valid_end = offset + raw.len() as u64;
                apply(&mut out.sessions, record);
            }
            Item::Damaged { len, .. } => {
                out.corrupt += 1;
                out.corrupt_bytes += len;
                out.damaged_inside = true;
            }
            Item::Torn { len, .. } => out.torn_bytes += len,
        }
    }
    Ok(out)
}

fn apply(sessions: &mut HashMap<Box<[u8]>, StoredSession>, record: Record<'_>) {
    match record {
        Record::Put {
            id,
            data,
            expires_ms,
            added_ms,
        } => {
            sessions.insert(
                id.into(),
                StoredSession {
                    data: data.into(),
                    expires_ms,
                    added_ms,
                },
            );
        }
        Record::Remove { id, .. } => {
            sessions.remove(id);
        }
    }
}
