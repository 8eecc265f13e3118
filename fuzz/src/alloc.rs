//! A global allocator that remembers the largest single allocation, so a decoder that trusts
//! a length from its input (and reserves 4 GiB for it) is caught even when the machine could
//! afford it. Install it with `#[global_allocator] static A: Counting = Counting;`.
#![allow(unsafe_code)] // a global allocator cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting.
#[derive(Debug)]
pub struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's obligations on `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Forgets the largest allocation seen so far.
pub fn reset_peak() {
    PEAK.store(0, Ordering::Relaxed);
}

/// The largest single allocation since [`reset_peak`] (0 unless [`Counting`] is installed).
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The bound every decoder case is held to: 1 MiB (serde's cautious preallocation) plus
/// twice its input.
pub fn decoder_bound(input_len: usize) -> usize {
    (1 << 20) + 2 * input_len
}
