//! Fuzz targets: each function takes arbitrary bytes, drives one part of the
//! library with them and panics when an invariant breaks. The cargo-fuzz
//! targets in `fuzz/` call them, and `tests/fuzz_regressions.rs` replays the
//! saved inputs of `fuzz/regressions/<target>/` through them on every test
//! run, so an input that once failed keeps being checked.
//!
//! Several targets read a *split stream*:
//!
//! ```text
//! byte 0         flags (what each target makes of them is documented there)
//! byte 1         n % 65: the number of cut points, 0..=64
//! n x u16 (BE)   cut points: offsets into the stream (modulo its length + 1)
//! the rest       the stream, cut at those points into chunks fed one by one
//! ```
//!
//! so that the bytes of a capture, with its write boundaries as cut points,
//! make a seed.

mod address;
mod frames;
mod plug;
mod server;

pub use address::address;
pub use frames::{add_payload, decoder, reassembly};
pub use plug::plug;
pub use server::server;

/// A fuzz target: takes any bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its cargo-fuzz target and regression folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("decoder", decoder),
    ("reassembly", reassembly),
    ("add_payload", add_payload),
    ("address", address),
    ("plug", plug),
    ("server", server),
];

/// Reads fields off the front of a fuzz input; an exhausted input reads as
/// zeros, so that every input means something.
#[derive(Debug, Clone)]
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A split stream (see the module documentation): its flags byte, its
/// chunks in order, and the whole stream.
fn split_stream(data: &[u8]) -> (u8, Vec<&[u8]>, &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let count = usize::from(input.byte() % 65);
    let raw: Vec<u16> = (0..count).map(|_| input.u16()).collect();
    let stream = input.rest();
    let mut cuts: Vec<usize> = raw
        .into_iter()
        .map(|c| usize::from(c) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);
    (flags, chunks, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_stream_cuts_in_order() {
        let data = [
            7, 3, 0, 5, 0, 2, 0x01, 0x00, b'a', b'b', b'c', b'd', b'e', b'f',
        ];
        let (flags, chunks, stream) = split_stream(&data);
        assert_eq!(flags, 7);
        assert_eq!(stream, b"abcdef");
        // 5, 2 and 256 % 7 = 4, sorted: 2, 4, 5.
        assert_eq!(chunks, [&b"ab"[..], b"cd", b"e", b"f"]);
    }

    #[test]
    fn short_input_reads_as_zeros() {
        let (flags, chunks, stream) = split_stream(&[]);
        assert_eq!((flags, stream), (0, &[][..]));
        assert_eq!(chunks, [&[0u8; 0][..]]);
        let mut input = Input::new(&[1]);
        assert_eq!(input.u16(), 0x0100);
        assert!(input.is_empty());
        assert_eq!(input.u32(), 0);
    }
}
