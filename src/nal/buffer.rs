//! A bounded FIFO of bytes kept contiguous from its start, as libnal's
//! `NAL_BUFFER`: data is appended at the tail and taken from the head, the
//! rest moving down, so that the bytes held are always one slice.

/// The largest buffer libnal allows (`NAL_BUFFER_MAX_SIZE` of the original).
pub const MAX_BUFFER_SIZE: usize = 32768;

/// A bounded FIFO byte buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// The storage; its length is the buffer's size.
    data: Vec<u8>,
    /// Bytes held, from the start of `data`.
    used: usize,
}

impl Buffer {
    /// An empty buffer of size 0 (it holds nothing until resized).
    pub fn new() -> Buffer {
        Buffer::default()
    }

    /// An empty buffer of `size` bytes, or `None` when `size` exceeds
    /// [`MAX_BUFFER_SIZE`].
    pub fn with_size(size: usize) -> Option<Buffer> {
        let mut b = Buffer::new();
        b.set_size(size).then_some(b)
    }

    /// Resizes the buffer. A new size empties it; the same size keeps its
    /// contents. False, changing nothing, when `size` exceeds
    /// [`MAX_BUFFER_SIZE`].
    pub fn set_size(&mut self, size: usize) -> bool {
        if size == self.data.len() {
            return true;
        }
        if size > MAX_BUFFER_SIZE {
            return false;
        }
        self.data = vec![0; size];
        self.used = 0;
        true
    }

    /// Empties the buffer, keeping its size.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// The buffer's capacity.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Room left.
    pub fn unused(&self) -> usize {
        self.data.len() - self.used
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Whether there is no room left.
    pub fn is_full(&self) -> bool {
        self.used == self.data.len()
    }

    /// The bytes held, oldest first.
    pub fn data(&self) -> &[u8] {
        &self.data[..self.used]
    }

    /// The whole storage, for handing C a stable pointer to its start.
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Appends as much of `bytes` as fits; returns how many bytes were taken.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.unused());
        self.data[self.used..self.used + n].copy_from_slice(&bytes[..n]);
        self.used += n;
        n
    }

    /// Takes up to `max` bytes from the head, copying them into `out` when
    /// given (which must then hold at least that many); returns how many were
    /// taken.
    pub fn read(&mut self, out: Option<&mut [u8]>, max: usize) -> usize {
        let n = match &out {
            Some(o) => max.min(o.len()),
            None => max,
        }
        .min(self.used);
        if let Some(o) = out {
            o[..n].copy_from_slice(&self.data[..n]);
        }
        self.data.copy_within(n..self.used, 0);
        self.used -= n;
        n
    }

    /// Moves up to `max` bytes (0: as many as possible) from `src` to the
    /// tail of `self`; returns how many moved.
    pub fn transfer_from(&mut self, src: &mut Buffer, max: usize) -> usize {
        let room = self.unused();
        let max = if max == 0 || max > room { room } else { max };
        let n = max.min(src.used);
        let start = self.used;
        self.data[start..start + n].copy_from_slice(&src.data[..n]);
        self.used += n;
        src.read(None, n);
        n
    }

    /// The free space at the tail, to be filled in place and then declared
    /// with [`Buffer::wrote`].
    pub fn space_mut(&mut self) -> &mut [u8] {
        let used = self.used;
        &mut self.data[used..]
    }

    /// Declares `n` bytes written in place at the tail. False, changing
    /// nothing, when `n` exceeds the room left.
    pub fn wrote(&mut self, n: usize) -> bool {
        if n > self.unused() {
            return false;
        }
        self.used += n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_semantics() {
        let mut b = Buffer::with_size(8).expect("size");
        assert!(b.is_empty() && !b.is_full());
        assert_eq!(b.write(b"hello world"), 8);
        assert!(b.is_full());
        assert_eq!(b.write(b"x"), 0);
        let mut out = [0u8; 5];
        assert_eq!(b.read(Some(&mut out), 5), 5);
        assert_eq!(&out, b"hello");
        assert_eq!(b.data(), b" wo");
        assert_eq!(b.read(None, 100), 3);
        assert!(b.is_empty());
    }

    #[test]
    fn sizes() {
        let mut b = Buffer::new();
        assert_eq!(b.size(), 0);
        assert!(b.is_full() && b.is_empty());
        assert!(!b.set_size(MAX_BUFFER_SIZE + 1));
        assert!(b.set_size(MAX_BUFFER_SIZE));
        b.write(b"abc");
        assert!(b.set_size(MAX_BUFFER_SIZE));
        assert_eq!(b.used(), 3, "same size keeps the contents");
        assert!(b.set_size(4));
        assert_eq!(b.used(), 0, "a new size empties");
    }

    #[test]
    fn transfer_and_in_place_writes() {
        let mut a = Buffer::with_size(10).expect("size");
        let mut b = Buffer::with_size(4).expect("size");
        a.write(b"0123456789");
        assert_eq!(b.transfer_from(&mut a, 0), 4);
        assert_eq!(b.data(), b"0123");
        assert_eq!(a.data(), b"456789");
        b.reset();
        assert_eq!(b.transfer_from(&mut a, 2), 2);
        assert_eq!(b.data(), b"45");
        b.space_mut()[..2].copy_from_slice(b"zz");
        assert!(b.wrote(2));
        assert!(!b.wrote(1));
        assert_eq!(b.data(), b"45zz");
    }
}
