//! How a session is laid out in its slot: a 32-byte header (expiry,
//! insertion number, time added, id length, data length), the id, then the
//! data. With ids of 32 bytes the header and the id fill the slot's first
//! cache line, which is all an eviction or a listing reads.

use super::Millis;

/// Bytes of the header.
pub(super) const HEADER: usize = 32;

/// What a slot's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) expiry: Millis,
    pub(super) seq: u64,
    pub(super) added: Millis,
    pub(super) id_len: usize,
    pub(super) data_len: usize,
}

/// Bytes a session takes in its slot; `None` when its id or data is too
/// long to describe (4 GiB or more).
pub(super) fn size(id_len: usize, data_len: usize) -> Option<usize> {
    u32::try_from(id_len).ok()?;
    u32::try_from(data_len).ok()?;
    HEADER.checked_add(id_len)?.checked_add(data_len)
}

/// Writes a session into `slot` (at least [`size`] bytes; the lengths in
/// `h` are those of `id` and `data`).
pub(super) fn write(slot: &mut [u8], h: &Header, id: &[u8], data: &[u8]) {
    slot[0..8].copy_from_slice(&h.expiry.to_le_bytes());
    slot[8..16].copy_from_slice(&h.seq.to_le_bytes());
    slot[16..24].copy_from_slice(&h.added.to_le_bytes());
    slot[24..28].copy_from_slice(&(id.len() as u32).to_le_bytes());
    slot[28..32].copy_from_slice(&(data.len() as u32).to_le_bytes());
    let id_end = HEADER + id.len();
    slot[HEADER..id_end].copy_from_slice(id);
    slot[id_end..id_end + data.len()].copy_from_slice(data);
}

fn word(slot: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(slot[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn half(slot: &[u8], at: usize) -> usize {
    u32::from_le_bytes(slot[at..at + 4].try_into().unwrap_or([0; 4])) as usize
}

/// The header of the session in `slot`.
pub(super) fn header(slot: &[u8]) -> Header {
    Header {
        expiry: word(slot, 0),
        seq: word(slot, 8),
        added: word(slot, 16),
        id_len: half(slot, 24),
        data_len: half(slot, 28),
    }
}

/// Reads one byte of each cache line of `slot` after the first, so that
/// the lines are on their way while the id in the first is compared: the
/// loads do not depend on each other, and the processor overlaps their
/// misses where a copy would meet them one after another.
pub(super) fn touch_lines(slot: &[u8]) {
    let mut seen = 0u8;
    for &b in slot.iter().step_by(64).skip(1) {
        seen ^= b;
    }
    std::hint::black_box(seen);
}

/// The id of the session in `slot`.
pub(super) fn id(slot: &[u8]) -> &[u8] {
    &slot[HEADER..HEADER + half(slot, 24)]
}

/// The data of the session in `slot`.
pub(super) fn data(slot: &[u8]) -> &[u8] {
    let start = HEADER + half(slot, 24);
    &slot[start..start + half(slot, 28)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_back_as_written() {
        let h = Header {
            expiry: u64::MAX - 1,
            seq: 1 << 40,
            added: 77,
            id_len: 3,
            data_len: 5,
        };
        let mut slot = vec![0xee; size(3, 5).unwrap() + 7];
        write(&mut slot, &h, b"abc", b"hello");
        assert_eq!(header(&slot), h);
        assert_eq!((id(&slot), data(&slot)), (&b"abc"[..], &b"hello"[..]));
        assert_eq!(slot[HEADER + 8], 0xee, "nothing written past the data");
        assert_eq!(size(0, 0), Some(HEADER));
        assert_eq!(size(usize::MAX, 0), None);
    }
}
