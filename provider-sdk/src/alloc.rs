//! The guest's allocator (feature `skip-final-frees`, on by default; Wasm
//! only): the standard one (dlmalloc), except that frees are skipped once
//! the call's answer is built ([`call_done`]).
//!
//! The host makes a fresh instance for every call and discards it after
//! (see [`crate::Provider`]), so memory freed at the end of a call would
//! never be reused: dropping the parsed configuration and the host's
//! release of the returned streams after it has read them (the canonical
//! ABI's post-return) are wasted work. Skipping them takes 6-8 % off a
//! 10,000-stream `static-list` listing (the old and new components run in
//! turn in one process). Talc, tried as the allocator as well, listed no
//! faster and doubled the cost of a fresh instance + `describe` (its first
//! allocation grows the memory).

#[cfg(all(
    feature = "skip-final-frees",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
mod imp {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set when the call's answer is built: frees are skipped from then on.
    static DONE: AtomicBool = AtomicBool::new(false);

    struct Allocator;

    // SAFETY: every allocation comes from `System`; what is not freed stays
    // valid until the instance is discarded.
    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if !DONE.load(Ordering::Relaxed) {
                unsafe { System.dealloc(ptr, layout) }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if !DONE.load(Ordering::Relaxed) {
                return unsafe { System.realloc(ptr, layout, new_size) };
            }
            // Moved to a new block; the old one is left.
            // SAFETY: `layout`'s alignment with a size the caller vouches for.
            let new = unsafe {
                System.alloc(Layout::from_size_align_unchecked(new_size, layout.align()))
            };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the smaller size.
                unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            }
            new
        }
    }

    #[global_allocator]
    static ALLOCATOR: Allocator = Allocator;

    pub fn call_done() {
        DONE.store(true, Ordering::Relaxed);
    }
}

/// Marks the call's answer as built: what is still allocated is left to the
/// end of the instance (a no-op natively, or with the feature off).
pub(crate) fn call_done() {
    #[cfg(all(
        feature = "skip-final-frees",
        target_family = "wasm",
        not(target_feature = "atomics")
    ))]
    imp::call_done();
}
