//! The model of one id: what was stored and when, and whether a session is
//! certainly live, certainly expired, or either at the time of a call; a
//! deterministic generator; the counts of what was checked.

use std::time::{Duration, Instant};

/// Clock slack allowed around an expiry (the server counts whole ms).
pub const MARGIN: Duration = Duration::from_millis(5);

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

// ---------------------------------------------------------------------------
// The model of one id

pub enum Slot {
    /// Certainly not stored.
    Absent,
    Stored {
        data: Vec<u8>,
        /// When the ADD was sent and when its OK came back.
        sent: Instant,
        acked: Instant,
        lifetime: Duration,
    },
}

/// What the model says of a stored session for a call sent at `start`
/// and answered at `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Live when the server handled the call, whenever that was.
    Live,
    /// Expired by then.
    Expired,
    /// Either.
    Unsure,
}

pub fn life(
    sent: Instant,
    acked: Instant,
    lifetime: Duration,
    start: Instant,
    end: Instant,
) -> Life {
    if end + MARGIN < sent + lifetime {
        Life::Live
    } else if start > acked + lifetime + MARGIN {
        Life::Expired
    } else {
        Life::Unsure
    }
}

/// What a worker counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub ops: u64,
    pub adds: u64,
    /// GETs that returned a session, checked byte for byte.
    pub gets_checked: u64,
    /// HAVE and REMOVE that found a session the model had.
    pub found_checked: u64,
    /// Calls that correctly found nothing.
    pub misses_checked: u64,
    /// Sessions certainly live that were gone (evicted, if anything).
    pub losses: u64,
    /// Sessions stored for 2 s or less (most expire during the run).
    pub short_lived: u64,
    /// Sessions of 1 to 4 bytes stored (raw clients only).
    pub tiny: u64,
    pub bytes_checked: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.ops += o.ops;
        self.adds += o.adds;
        self.gets_checked += o.gets_checked;
        self.found_checked += o.found_checked;
        self.misses_checked += o.misses_checked;
        self.losses += o.losses;
        self.short_lived += o.short_lived;
        self.tiny += o.tiny;
        self.bytes_checked += o.bytes_checked;
    }
}
