//! Reading a log file record by record, stepping over damage.
//!
//! A record that does not check out is skipped: by its own length when the
//! bytes after it start a good record, else up to the next position where
//! a good record starts (found by its magic and proven by its checksum).
//! Bytes at the end that hold no good record are a torn tail: what a crash
//! in the middle of a write leaves.

use super::record::{parse, Parse, Record, RECORD_HEADER, RECORD_MAGIC};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes read from the file at once.
const READ_CHUNK: u64 = 256 * 1024;

/// What a scanner found at its position.
#[derive(Debug)]
pub enum Item<'a> {
    /// A good record.
    Record {
        /// Where it starts in the file.
        offset: u64,
        /// Its bytes, as on disk.
        raw: &'a [u8],
        /// What it says.
        record: Record<'a>,
    },
    /// Bytes that are not a good record, followed by a good one.
    Damaged {
        /// How many.
        len: u64,
    },
    /// Bytes up to the limit that hold no good record.
    Torn {
        /// How many.
        len: u64,
    },
}

/// What the bytes at an offset are, without borrowing them.
enum Probe {
    Valid(u64),
    BadChecksum(u64),
    /// Not a record, or a record cut short by the limit.
    Bad,
}

/// Reads the records of `file` from a start offset up to a limit.
#[derive(Debug)]
pub struct Scanner<'f> {
    file: &'f File,
    /// Bytes of the file from offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// The offset of the next item.
    next: u64,
    limit: u64,
}

impl<'f> Scanner<'f> {
    /// A scanner of `file` from `start` up to `limit`.
    pub fn new(file: &'f File, start: u64, limit: u64) -> Self {
        Scanner {
            file,
            buf: Vec::new(),
            base: start,
            next: start,
            limit,
        }
    }

    /// The offset of the next item.
    pub fn offset(&self) -> u64 {
        self.next
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Makes the bytes `at..at + need` available, reading up to the limit;
    /// false if the limit (or the end of the file) comes first.
    fn fill(&mut self, at: u64, need: u64) -> io::Result<bool> {
        let wanted = at + need;
        if self.end() >= wanted {
            return Ok(true);
        }
        // About to read: first drop what is not needed again (anything
        // before the next item or before `at`).
        let keep = self.next.min(at).min(self.end());
        if keep > self.base {
            self.buf.drain(..(keep - self.base) as usize);
            self.base = keep;
        }
        let end = self.end();
        let to = wanted.max(end + READ_CHUNK).min(self.limit);
        if to > end {
            // A zeroed chunk comes from the allocator already zeroed.
            let mut chunk = vec![0u8; (to - end) as usize];
            let mut read = 0;
            while read < chunk.len() {
                match self.file.read_at(&mut chunk[read..], end + read as u64) {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.buf.extend_from_slice(&chunk[..read]);
            if read < chunk.len() {
                // The file ends before the limit said.
                self.limit = self.end();
            }
        }
        Ok(self.end() >= wanted)
    }

    fn bytes_at(&self, at: u64) -> &[u8] {
        &self.buf[(at - self.base) as usize..]
    }

    fn probe(&mut self, at: u64) -> io::Result<Probe> {
        let mut need = RECORD_HEADER as u64;
        loop {
            let enough = self.fill(at, need)?;
            match parse(self.bytes_at(at)) {
                Parse::Valid(_, n) => return Ok(Probe::Valid(n as u64)),
                Parse::BadChecksum(n) => return Ok(Probe::BadChecksum(n as u64)),
                Parse::Invalid => return Ok(Probe::Bad),
                Parse::Short(n) if enough && n as u64 > need => need = n as u64,
                Parse::Short(_) => return Ok(Probe::Bad),
            }
        }
    }

    /// Whether a good record starts at `at`, or `at` is the limit.
    fn good_at(&mut self, at: u64) -> io::Result<bool> {
        if !self.fill(at, 1)? {
            return Ok(at >= self.limit);
        }
        Ok(matches!(self.probe(at)?, Probe::Valid(_)))
    }

    /// The offset of the first good record at or after `from`, if any
    /// before the limit.
    fn resync(&mut self, from: u64) -> io::Result<Option<u64>> {
        let magic = RECORD_MAGIC.len() as u64;
        let mut at = from;
        loop {
            // The bytes skipped so far are not needed again.
            self.next = at;
            if !self.fill(at, magic)? {
                return Ok(None);
            }
            let hay = self.bytes_at(at);
            match hay
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC)
            {
                Some(i) => {
                    let candidate = at + i as u64;
                    if self.good_at(candidate)? {
                        return Ok(Some(candidate));
                    }
                    at = candidate + 1;
                }
                // Keep the last bytes: a magic may straddle the next read.
                None => at += hay.len() as u64 + 1 - magic,
            }
        }
    }

    /// The next item, or `None` at the limit.
    pub fn next_item(&mut self) -> io::Result<Option<Item<'_>>> {
        let start = self.next;
        if !self.fill(start, 1)? {
            return Ok(None);
        }
        let skip_to = match self.probe(start)? {
            Probe::Valid(len) => {
                self.next = start + len;
                let raw = &self.buf[(start - self.base) as usize..(self.next - self.base) as usize];
                return Ok(match parse(raw) {
                    Parse::Valid(record, _) => Some(Item::Record {
                        offset: start,
                        raw,
                        record,
                    }),
                    // probe just found it valid
                    _ => None,
                });
            }
            Probe::BadChecksum(len) if self.good_at(start + len)? => Some(start + len),
            _ => self.resync(start + 1)?,
        };
        Ok(Some(match skip_to {
            Some(to) => {
                self.next = to;
                Item::Damaged { len: to - start }
            }
            None => {
                let end = self.limit.max(start);
                self.next = end;
                self.buf.clear();
                self.base = end;
                Item::Torn { len: end - start }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put(i: u32, data_len: usize) -> Vec<u8> {
        let id = format!("id-{i}");
        let data: Vec<u8> = (0..data_len).map(|k| (k as u32 * 7 + i) as u8).collect();
        let mut out = Vec::new();
        Record::Put {
            id: id.as_bytes(),
            data: &data,
            expires_ms: 10,
            added_ms: 5,
        }
        .encode(&mut out);
        out
    }

    /// Scans `bytes` and describes each item: "R<id>", "D<len>", "T<len>".
    fn scan(bytes: &[u8]) -> Vec<String> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        let mut s = Scanner::new(&f, 0, bytes.len() as u64 + 100);
        let mut out = Vec::new();
        while let Some(item) = s.next_item().unwrap() {
            out.push(match item {
                Item::Record { record, raw, .. } => {
                    assert_eq!(raw.len(), record.encoded_len());
                    format!("R{}", String::from_utf8_lossy(record.id()))
                }
                Item::Damaged { len, .. } => format!("D{len}"),
                Item::Torn { len, .. } => format!("T{len}"),
            });
        }
        out
    }

    #[test]
    fn clean_log_and_torn_tails() {
        let (a, b, c) = (put(1, 100), put(2, 300_000), put(3, 0));
        let log = [a.clone(), b.clone(), c.clone()].concat();
        assert_eq!(scan(&log), ["Rid-1", "Rid-2", "Rid-3"]);
        // Every cut inside the last record leaves a torn tail.
        for cut in 1..c.len() {
            let torn = &log[..a.len() + b.len() + cut];
            assert_eq!(scan(torn), ["Rid-1", "Rid-2", &format!("T{cut}")]);
        }
        assert!(scan(&[]).is_empty());
    }

    #[test]
    fn damage_in_the_middle_is_skipped_alone() {
        let (a, b, c) = (put(1, 50), put(2, 5000), put(3, 60));
        // A byte of the data changed: skipped by its own length.
        let mut log = [a.clone(), b.clone(), c.clone()].concat();
        log[a.len() + 100] ^= 0x40;
        assert_eq!(scan(&log), ["Rid-1", &format!("D{}", b.len()), "Rid-3"]);
        // Its length field changed: found again by the next magic.
        let mut log = [a.clone(), b.clone(), c.clone()].concat();
        log[a.len() + 13] ^= 0x01;
        assert_eq!(scan(&log), ["Rid-1", &format!("D{}", b.len()), "Rid-3"]);
        // Cut in half: its second half is gone.
        let log = [a.clone(), b[..b.len() / 2].to_vec(), c.clone()].concat();
        assert_eq!(scan(&log), ["Rid-1", &format!("D{}", b.len() / 2), "Rid-3"]);
        // Garbage between records, including a false magic.
        let mut junk = vec![0u8; 1_000_000];
        junk[500..504].copy_from_slice(&RECORD_MAGIC);
        let log = [a.clone(), junk, c.clone()].concat();
        assert_eq!(scan(&log), ["Rid-1", "D1000000", "Rid-3"]);
    }

    #[test]
    fn a_scan_stops_at_its_limit_and_resumes_from_an_offset() {
        let (a, b) = (put(1, 10), put(2, 20));
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&a).unwrap();
        let mut s = Scanner::new(&f, 0, a.len() as u64);
        assert!(matches!(s.next_item().unwrap(), Some(Item::Record { .. })));
        assert!(s.next_item().unwrap().is_none());
        let resume = s.offset();
        (&f).write_all(&b).unwrap();
        let mut s = Scanner::new(&f, resume, (a.len() + b.len()) as u64);
        match s.next_item().unwrap() {
            Some(Item::Record { offset, record, .. }) => {
                assert_eq!((offset, record.id()), (a.len() as u64, &b"id-2"[..]))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.offset(), (a.len() + b.len()) as u64);
    }
}
