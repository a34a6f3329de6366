//! Where the sessions' bytes live: slots of a few sizes carved from large
//! chunks of memory, each chunk holding slots of one size.
//!
//! Compared with one allocation per session this keeps a million sessions
//! in a few hundred chunks of 4 MiB on huge pages (see `sys::pages`),
//! wastes little (slots are whole cache lines up to 4 KiB, then eight sizes
//! per doubling), and frees a slot without touching it: the bookkeeping of
//! a chunk is a few words plus a stack of its free slot numbers, all kept
//! apart from the slots themselves. A chunk whose last slot is freed is
//! given back to the kernel unless it is the only chunk of its size.

use crate::sys::pages::{Mapping, HUGE_PAGE};

/// Where a slot is: its chunk number in the high 16 bits, its number in
/// the chunk in the low 16. `u32::MAX` is never handed out.
pub(super) type Handle = u32;

const SLOT_BITS: u32 = 16;
/// The most slots in a chunk.
const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// The most chunks (chunk `0xffff` would make handle `u32::MAX` possible).
const MAX_CHUNKS: usize = (1 << (32 - SLOT_BITS)) - 1;
/// Slot sizes are multiples of this up to [`FINE_LIMIT`].
const LINE: usize = 64;
const FINE_LIMIT: usize = 4096;
/// A size's first chunk; each next one is twice as large, up to
/// [`BIG_CHUNK`] (and [`MAX_SLOTS`] slots). With 65535 chunks of 32 MiB
/// the arena spans 2 TiB (256 GiB for slots of 64 bytes).
const FIRST_CHUNK: usize = 64 * 1024;
const BIG_CHUNK: usize = 16 * HUGE_PAGE;
const PAGE: usize = 4096;
/// `Chunk::open` of a chunk that has no free slot.
const FULL: u32 = u32::MAX;

/// The slot size that holds `len` bytes, and the number of its class.
fn class_of(len: usize) -> (usize, usize) {
    let len = len.max(1);
    if len <= FINE_LIMIT {
        let lines = len.div_ceil(LINE);
        return (lines - 1, lines * LINE);
    }
    // Eight sizes per doubling: (8 + step + 1) << (log2 - 3).
    let n = len - 1;
    let log2 = n.ilog2() as usize;
    let step = (n >> (log2 - 3)) & 7;
    let class = FINE_LIMIT / LINE + (log2 - FINE_LIMIT.ilog2() as usize) * 8 + step;
    (class, (8 + step + 1) << (log2 - 3))
}

#[derive(Debug)]
struct Chunk {
    /// `None` once given back (its number is then free for reuse).
    mem: Option<Mapping>,
    slot_size: usize,
    class: usize,
    /// How many slots it has.
    slots: u32,
    /// Slots `0..fresh` have been handed out at least once.
    fresh: u32,
    live: u32,
    /// Freed slots, handed out again before fresh ones (last first).
    free: Vec<u16>,
    /// Its place in its class's `open` list, or [`FULL`].
    open: u32,
}

#[derive(Debug, Default)]
struct Class {
    /// Chunks of this size with a free slot; slots come from the last.
    open: Vec<u16>,
    /// Chunks of this size held.
    chunks: usize,
    /// Bytes of the chunks of this size held: the next chunk is as large,
    /// so that a size's memory doubles as it grows, and a size that holds
    /// few sessions keeps small chunks (on small pages) however long the
    /// store has churned.
    bytes: usize,
}

/// The slots of all sizes.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: Vec<Chunk>,
    /// Numbers of chunks given back, for reuse.
    spare: Vec<u16>,
    classes: Vec<Class>,
    /// Bytes of chunks held.
    held: usize,
}

impl Arena {
    /// A slot of at least `len` bytes; `None` when no chunk can be had
    /// (all chunk numbers taken, or the kernel refused the memory).
    pub(super) fn alloc(&mut self, len: usize) -> Option<Handle> {
        let (class, slot_size) = class_of(len);
        if self.classes.len() <= class {
            self.classes.resize_with(class + 1, Class::default);
        }
        let c = match self.classes[class].open.last() {
            Some(&c) => usize::from(c),
            None => self.new_chunk(class, slot_size)?,
        };
        let chunk = &mut self.chunks[c];
        let slot = match chunk.free.pop() {
            Some(s) => u32::from(s),
            None => {
                chunk.fresh += 1;
                chunk.fresh - 1
            }
        };
        chunk.live += 1;
        if chunk.live == chunk.slots {
            // Full: it is the last of the open list, where slots come from.
            self.classes[class].open.pop();
            chunk.open = FULL;
        }
        Some(((c as u32) << SLOT_BITS) | slot)
    }

    /// Frees the slot `h` (handed out by [`Arena::alloc`], not yet freed).
    pub(super) fn free(&mut self, h: Handle) {
        let (c, slot) = split(h);
        let chunk = &mut self.chunks[c];
        chunk.live -= 1;
        // Slot numbers are below MAX_SLOTS, so they fit in u16.
        chunk.free.push(slot as u16);
        let class = &mut self.classes[chunk.class];
        if chunk.open == FULL {
            chunk.open = class.open.len() as u32;
            class.open.push(c as u16);
        }
        if chunk.live == 0 && class.chunks > 1 {
            let at = chunk.open as usize;
            class.open.swap_remove(at);
            if let Some(&moved) = class.open.get(at) {
                self.chunks[usize::from(moved)].open = at as u32;
            }
            class.chunks -= 1;
            let chunk = &mut self.chunks[c];
            let len = chunk.mem.as_ref().map_or(0, |m| m.len());
            self.held -= len;
            self.classes[chunk.class].bytes -= len;
            chunk.mem = None;
            chunk.free = Vec::new();
            chunk.open = FULL;
            self.spare.push(c as u16);
        }
    }

    /// The bytes of slot `h` (all of the slot: at least what was asked for).
    pub(super) fn slot(&self, h: Handle) -> &[u8] {
        let (c, slot) = split(h);
        let chunk = &self.chunks[c];
        let at = slot as usize * chunk.slot_size;
        match &chunk.mem {
            Some(m) => &m[at..at + chunk.slot_size],
            None => &[],
        }
    }

    /// The first byte of slot `h` (to bring its first line into the
    /// cache).
    pub(super) fn first_byte(&self, h: Handle) -> u8 {
        self.slot(h).first().copied().unwrap_or(0)
    }

    /// The bytes of slot `h`, to write.
    pub(super) fn slot_mut(&mut self, h: Handle) -> &mut [u8] {
        let (c, slot) = split(h);
        let chunk = &mut self.chunks[c];
        let at = slot as usize * chunk.slot_size;
        match &mut chunk.mem {
            Some(m) => &mut m[at..at + chunk.slot_size],
            None => &mut [],
        }
    }

    /// Bytes of memory the chunks hold.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Makes a chunk for `class` and puts it in the class's open list.
    fn new_chunk(&mut self, class: usize, slot_size: usize) -> Option<usize> {
        let target = self.classes[class].bytes.clamp(FIRST_CHUNK, BIG_CHUNK);
        // Past 2 MiB both bounds are multiples of HUGE_PAGE (slot sizes
        // are multiples of 64), so large chunks get huge pages.
        let bytes = if slot_size > target {
            slot_size.checked_next_multiple_of(PAGE)?
        } else {
            target.min(MAX_SLOTS.saturating_mul(slot_size))
        };
        let slots = (bytes / slot_size).min(MAX_SLOTS);
        let c = match self.spare.pop() {
            Some(c) => usize::from(c),
            None if self.chunks.len() < MAX_CHUNKS => self.chunks.len(),
            None => return None,
        };
        let Some(mem) = Mapping::new(bytes) else {
            if c < self.chunks.len() {
                self.spare.push(c as u16);
            }
            return None;
        };
        let cls = &mut self.classes[class];
        let chunk = Chunk {
            mem: Some(mem),
            slot_size,
            class,
            slots: slots as u32,
            fresh: 0,
            live: 0,
            free: Vec::new(),
            open: cls.open.len() as u32,
        };
        cls.open.push(c as u16);
        cls.chunks += 1;
        cls.bytes += bytes;
        self.held += bytes;
        if c == self.chunks.len() {
            self.chunks.push(chunk);
        } else {
            self.chunks[c] = chunk;
        }
        Some(c)
    }
}

fn split(h: Handle) -> (usize, u32) {
    ((h >> SLOT_BITS) as usize, h & ((1 << SLOT_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hold_what_they_are_asked_for_and_waste_little() {
        let mut last = (0, LINE);
        for len in 1..200_000usize {
            let (class, size) = class_of(len);
            assert!(size >= len, "{len}");
            assert!(size - len < LINE || size - len <= len / 8, "{len}: {size}");
            assert!(class >= last.0, "{len}");
            if class == last.0 {
                assert_eq!(size, last.1, "{len}");
            }
            last = (class, size);
        }
        assert_eq!(class_of(1088), (16, 1088));
        assert_eq!(class_of(4097).1, 4608);
        assert_eq!(class_of(8192).1, 8192);
        assert_eq!(class_of(8193).1, 9216);
    }

    /// A few thousand sessions of mixed sizes come and go: every slot keeps
    /// its own bytes, no two live slots overlap, and the memory of sizes no
    /// longer used is given back.
    #[test]
    fn slots_keep_their_bytes_and_empty_chunks_are_given_back() {
        let mut a = Arena::default();
        // (handle, length, fill byte) of the live slots.
        let mut live: Vec<(Handle, usize, u8)> = Vec::new();
        let mut rnd = super::super::tests::xorshift(12345);
        for round in 0..40_000u32 {
            if live.is_empty() || (live.len() < 3000 && rnd(3) != 0) {
                let len = 1 + rnd(6000) as usize;
                let h = a.alloc(len).expect("room");
                assert_ne!(h, u32::MAX);
                assert!(live.iter().all(|l| l.0 != h), "slot handed out twice");
                let fill = (round % 251) as u8;
                let s = a.slot_mut(h);
                assert!(s.len() >= len);
                s[..len].fill(fill);
                live.push((h, len, fill));
            } else {
                let (h, len, fill) = live.swap_remove(rnd(live.len() as u64) as usize);
                assert!(a.slot(h)[..len].iter().all(|&b| b == fill));
                a.free(h);
            }
        }
        for &(h, len, fill) in &live {
            assert!(a.slot(h)[..len].iter().all(|&b| b == fill));
        }
        let busy = a.held();
        assert!(a.classes.iter().any(|c| c.chunks > 1));
        for &(h, _, _) in &live {
            a.free(h);
        }
        assert!(a.classes.iter().all(|c| c.chunks <= 1));
        assert!(a.held() < busy);
    }

    #[test]
    fn a_full_chunk_takes_freed_slots_back_and_large_slots_get_their_own_chunk() {
        let mut a = Arena::default();
        let per_chunk = FIRST_CHUNK / 1088;
        let hs: Vec<Handle> = (0..per_chunk).map(|_| a.alloc(1088).unwrap()).collect();
        assert_eq!(a.held(), FIRST_CHUNK);
        a.free(hs[3]);
        assert_eq!(a.alloc(1050), Some(hs[3]), "the freed slot is reused");
        let next = a.alloc(1088).unwrap();
        assert_ne!(next >> SLOT_BITS, hs[0] >> SLOT_BITS, "a second chunk");
        // As large as what the size held: its memory doubles.
        assert_eq!(a.held(), FIRST_CHUNK * 2);
        let big = a.alloc(3 << 20).unwrap();
        assert!(a.slot(big).len() >= 3 << 20);
        a.free(big);
        a.free(next);
        // The emptied second chunk is given back; the only chunk of a size
        // is kept.
        assert_eq!(a.held(), FIRST_CHUNK + (3 << 20));
    }

    /// A size whose sessions come and go but stay few keeps chunks as
    /// small as it needs, however often one is made and given back.
    #[test]
    fn churn_at_a_small_size_keeps_small_chunks() {
        let mut a = Arena::default();
        let per_chunk = FIRST_CHUNK / 1088;
        let hs: Vec<Handle> = (0..per_chunk).map(|_| a.alloc(1088).unwrap()).collect();
        for _ in 0..40 {
            let extra = a.alloc(1088).unwrap();
            assert!(a.held() <= 2 * FIRST_CHUNK, "{} bytes held", a.held());
            a.free(extra);
            assert_eq!(a.held(), FIRST_CHUNK);
        }
        drop(hs);
    }

    #[test]
    fn chunks_grow_to_the_largest_size_and_no_further() {
        let mut a = Arena::default();
        for slot_size in [64, 1088, 6144] {
            let class = class_of(slot_size).0;
            if a.classes.len() <= class {
                a.classes.resize_with(class + 1, Class::default);
            }
            let mut sizes = Vec::new();
            for _ in 0..12 {
                let before = a.held();
                let c = a.new_chunk(class, slot_size).unwrap();
                assert_eq!(a.chunks[c].slot_size, slot_size);
                sizes.push(a.held() - before);
            }
            // Each new chunk is as large as all the size held before it.
            assert_eq!(sizes[0], FIRST_CHUNK);
            assert_eq!(sizes[1], FIRST_CHUNK);
            assert_eq!(sizes[2], 2 * FIRST_CHUNK);
            let largest = BIG_CHUNK.min(MAX_SLOTS * slot_size);
            assert_eq!(sizes[11], largest, "{slot_size}");
            assert!(sizes.iter().all(|&b| b <= largest));
            assert_eq!(largest % HUGE_PAGE, 0);
        }
    }
}
