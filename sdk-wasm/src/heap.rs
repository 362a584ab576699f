//! The wasm's allocator: power-of-two size classes, each with a list of freed blocks, carved
//! from memory the module grows 64 KiB pages at a time.
//!
//! Why not a general-purpose allocator: the SDK holds little (identifiers, one page's strings,
//! an outbox of at most 512 KB) and makes the same few sizes again and again, so a freed block
//! is soon wanted again at the same size; a page open for hours reaches a steady state where
//! every allocation reuses a block. The cost is up to twice the bytes asked for (a 33-byte
//! string takes 64) and memory that one class freed is not lent to another, against about a
//! kilobyte less wasm than talc's binned boundary tags (which the SDK used before).
//! A `realloc` that stays within its class keeps its block.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

/// The smallest block: room for the free list's link and for most short strings.
const MIN_CLASS: u32 = 4;
/// Blocks are aligned to their size up to this, more only on request (see [`Heap::alloc`]).
const MAX_ALIGN: usize = 16;
const PAGE: usize = 65_536;

/// Free lists and the bump region, over a way to grow memory.
pub struct Classes<G> {
    /// The first freed block of each class (0 for none); each freed block holds the next.
    free: [usize; 32],
    /// Memory between `top` and `end` is not yet carved.
    top: usize,
    end: usize,
    grow: G,
}

/// Grows memory by `pages` of 64 KiB: the address where they start, or `None`.
pub trait Grow {
    fn grow(&mut self, pages: usize) -> Option<usize>;
}

impl<G: Grow> Classes<G> {
    pub const fn new(grow: G) -> Self {
        Classes {
            free: [0; 32],
            top: 0,
            end: 0,
            grow,
        }
    }

    fn class(layout: Layout) -> u32 {
        Self::class_of(layout.size(), layout.align())
    }

    fn class_of(size: usize, align: usize) -> u32 {
        let size = size.max(align).max(1 << MIN_CLASS);
        usize::BITS - (size - 1).leading_zeros()
    }

    /// A block for `layout`, or 0 when memory cannot grow.
    ///
    /// # Safety
    /// The caller gives the block back with [`Classes::dealloc`] and the same layout's class.
    pub unsafe fn alloc(&mut self, layout: Layout) -> usize {
        let class = Self::class(layout);
        let Some(head) = self.free.get_mut(class as usize) else {
            return 0;
        };
        // A freed block is aligned to its size up to MAX_ALIGN; a stricter request bumps.
        if *head != 0 && layout.align() <= MAX_ALIGN {
            let block = *head;
            *head = unsafe { *(block as *const usize) };
            return block;
        }
        let size = 1usize << class;
        let align = size.min(MAX_ALIGN).max(layout.align());
        loop {
            let at = (self.top + align - 1) & !(align - 1);
            if at + size <= self.end {
                self.top = at + size;
                return at;
            }
            let pages = (at + size - self.end).div_ceil(PAGE);
            let Some(start) = self.grow.grow(pages) else {
                return 0;
            };
            if start != self.end {
                // The first growth (or memory grown by someone else): carve from there on
                // (the next turn grows again if the block does not fit).
                self.top = start;
            }
            self.end = start + pages * PAGE;
        }
    }

    /// # Safety
    /// `block` came from [`Classes::alloc`] with a layout of the same class.
    pub unsafe fn dealloc(&mut self, block: usize, layout: Layout) {
        if let Some(head) = self.free.get_mut(Self::class(layout) as usize) {
            unsafe { *(block as *mut usize) = *head };
            *head = block;
        }
    }

    /// True when a block of `layout` also holds `new_size` bytes (the same class).
    pub fn fits(layout: Layout, new_size: usize) -> bool {
        Self::class_of(new_size, layout.align()) == Self::class(layout)
    }
}

/// The global allocator over [`Classes`] (the wasm runs on one thread).
pub struct Heap<G>(pub UnsafeCell<Classes<G>>);

// SAFETY: the wasm is built without atomics: one thread.
unsafe impl<G> Sync for Heap<G> {}

unsafe impl<G: Grow> GlobalAlloc for Heap<G> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).alloc(layout) as *mut u8 }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).dealloc(ptr as usize, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Classes::<G>::fits(layout, new_size) {
            return ptr;
        }
        // SAFETY: `GlobalAlloc::realloc`'s caller makes `new_size` a valid size for this
        // alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// `memory.grow` on the wasm's memory.
#[cfg(target_arch = "wasm32")]
pub struct WasmMemory;

#[cfg(target_arch = "wasm32")]
impl Grow for WasmMemory {
    fn grow(&mut self, pages: usize) -> Option<usize> {
        let before = core::arch::wasm32::memory_grow(0, pages);
        (before != usize::MAX).then(|| before * PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory as a count of pages handed out from address `base`, up to `limit` pages.
    struct Pages {
        base: usize,
        used: usize,
        limit: usize,
    }

    impl Grow for Pages {
        fn grow(&mut self, pages: usize) -> Option<usize> {
            if self.used + pages > self.limit {
                return None;
            }
            let at = self.base + self.used * PAGE;
            self.used += pages;
            Some(at)
        }
    }

    fn heap(limit: usize) -> Classes<Pages> {
        Classes::new(Pages {
            base: 1 << 20,
            used: 0,
            limit,
        })
    }

    fn l(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    // The tests only compute addresses: blocks are never written, except through dealloc's
    // link, so they run on real memory of their own (a leaked buffer as the "pages").
    fn real(limit: usize) -> Classes<Pages> {
        let buf: &'static mut [u8] = Vec::leak(vec![0u8; (limit + 1) * PAGE]);
        let base = (buf.as_mut_ptr() as usize + PAGE - 1) & !(PAGE - 1);
        Classes::new(Pages {
            base,
            used: 0,
            limit,
        })
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_inside_the_grown_pages() {
        let mut h = heap(64);
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        for (size, align) in [
            (1, 1),
            (24, 8),
            (33, 1),
            (7, 4),
            (100, 8),
            (70_000, 8),
            (5, 32),
        ] {
            let b = unsafe { h.alloc(l(size, align)) };
            assert_ne!(b, 0);
            assert_eq!(b % align, 0, "{size} B aligned to {align}");
            let class = 1 << Classes::<Pages>::class(l(size, align));
            assert!(class >= size);
            assert!(b >= 1 << 20 && b + class <= (1 << 20) + h.grow.used * PAGE);
            for &(o, len) in &blocks {
                assert!(b + class <= o || o + len <= b, "overlap");
            }
            blocks.push((b, class));
        }
    }

    #[test]
    fn a_freed_block_is_reused_by_its_class_only() {
        let mut h = real(4);
        let a = unsafe { h.alloc(l(40, 8)) };
        let b = unsafe { h.alloc(l(40, 8)) };
        unsafe { h.dealloc(a, l(40, 8)) };
        assert_ne!(unsafe { h.alloc(l(200, 8)) }, a, "another class");
        assert_eq!(unsafe { h.alloc(l(60, 8)) }, a, "same class (64 B)");
        unsafe {
            h.dealloc(b, l(40, 8));
            h.dealloc(a, l(60, 8));
        }
        // Last freed, first reused.
        assert_eq!(unsafe { h.alloc(l(33, 1)) }, a);
        assert_eq!(unsafe { h.alloc(l(64, 8)) }, b);
    }

    #[test]
    fn a_steady_churn_stops_growing_memory() {
        let mut h = real(16);
        let sizes = [36, 120, 700, 1_500, 9_000, 36];
        for round in 0..1_000 {
            let live: Vec<(usize, Layout)> = sizes
                .iter()
                .map(|&s| {
                    let layout = l(s + round % 7, 8);
                    (unsafe { h.alloc(layout) }, layout)
                })
                .collect();
            for (b, layout) in live {
                assert_ne!(b, 0);
                unsafe { h.dealloc(b, layout) };
            }
        }
        assert!(h.grow.used <= 1, "{} pages", h.grow.used);
    }

    #[test]
    fn out_of_memory_is_a_null_block() {
        let mut h = heap(3);
        assert_ne!(unsafe { h.alloc(l(100_000, 8)) }, 0);
        assert_eq!(unsafe { h.alloc(l(100_000, 8)) }, 0);
        assert_ne!(unsafe { h.alloc(l(10, 8)) }, 0, "what is left still serves");
    }

    #[test]
    fn growth_within_a_class_keeps_the_block() {
        assert!(Classes::<Pages>::fits(l(40, 8), 64));
        assert!(!Classes::<Pages>::fits(l(40, 8), 65));
        assert!(Classes::<Pages>::fits(l(3, 1), 16), "16 B is the smallest");
    }
}
