//! The guest's allocator (feature `talc`, on by default; Wasm only).
//!
//! The host makes a fresh instance for every call and discards it after
//! (see [`crate::Provider`]), so memory still held when a call's answer is
//! ready is never reused: freeing it is wasted work. Once the answer is
//! built ([`call_done`]), frees are skipped: the dropping of the parsed
//! configuration and the host's release of the returned streams after it
//! has read them (the canonical ABI's post-return) cost nothing.
//!
//! Until then, Talc allocates: faster than Rust's default dlmalloc for a
//! provider's many small strings. Both together take ~10 % off a
//! 10,000-stream `static-list` listing (`cargo bench -p dss-e2e --bench
//! plugin`). Turn the feature off (`default-features = false`) to bring your
//! own `#[global_allocator]`.

#[cfg(all(
    feature = "talc",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
mod imp {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicBool, Ordering};

    static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

    /// Set when the call's answer is built: frees are skipped from then on.
    static DONE: AtomicBool = AtomicBool::new(false);

    struct Allocator;

    // SAFETY: every allocation comes from Talc; what is not freed stays
    // valid until the instance is discarded.
    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { TALC.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            unsafe { TALC.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if !DONE.load(Ordering::Relaxed) {
                unsafe { TALC.dealloc(ptr, layout) }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if !DONE.load(Ordering::Relaxed) {
                return unsafe { TALC.realloc(ptr, layout, new_size) };
            }
            // Moved to a new block; the old one is left.
            // SAFETY: `layout`'s alignment with a size the caller vouches for.
            let new =
                unsafe { TALC.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the smaller size.
                unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
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
        feature = "talc",
        target_family = "wasm",
        not(target_feature = "atomics")
    ))]
    imp::call_done();
}
