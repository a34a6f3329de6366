//! The sessions the scenarios store, and the sizes of the messages that
//! carry them (the floors exchange exactly as many bytes).

use distcache::internals::proto::{encoded_len, ADD_PREFIX_LEN};

/// Bytes of a session id.
pub const ID_LEN: usize = 32;
/// Bytes of a session's data.
pub const DATA_LEN: usize = 1024;
/// Lifetime of every stored session: longer than any run.
pub const TIMEOUT_MS: u32 = 3_600_000;

/// The id of session `i` of family `tag` (families keep the preloaded
/// sessions apart from the ones a run adds).
pub fn id(tag: u8, i: u64) -> [u8; ID_LEN] {
    let mut id = [0x5a; ID_LEN];
    id[0] = tag;
    id[1..9].copy_from_slice(&i.to_le_bytes());
    id
}

/// Bytes 0..=255 repeated: every session's data is a window of it.
const PATTERN: [u8; DATA_LEN + 256] = {
    let mut p = [0u8; DATA_LEN + 256];
    let mut k = 0;
    while k < p.len() {
        p[k] = (k % 256) as u8;
        k += 1;
    }
    p
};

/// The data of session `i`: varies with `i` so that a wrong answer shows,
/// and costs nothing to make.
pub fn data(i: u64) -> &'static [u8] {
    let start = (i.wrapping_mul(31) % 256) as usize;
    &PATTERN[start..start + DATA_LEN]
}

/// (request, reply) bytes on the wire of a GET hit.
pub fn get_sizes() -> (usize, usize) {
    (encoded_len(ID_LEN), encoded_len(DATA_LEN))
}

/// (request, reply) bytes on the wire of an ADD.
pub fn add_sizes() -> (usize, usize) {
    (
        encoded_len(ADD_PREFIX_LEN + ID_LEN + DATA_LEN),
        encoded_len(1),
    )
}

/// A small, fast generator of indexes (xorshift64*): the same sequence for
/// the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
