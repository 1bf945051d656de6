//! The connector's memory allocator: small blocks from per-size free
//! lists, everything else from the system allocator.
//!
//! A connector call allocates one block for each string the host hands it
//! (a user record is some twenty) and frees them all when the call ends.
//! The system allocator (wasi-libc's dlmalloc) spends a few hundred
//! instructions on each allocation and free, splitting and merging chunks;
//! here both are a handful: a block is taken from, or put back on, the
//! front of the list of its size.
//!
//! Invariants:
//! - a small block is `SIZE_STEP * (class + 1)` bytes, where `class` is
//!   what [`class_of`] gives its layout, and carries no header: it goes
//!   back to the list that the layout it is freed with names;
//! - a block is never on a list of blocks larger than itself. Rust frees
//!   with the layout it allocated with; the canonical ABI frees a string
//!   or list the connector returned by its length, which may be less than
//!   its capacity. Either way the layout freed with is no larger than the
//!   block, so its class is no larger than the block's: a block freed by
//!   its length joins a list of smaller blocks, and a block the system
//!   allocator made may join one;
//! - every block on a list starts on a `SIZE_STEP` boundary: blocks are
//!   cut from `SIZE_STEP`-aligned slabs in multiples of `SIZE_STEP`, and a
//!   block freed to a list that is not so aligned can only have come from
//!   the system allocator, so it goes back there. Any layout aligned to at
//!   most `SIZE_STEP` is served;
//! - a free block holds the address of the next free block of its size in
//!   its first bytes, and nothing else reads it;
//! - memory a small block used is kept for blocks of its size and not
//!   given back: a connector's heap is as large as its largest moment, as
//!   with any allocator that does not return memory to the system;
//! - the state is not shared between threads. It is the global allocator
//!   only on WebAssembly without threads (`target_feature = "atomics"`
//!   off), where there is one thread.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Sizes of small blocks are multiples of this; it is also their alignment.
const SIZE_STEP: usize = 16;
/// How many sizes are kept: blocks of up to `SIZE_STEP * CLASSES` bytes.
const CLASSES: usize = 64;
/// Small blocks are cut from slabs of this size.
const SLAB_BYTES: usize = 64 * 1024;

/// Free lists over a backing allocator `B`, which must free a block by its
/// address alone, as the system allocator does: a block it made may come
/// back to it with a shorter length than it was made with.
pub struct SizeClasses<B> {
    backing: B,
    state: UnsafeCell<State>,
}

struct State {
    /// The first free block of each size, or null.
    free: [*mut u8; CLASSES],
    /// The part of the current slab no block has been cut from.
    slab_next: *mut u8,
    slab_end: *mut u8,
}

/// The size class of `layout`, if it is served from the free lists.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > SIZE_STEP || layout.size() == 0 {
        return None;
    }
    let class = layout.size().div_ceil(SIZE_STEP) - 1;
    (class < CLASSES).then_some(class)
}

impl<B> SizeClasses<B> {
    pub const fn new(backing: B) -> Self {
        SizeClasses {
            backing,
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                slab_next: ptr::null_mut(),
                slab_end: ptr::null_mut(),
            }),
        }
    }
}

impl<B: GlobalAlloc> SizeClasses<B> {
    /// A block of `class`: the first free one, else one cut from the slab
    /// (a new slab when this one is used up). Null when memory is out.
    ///
    /// # Safety
    /// No other call on this allocator may be running.
    unsafe fn take(&self, class: usize) -> *mut u8 {
        // SAFETY: the caller guarantees this is the only access to the state.
        let state = unsafe { &mut *self.state.get() };
        let head = state.free[class];
        if !head.is_null() {
            // SAFETY: a free block holds the next free block's address in
            // its first bytes, and blocks are aligned for a pointer.
            state.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = SIZE_STEP * (class + 1);
        if (state.slab_end as usize) - (state.slab_next as usize) < size {
            // What is left of the old slab is smaller than this block; it
            // stays unused.
            // SAFETY: the layout has a non-zero size.
            let slab = unsafe {
                self.backing
                    .alloc(Layout::from_size_align_unchecked(SLAB_BYTES, SIZE_STEP))
            };
            if slab.is_null() {
                return ptr::null_mut();
            }
            state.slab_next = slab;
            // SAFETY: the slab is `SLAB_BYTES` long.
            state.slab_end = unsafe { slab.add(SLAB_BYTES) };
        }
        let block = state.slab_next;
        // SAFETY: at least `size` bytes of the slab are left.
        state.slab_next = unsafe { block.add(size) };
        block
    }

    /// Puts a block of `class` back on its list.
    ///
    /// # Safety
    /// `block` is at least as large as `class`'s blocks, aligned to
    /// `SIZE_STEP`, and no longer used; no other call on this allocator may
    /// be running.
    unsafe fn give_back(&self, block: *mut u8, class: usize) {
        // SAFETY: the caller guarantees this is the only access to the state.
        let state = unsafe { &mut *self.state.get() };
        // SAFETY: the block is at least `SIZE_STEP` bytes and aligned for a
        // pointer, and no longer used by anyone else.
        unsafe { block.cast::<*mut u8>().write(state.free[class]) };
        state.free[class] = block;
    }
}

// SAFETY: every block handed out is `SIZE_STEP`-aligned and at least as
// large as its layout asks (see the module's invariants); a layout the
// free lists do not serve goes to the backing allocator, and each block
// goes back to where it came from because its layout names the same class.
// Callers of `GlobalAlloc` on this type must not call it from two threads
// at once, which the `Sync` implementation below limits to targets without
// threads.
unsafe impl<B: GlobalAlloc> GlobalAlloc for SizeClasses<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            // SAFETY: one thread (see `Sync` below).
            Some(class) => unsafe { self.take(class) },
            // SAFETY: the caller's layout, passed on.
            None => unsafe { self.backing.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            // A block of this allocator is always aligned to `SIZE_STEP`; one
            // that is not came from the backing allocator and was freed by a
            // length shorter than it was made with (see the module's
            // invariants), so it goes back to where it came from.
            // SAFETY: the backing allocator made it, with this alignment and
            // at least this size; the system allocator frees by address.
            Some(_) if !(block as usize).is_multiple_of(SIZE_STEP) => unsafe {
                self.backing.dealloc(block, layout)
            },
            // SAFETY: allocated with a layout of this class or a larger one,
            // so the block holds this class's size.
            Some(class) => unsafe { self.give_back(block, class) },
            // SAFETY: no block of this allocator is freed with a layout
            // larger than the one it was made with, so the backing allocator
            // made this one.
            None => unsafe { self.backing.dealloc(block, layout) },
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc` requires a valid layout for the new
        // size, with the old alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // The block is already large enough.
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: both with the backing allocator, which this passes on.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: the new layout has a non-zero size (the caller's
                // contract), and the copy is of what both blocks hold.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

// SAFETY: on WebAssembly without the `atomics` feature there is one thread,
// so no two calls ever run at once. Elsewhere the type is not `Sync` and
// cannot be a global allocator.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<B: GlobalAlloc> Sync for SizeClasses<B> {}

#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: SizeClasses<std::alloc::System> = SizeClasses::new(std::alloc::System);

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    struct Live {
        block: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn check(live: &Live) {
        assert_eq!(live.block as usize % live.layout.align(), 0);
        // SAFETY: the block is live and `layout.size()` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(live.block, live.layout.size()) };
        assert!(
            bytes.iter().all(|&byte| byte == live.fill),
            "a block of {:?} was written by someone else",
            live.layout
        );
    }

    /// Blocks of every size, small and large, allocated, grown, shrunk and
    /// freed (some by a shorter length) in a pseudo-random order: each
    /// keeps what was written to it, so no two live blocks overlap, a freed
    /// block is handed out again only once it is free, and never for more
    /// than it holds.
    #[test]
    fn live_blocks_never_overlap_and_keep_their_contents() {
        let allocator = SizeClasses::new(System);
        let mut live: Vec<Live> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..50_000u32 {
            let roll = next();
            let fill = (step % 251) as u8;
            match roll % 4 {
                0 | 1 => {
                    let size = match roll % 7 {
                        0 => 1 + (roll >> 8) as usize % 4096,
                        _ => 1 + (roll >> 8) as usize % (SIZE_STEP * CLASSES + 32),
                    };
                    let align = [1, 2, 4, 8, 16, 32][(roll >> 40) as usize % 6];
                    let layout = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: a non-zero size.
                    let block = unsafe { allocator.alloc(layout) };
                    assert!(!block.is_null());
                    // SAFETY: the block is `size` bytes long.
                    unsafe { block.write_bytes(fill, size) };
                    live.push(Live {
                        block,
                        layout,
                        fill,
                    });
                }
                2 if !live.is_empty() => {
                    let index = (roll >> 8) as usize % live.len();
                    let entry = live.swap_remove(index);
                    check(&entry);
                    // Every third block is freed as the canonical ABI frees
                    // what a connector returned: by a length that may be
                    // shorter than the block.
                    let size = entry.layout.size();
                    let freed = match roll % 3 {
                        0 => 1 + (roll >> 16) as usize % size,
                        _ => size,
                    };
                    let layout = Layout::from_size_align(freed, entry.layout.align()).unwrap();
                    // SAFETY: allocated by `allocator` with a layout at
                    // least this large and of this alignment.
                    unsafe { allocator.dealloc(entry.block, layout) };
                }
                3 if !live.is_empty() => {
                    let index = (roll >> 8) as usize % live.len();
                    let entry = &mut live[index];
                    check(entry);
                    let new_size = 1 + (roll >> 24) as usize % (SIZE_STEP * CLASSES * 2);
                    // SAFETY: allocated by `allocator` with this layout; a
                    // non-zero size.
                    let moved = unsafe { allocator.realloc(entry.block, entry.layout, new_size) };
                    assert!(!moved.is_null());
                    let kept = entry.layout.size().min(new_size);
                    // SAFETY: `moved` is `new_size` bytes long.
                    let bytes = unsafe { std::slice::from_raw_parts(moved, kept) };
                    assert!(bytes.iter().all(|&byte| byte == entry.fill));
                    // SAFETY: as above.
                    unsafe { moved.write_bytes(fill, new_size) };
                    entry.block = moved;
                    entry.layout = Layout::from_size_align(new_size, entry.layout.align()).unwrap();
                    entry.fill = fill;
                }
                _ => {}
            }
            if step % 1_000 == 0 {
                live.iter().for_each(check);
            }
        }
        for entry in live {
            check(&entry);
            // SAFETY: allocated by `allocator` with this layout.
            unsafe { allocator.dealloc(entry.block, entry.layout) };
        }
    }

    #[test]
    fn a_freed_block_is_the_next_one_of_its_size() {
        let allocator = SizeClasses::new(System);
        let layout = Layout::from_size_align(24, 8).unwrap();
        // SAFETY: non-zero sizes; each block is freed with its own layout.
        unsafe {
            let first = allocator.alloc(layout);
            let second = allocator.alloc(layout);
            assert_ne!(first, second);
            allocator.dealloc(first, layout);
            // 17 to 32 bytes share a class.
            assert_eq!(
                allocator.alloc(Layout::from_size_align(32, 16).unwrap()),
                first
            );
            allocator.dealloc(second, layout);
            allocator.dealloc(first, Layout::from_size_align(32, 16).unwrap());
        }
    }

    #[test]
    fn classes_cover_small_layouts_of_modest_alignment_only() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 16), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(SIZE_STEP * CLASSES, 8), Some(CLASSES - 1));
        assert_eq!(class(SIZE_STEP * CLASSES + 1, 8), None);
        assert_eq!(class(8, 32), None);
        assert_eq!(class(0, 1), None);
    }
}
