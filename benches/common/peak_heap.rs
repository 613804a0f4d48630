//! A global allocator that counts the bytes the program holds and the peak
//! since the last reset, so that the benches can report the memory a
//! workload needs (heap only, without the code and the stack). Shared by
//! the benches through `#[path]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The system allocator, counting.
pub struct PeakHeap;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl PeakHeap {
    /// Starts a new measurement: the peak becomes what is held now.
    pub fn reset() {
        PEAK.store(CURRENT.load(Relaxed), Relaxed);
    }

    /// Bytes held now.
    pub fn current() -> usize {
        CURRENT.load(Relaxed)
    }

    /// The most bytes held at once since the last [`PeakHeap::reset`].
    pub fn peak() -> usize {
        PEAK.load(Relaxed)
    }

    /// The peak heap growth over what was held before `f` ran, and `f`'s result.
    pub fn measure<T>(f: impl FnOnce() -> T) -> (usize, T) {
        let before = Self::current();
        Self::reset();
        let result = f();
        (Self::peak() - before, result)
    }
}

fn grow(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call forwards to the system allocator unchanged; the counters
// are only statistics.
unsafe impl GlobalAlloc for PeakHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as if old and new were both held for a moment, which they
        // are when the block moves.
        grow(new_size);
        CURRENT.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
