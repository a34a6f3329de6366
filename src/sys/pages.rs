//! Memory straight from the kernel for the session store's large blocks,
//! and the hint that asks for huge pages: the store's only unsafe code, in
//! the small functions below.
//!
//! A million sessions span a gibibyte; with 4 KiB pages every lookup also
//! misses the TLB and walks page tables that are themselves cold. Blocks
//! of 2 MiB and more are therefore mapped on 2 MiB boundaries and marked
//! for transparent huge pages (`MADV_HUGEPAGE`), which the kernel honours
//! when it is set to `always` or `madvise` and otherwise ignores.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The size of a huge page on the targets where the store asks for them.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// A block of zeroed memory mapped from the kernel, unmapped when dropped.
/// It reads and writes as a `[u8]`.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` owns its memory exclusively, as a `Box<[u8]>` does;
// nothing else holds its address, so moving it to or sharing it with
// another thread is as sound as for a `Box<[u8]>`.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` gives only shared reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` (more than 0) zeroed bytes; when `len` is a multiple of
    /// [`HUGE_PAGE`], aligned on one and marked for huge pages. `None` when
    /// the kernel refuses the mapping.
    pub(crate) fn new(len: usize) -> Option<Mapping> {
        if len == 0 {
            return None;
        }
        let huge = len % HUGE_PAGE == 0;
        let ptr = if huge { map_aligned(len)? } else { map(len)? };
        let m = Mapping { ptr, len };
        if huge {
            advise_huge_pages(&m);
        }
        Some(m)
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a live mapping of `len` readable
        // bytes (zeroed by the kernel, so initialised) that this value owns
        // until it is dropped; the borrow of `self` keeps it alive.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Mapping {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; the mutable borrow of `self` makes this
        // the only reference to the mapping while it lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        unmap(self.ptr.as_ptr(), self.len);
    }
}

/// Maps `len` fresh bytes, readable and writable, private and anonymous.
fn map(len: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address the kernel picks
    // touches no existing memory; the result is checked before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast::<u8>())
    }
}

/// Maps `len` bytes (a multiple of [`HUGE_PAGE`]) starting on a
/// [`HUGE_PAGE`] boundary: maps one huge page more and gives back the
/// unaligned ends.
fn map_aligned(len: usize) -> Option<NonNull<u8>> {
    let whole = len.checked_add(HUGE_PAGE)?;
    let p = map(whole)?.as_ptr() as usize;
    let start = p.next_multiple_of(HUGE_PAGE);
    let head = start - p;
    let tail = whole - head - len;
    if head > 0 {
        unmap(p as *mut u8, head);
    }
    if tail > 0 {
        unmap((start + len) as *mut u8, tail);
    }
    NonNull::new(start as *mut u8)
}

/// Gives `len` bytes at `ptr` back to the kernel: a whole mapping made by
/// [`map`], or page-aligned ends of one that nothing refers to.
fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: callers pass a range of a mapping made here that no live
    // reference points into (a dropped `Mapping`, or the ends that
    // `map_aligned` cut off before handing the rest out). A failure would
    // only leak the range.
    unsafe {
        libc::munmap(ptr.cast(), len);
    }
}

/// Asks for huge pages behind `m` (a hint: contents and validity of the
/// memory do not change, and a kernel without them ignores it).
fn advise_huge_pages(m: &Mapping) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the range is exactly the mapping `m` owns; MADV_HUGEPAGE
    // changes only how the kernel backs those pages, never what they hold,
    // so no reference to them is affected. Failure leaves them as they
    // were, which is why the result is ignored.
    unsafe {
        libc::madvise(m.ptr.as_ptr().cast(), m.len, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = m;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_zeroed_writable_and_huge_ones_aligned() {
        for len in [4096, 100_000, HUGE_PAGE, 3 * HUGE_PAGE] {
            let mut m = Mapping::new(len).expect("mapped");
            assert_eq!(m.len(), len);
            assert!(m.iter().all(|&b| b == 0));
            m[0] = 1;
            m[len - 1] = 2;
            assert_eq!((m[0], m[len - 1]), (1, 2));
            if len % HUGE_PAGE == 0 {
                assert_eq!(m.as_ptr() as usize % HUGE_PAGE, 0, "{len}");
            }
        }
        assert!(Mapping::new(0).is_none());
    }
}
