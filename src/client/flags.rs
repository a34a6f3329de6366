//! The connection flags of `DC_CTX_new`, as the C `DC_CTX_FLAG_*` macros
//! define them.

use std::ops::BitOr;

/// Connection flags, with the values of the C `DC_CTX_FLAG_*` macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(u32);

impl Flags {
    /// Keep connections open and reuse them (otherwise one per operation).
    pub const PERSISTENT: Flags = Flags(0x0001);
    /// In a forked child, never use the parent's connections.
    pub const PERSISTENT_PIDCHECK: Flags = Flags(0x0002);
    /// After a reused connection fails, reconnect and retry once.
    pub const PERSISTENT_RETRY: Flags = Flags(0x0004);
    /// Connect at the first operation rather than at construction.
    pub const PERSISTENT_LATE: Flags = Flags(0x0008);

    /// No flags: a new connection for every operation.
    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// Flags from their C bit values (unknown bits are ignored).
    pub const fn from_bits(bits: u32) -> Flags {
        Flags(bits & 0x000f)
    }
    /// The C bit values.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Whether all of `other`'s bits are set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}
