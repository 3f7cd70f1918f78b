//! The allocator: the system's, but for the allocations under 1 MiB a
//! thread makes inside [`region`], which are carved from large chunks and
//! never freed. Reading a 20,000-service manifest makes about 120,000 of
//! them (names, paths, image builds), all kept until the process ends;
//! glibc spent about 200 instructions on each, and a 16-byte header (see
//! BENCHMARKS.md, thirteenth session). Here each is a pointer bump, and
//! the thread's last block grows where it is.
//!
//! Only a command that runs once and exits [`enable`]s regions: a server
//! reads a manifest per request, and would keep every one.
//!
//! Such a command also maps its chunks and its large blocks (lists of
//! every service or entry) itself, asking for huge pages: on the virtual
//! machines CI runs on, the first write to each 4 KiB page cost about
//! 1.6 µs, and a 20,000-service run wrote about 4,500 of them, a fifth of
//! its time. A 2 MiB page costs one fault and its zeroing (see
//! BENCHMARKS.md, fifteenth session). Where the kernel gives no huge
//! pages, the mappings are plain ones. Four large blocks given back are
//! kept mapped for the next of their length, whose pages are then not
//! zeroed again.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

/// Chunks are this large and aligned to it, so that the chunk a pointer
/// would belong to is found by masking: a huge page.
const CHUNK: usize = HUGE;

/// A huge page on x86-64 and (with 4 KiB pages) arm64.
const HUGE: usize = 2 << 20;

/// Blocks of at least this size get a mapping of their own, in whole
/// huge pages, once regions are on: under half of it wasted at most.
/// Smaller ones made inside a region come from its chunks: lists of a
/// part's services or of one step's results (hundreds of KB) took most
/// of a run's faults on the system's 4 KiB pages (see BENCHMARKS.md,
/// sixteenth session).
pub(crate) const LARGE: usize = 1 << 20;

/// Room for the chunks' addresses: 512 MiB of small allocations. A region
/// that would need more takes from the system.
const SLOTS: usize = 512;

/// Whether regions are on in this process.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether [`CHUNKS`] is full: regions then take from the system.
static FULL: AtomicBool = AtomicBool::new(false);

/// The start of every chunk handed out, in an open-addressed table: a
/// small allocation is freed to the system unless its chunk is here.
static CHUNKS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The start of every large block mapped here and not yet unmapped (0 in
/// a free slot): a large block is the system's unless it is here. Few
/// are alive at once, and they come and go rarely, so it is searched
/// from the start.
static LARGE_BLOCKS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// Large blocks given back and kept mapped, each for the next large block
/// of the same mapped length (0 in a free slot): its address, aligned to a
/// huge page, with its length in huge pages in the bits that alignment
/// leaves free. A plan's text is written a run of jobs at a time, each
/// run's room a large block: unmapped when written out and mapped again
/// for the next run, every run's pages were zeroed again by the kernel,
/// a tenth of a 20,000-service plan's time (see BENCHMARKS.md,
/// twenty-first session).
static SPARE_LARGE: [AtomicUsize; SPARES] = [const { AtomicUsize::new(0) }; SPARES];

/// How many large blocks are kept for reuse at most: the four runs a
/// plan holds at once (two written while two are made), so that at most
/// 16 MiB are held.
const SPARES: usize = 4;

/// The longest mapping kept for reuse.
const SPARE_MAX: usize = 2 * HUGE;

thread_local! {
    /// Whether this thread is inside [`region`].
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// The free part of this thread's chunk: `next..end`.
    static FREE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Turns regions on for the process: for a command that runs once and
/// exits, before it starts threads.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// The text last noted with [`note_kept`].
static KEPT_TEXT: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// A value dropped as usual, but not when regions are on (a command that
/// runs once, about to exit): freeing what `sync` holds at its end (the
/// repository's object cache, 400,000 paths, the manifest) was a tenth of
/// its time at 20,000 services, work the exit does at once.
pub struct Kept<T>(std::mem::ManuallyDrop<T>);

impl<T> Kept<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Kept<T> {
        Kept(std::mem::ManuallyDrop::new(value))
    }
}

impl<T> std::ops::Deref for Kept<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Kept<T> {
    fn drop(&mut self) {
        if !ENABLED.load(Relaxed) {
            // SAFETY: dropped once, here, and not used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
        }
    }
}

/// `value` for the rest of the process, when regions are on (a command
/// that runs once); given back otherwise.
pub fn leak<T>(value: T) -> Result<&'static T, T> {
    match ENABLED.load(Relaxed) {
        true => Ok(Box::leak(Box::new(value))),
        false => Err(value),
    }
}

/// Notes `text` (a manifest [`leak`]ed): what is read from it may then
/// refer to its pieces instead of copying them (see [`kept_text`]).
pub fn note_kept(text: &'static str) {
    *KEPT_TEXT.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
}

/// The text last noted with [`note_kept`], when `text` is it or a piece
/// of it: the same bytes, for the rest of the process.
pub fn kept_text(text: &str) -> Option<&'static str> {
    piece_of(
        KEPT_TEXT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?,
        text,
    )
}

/// `piece` as a piece of `kept`, when it is one (its bytes are among
/// `kept`'s).
pub fn piece_of(kept: &'static str, piece: &str) -> Option<&'static str> {
    let offset = (piece.as_ptr() as usize).checked_sub(kept.as_ptr() as usize)?;
    kept.get(offset..offset.checked_add(piece.len())?)
}

/// Runs `f` with this thread's small allocations taken from a region,
/// when regions are on: for data a command keeps for most of its run.
/// What is freed is not reused, so a command may read a manifest a few
/// times (`sync` reads up to three), not once per commit or request.
pub fn region<T>(f: impl FnOnce() -> T) -> T {
    match ENABLED.load(Relaxed) {
        true => with_inside(true, f),
        false => f(),
    }
}

/// Runs `f` with this thread's allocations taken from the heap, even
/// inside a [`region`]: for scratch lists a step frees when it is done,
/// which in a region would stay written and unused, and on the heap are
/// reused by what comes after (a plan's or report's run buffers).
pub fn outside<T>(f: impl FnOnce() -> T) -> T {
    with_inside(false, f)
}

/// Runs `f` with this thread inside a region or not, and as it was
/// before however `f` ends.
fn with_inside<T>(inside: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INSIDE.with(|inside| inside.set(self.0));
        }
    }
    let _restore = Restore(INSIDE.with(|was| was.replace(inside)));
    f()
}

/// Whether this thread is inside a [`region`] (with regions on): a
/// parallel step started here runs its other half in one too.
pub fn inside() -> bool {
    INSIDE.with(Cell::get) && ENABLED.load(Relaxed)
}

/// The system's allocator, with [`region`]s.
pub struct Arena;

/// Where a chunk's search in [`CHUNKS`] starts.
fn first_slot(chunk: usize) -> usize {
    ((chunk / CHUNK).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % SLOTS
}

/// Whether `ptr` is in a chunk of a region.
fn in_region(ptr: usize) -> bool {
    let chunk = ptr & !(CHUNK - 1);
    let mut slot = first_slot(chunk);
    for _ in 0..SLOTS {
        match CHUNKS[slot].load(Relaxed) {
            0 => return false,
            found if found == chunk => return true,
            _ => slot = (slot + 1) % SLOTS,
        }
    }
    false
}

/// Whether the block at `ptr` was handed out by a region: only one under
/// [`LARGE`] can be, and only once regions are on.
fn is_regions(layout: Layout, ptr: *mut u8) -> bool {
    layout.size() < LARGE && ENABLED.load(Relaxed) && in_region(ptr as usize)
}

/// Notes a new chunk; false when the table is full.
fn note_chunk(chunk: usize) -> bool {
    let mut slot = first_slot(chunk);
    for _ in 0..SLOTS {
        if CHUNKS[slot]
            .compare_exchange(0, chunk, Relaxed, Relaxed)
            .is_ok()
        {
            return true;
        }
        slot = (slot + 1) % SLOTS;
    }
    false
}

/// Notes a new large block in a free slot; false when the table is full.
fn note_large(block: *mut u8) -> bool {
    (LARGE_BLOCKS.iter())
        .any(|slot| (slot.compare_exchange(0, block as usize, Relaxed, Relaxed)).is_ok())
}

/// The slot of [`LARGE_BLOCKS`] holding the block at `ptr`, if any.
fn large_slot(ptr: *mut u8) -> Option<&'static AtomicUsize> {
    (LARGE_BLOCKS.iter()).find(|slot| slot.load(Relaxed) == ptr as usize)
}

/// Maps `len` bytes (a multiple of [`HUGE`]) aligned to a huge page, and
/// asks for huge pages there; null when there is no memory.
fn map_huge(len: usize) -> *mut u8 {
    // Mapped with a huge page to spare, then trimmed to the aligned part.
    let spare = len + HUGE;
    // SAFETY: a new private anonymous mapping, touching no other memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            spare,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let (raw, start) = (raw as usize, (raw as usize + HUGE - 1) & !(HUGE - 1));
    // SAFETY: both pieces are parts of the mapping just made, not handed
    // out; the aligned `len` bytes between them stay mapped.
    unsafe {
        if start > raw {
            libc::munmap(raw as *mut libc::c_void, start - raw);
        }
        if raw + spare > start + len {
            libc::munmap(
                (start + len) as *mut libc::c_void,
                raw + spare - start - len,
            );
        }
        #[cfg(target_os = "linux")]
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    start as *mut u8
}

/// The length of the mapping of a large block of `size` bytes.
fn mapped_len(size: usize) -> usize {
    (size + HUGE - 1) & !(HUGE - 1)
}

/// Whether a block of `layout` comes from this thread's chunk: one under
/// [`LARGE`] made inside a region (which only runs with regions on).
fn takes_region(layout: Layout) -> bool {
    layout.size() < LARGE && layout.align() <= 16 && INSIDE.with(Cell::get)
}

/// `size` rounded up to the 8 bytes every block in a chunk is a multiple of.
fn rounded(size: usize) -> usize {
    (size + 7) & !7
}

/// Whether a block of `size` bytes aligned to `align` gets a mapping of
/// its own: a large one, once regions are on.
fn takes_large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= HUGE && ENABLED.load(Relaxed)
}

/// A block of `layout` in a mapping of its own, when it [`takes_large`]
/// and the table has room; null otherwise (or with no memory). Zero when
/// `zeroed`: a fresh mapping; else one given back before, when one of its
/// length is kept (see [`SPARE_LARGE`]).
fn alloc_large(layout: Layout, zeroed: bool) -> *mut u8 {
    if !takes_large(layout.size(), layout.align()) {
        return std::ptr::null_mut();
    }
    let len = mapped_len(layout.size());
    let spare = match zeroed {
        true => std::ptr::null_mut(),
        false => take_from(&SPARE_LARGE, len),
    };
    let block = if spare.is_null() {
        map_huge(len)
    } else {
        spare
    };
    if !block.is_null() && !note_large(block) {
        // SAFETY: mapped above (or kept) with this length, not handed out.
        unsafe { libc::munmap(block.cast(), len) };
        return std::ptr::null_mut();
    }
    block
}

/// Whether the block at `ptr` of `size` bytes is a large one mapped here.
fn is_large(size: usize, ptr: *mut u8) -> bool {
    size >= LARGE && ENABLED.load(Relaxed) && large_slot(ptr).is_some()
}

/// Moves the large block at `ptr` of `size` bytes (one [`is_large`]) to
/// a mapping of `new_size` bytes, its pages moved rather than copied (the
/// lists `sync` and `init` grow); null, with the block unchanged, when the
/// kernel cannot.
///
/// # Safety
///
/// The block is not used after, unless null is returned.
#[cfg(target_os = "linux")]
unsafe fn remap_large(ptr: *mut u8, size: usize, new_size: usize) -> *mut u8 {
    // SAFETY: the block's own mapping, of this length.
    let moved = unsafe {
        libc::mremap(
            ptr.cast(),
            mapped_len(size),
            mapped_len(new_size),
            libc::MREMAP_MAYMOVE,
        )
    };
    if moved == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    // SAFETY: the new mapping, all of it this block's.
    unsafe { libc::madvise(moved, mapped_len(new_size), libc::MADV_HUGEPAGE) };
    if let Some(slot) = large_slot(ptr) {
        slot.store(moved as usize, Relaxed);
    }
    moved.cast()
}

/// Gives back the large block at `ptr` of `size` bytes, one
/// [`is_large`]: kept for reuse when there is room, else unmapped.
///
/// # Safety
///
/// The block is not used after.
unsafe fn free_large(size: usize, ptr: *mut u8) {
    if let Some(slot) = large_slot(ptr) {
        slot.store(0, Relaxed);
    }
    if keep_in(&SPARE_LARGE, ptr, mapped_len(size)) {
        return;
    }
    // SAFETY: the block's own mapping, which the caller no longer uses.
    unsafe { libc::munmap(ptr.cast(), mapped_len(size)) };
}

/// Keeps the mapping at `block` (aligned to a huge page) of `len` bytes
/// in a free slot of `slots`, for reuse; false when it is too long or no
/// slot is free.
fn keep_in(slots: &[AtomicUsize], block: *mut u8, len: usize) -> bool {
    let word = block as usize | (len / HUGE);
    // Released: whoever takes the block sees what was written to it
    // before as done.
    len <= SPARE_MAX
        && (slots.iter()).any(|slot| (slot.compare_exchange(0, word, Release, Relaxed)).is_ok())
}

/// A mapping of `len` bytes kept in `slots`, taken out of it; null when
/// there is none.
fn take_from(slots: &[AtomicUsize], len: usize) -> *mut u8 {
    if len > SPARE_MAX {
        return std::ptr::null_mut();
    }
    for slot in slots {
        let word = slot.load(Relaxed);
        if word != 0
            && word & (HUGE - 1) == len / HUGE
            && (slot.compare_exchange(word, 0, Acquire, Relaxed)).is_ok()
        {
            return (word & !(HUGE - 1)) as *mut u8;
        }
    }
    std::ptr::null_mut()
}

/// `layout` (under [`LARGE`], aligned to at most 16) from this thread's
/// chunk, or a new one (what is left of the old one stays unused); null
/// when there is no memory. A chunk's bytes are handed out once, so they
/// are zero.
fn bump(layout: Layout) -> *mut u8 {
    // Masks, not `next_multiple_of`: an alignment is a power of two, and
    // a division on every allocation cost more than the rest of it.
    let align = layout.align().max(8);
    let size = rounded(layout.size());
    let (next, end) = FREE.with(Cell::get);
    let start = (next + align - 1) & !(align - 1);
    if next != 0 && start + size <= end {
        FREE.with(|free| free.set((start + size, end)));
        return start as *mut u8;
    }
    if FULL.load(Relaxed) {
        // SAFETY: the caller's layout, of nonzero size.
        return unsafe { System.alloc(layout) };
    }
    let chunk = map_huge(CHUNK);
    if chunk.is_null() {
        return chunk;
    }
    if !note_chunk(chunk as usize) {
        FULL.store(true, Relaxed);
        // SAFETY: mapped just above with this length, and not handed out.
        unsafe { libc::munmap(chunk.cast(), CHUNK) };
        // SAFETY: the caller's layout, of nonzero size.
        return unsafe { System.alloc(layout) };
    }
    FREE.with(|free| free.set((chunk as usize + size, chunk as usize + CHUNK)));
    chunk
}

// SAFETY: every block comes from the system's allocator, from a chunk
// that is never freed, or from a large mapping of its own; a block in a
// chunk is handed out once (the thread's free part only moves forward)
// and never given back to the system; a large mapping is handed out again
// only once it was given back (kept in `SPARE_LARGE`, taken from there by
// one thread); and a block is given back to whichever it came from.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if takes_region(layout) {
            return bump(layout);
        }
        let block = alloc_large(layout, false);
        if !block.is_null() {
            return block;
        }
        // SAFETY: the caller's layout, of nonzero size.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if takes_region(layout) {
            let block = bump(layout);
            // A chunk's fresh bytes are zero; writing them would fault in
            // the pages of a large zeroed list at once.
            if !block.is_null() && !in_region(block as usize) {
                // SAFETY: the block holds `layout.size()` bytes.
                unsafe { std::ptr::write_bytes(block, 0, layout.size()) };
            }
            return block;
        }
        let block = alloc_large(layout, true);
        if !block.is_null() {
            return block;
        }
        // The system's zeroed memory: fresh pages are zero already, and
        // writing zeros would fault in every page of a large list at once.
        // SAFETY: the caller's layout, of nonzero size.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_regions(layout, ptr) {
            return;
        }
        if is_large(layout.size(), ptr) {
            // SAFETY: the caller gives the block up.
            return unsafe { free_large(layout.size(), ptr) };
        }
        // SAFETY: not a region's, so the system's, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let large = is_large(layout.size(), ptr);
        if large && new_size >= LARGE && mapped_len(new_size) == mapped_len(layout.size()) {
            return ptr;
        }
        #[cfg(target_os = "linux")]
        if large && new_size >= LARGE {
            // SAFETY: the block's own mapping, which the caller gives up.
            let moved = unsafe { remap_large(ptr, layout.size(), new_size) };
            if !moved.is_null() {
                return moved;
            }
        }
        let regions = is_regions(layout, ptr);
        if regions && new_size < LARGE {
            // This thread's last block grows where it is while its chunk
            // has room: a list pushed to, alone, is never copied. Another
            // thread's block never ends where this thread's free part
            // starts, which is past the start of its chunk.
            let (next, end) = FREE.with(Cell::get);
            let old_end = ptr as usize + rounded(layout.size());
            let new_end = ptr as usize + rounded(new_size);
            if old_end == next && new_end <= end {
                // A shrunk block keeps its bytes: the free part never
                // moves back.
                FREE.with(|free| free.set((new_end.max(next), end)));
                return ptr;
            }
        }
        if large || regions || takes_large(new_size, layout.align()) {
            // SAFETY: the caller's alignment with a nonzero size.
            let new =
                unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
            if !new.is_null() {
                // SAFETY: both blocks hold at least the smaller size, and
                // the new one was just handed out, so they do not overlap.
                unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
                // SAFETY: the caller gives the old block up; it was copied.
                unsafe { self.dealloc(ptr, layout) };
            }
            return new;
        }
        // SAFETY: not a region's, so the system's, with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inside a region blocks under [`LARGE`] come from chunks, zeroed
    /// ones untouched; the thread's last block grows where it is, another
    /// moves within the chunks, and one grown past [`LARGE`] gets a
    /// mapping of its own. Outside, the system serves.
    #[test]
    fn regions_take_blocks_under_large_from_chunks() {
        enable();
        let is_mapped = |ptr: *const u8| large_slot(ptr.cast_mut()).is_some();
        let (small, medium, grown, kept, zeroed) = region(|| {
            let small: Vec<u64> = (0..8).collect();
            let medium: Vec<u64> = (0..1_000).collect();
            let mut grown = String::from("a");
            let kept = grown.as_ptr();
            for _ in 0..1_000 {
                grown.push_str("bc");
            }
            let zeroed = vec![0u64; 50_000];
            (small, medium, grown, kept, zeroed)
        });
        for block in [small.as_ptr(), medium.as_ptr()] {
            assert!(in_region(block as usize));
        }
        assert_eq!(small, (0..8).collect::<Vec<u64>>());
        assert_eq!(medium.iter().sum::<u64>(), 499_500);
        assert_eq!(grown.as_ptr(), kept, "the last block grows in place");
        assert_eq!((grown.len(), &grown[..5]), (2_001, "abcbc"));
        assert!(in_region(zeroed.as_ptr() as usize));
        assert!(zeroed.iter().all(|&w| w == 0));
        let outside: Vec<u64> = (0..8).collect();
        assert!(!in_region(outside.as_ptr() as usize));
        // Not the last block: copied to another place in the chunks.
        let mut moved = region(|| {
            let mut moved = small;
            moved.extend(0..100);
            moved
        });
        assert!(in_region(moved.as_ptr() as usize));
        assert_eq!(moved[..10], [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        moved.resize(LARGE / 8, 3);
        assert!(is_mapped(moved.as_ptr().cast()));
        assert_eq!((moved[7], moved[LARGE / 8 - 1]), (7, 3));
    }

    /// Inside a region, `outside` takes blocks from the heap, and the
    /// region's blocks again once it returns (or panics); a heap block
    /// grown or freed inside the region stays on the heap.
    #[test]
    fn outside_a_region_blocks_come_from_the_heap() {
        enable();
        let (scratch, after, grown) = region(|| {
            let scratch: Vec<u64> = outside(|| (0..1_000).collect());
            assert!(inside(), "back in the region");
            let failed = std::panic::catch_unwind(|| outside(|| panic!("scratch")));
            assert!(
                failed.is_err() && inside(),
                "back in the region after a panic"
            );
            let after: Vec<u64> = (0..8).collect();
            let mut grown = outside(|| Vec::<u64>::with_capacity(4));
            grown.extend(0..1_000);
            (scratch, after, grown)
        });
        assert!(!in_region(scratch.as_ptr() as usize));
        assert!(in_region(after.as_ptr() as usize));
        assert!(!in_region(grown.as_ptr() as usize));
        assert_eq!(scratch.iter().sum::<u64>(), 499_500);
        assert_eq!(grown.iter().sum::<u64>(), 499_500);
    }

    /// Large blocks get huge-page-aligned mappings of their own, grow in
    /// place within them, are remapped when they outgrow them, and go
    /// back to the system when they shrink small; their bytes survive.
    #[test]
    fn large_blocks_are_mapped_apart() {
        enable();
        let is_mapped = |ptr: *const u8| large_slot(ptr.cast_mut()).is_some();
        let mut block: Vec<u8> = vec![7; LARGE];
        let first = block.as_ptr();
        assert!(is_mapped(first));
        assert_eq!(first as usize % HUGE, 0);
        // Doubled to 2 MiB: still the one huge page.
        block.push(8);
        assert_eq!(block.as_ptr(), first);
        // Outgrown: moved (or grown where it is), and noted where it is.
        block.resize(3 * LARGE, 9);
        assert!(is_mapped(block.as_ptr()));
        assert!(block.as_ptr() == first || !is_mapped(first));
        assert!(block[..LARGE].iter().all(|&b| b == 7));
        assert_eq!((block[LARGE], block[3 * LARGE - 1]), (8, 9));
        block.truncate(16);
        block.shrink_to_fit();
        assert!(!is_mapped(block.as_ptr()));
        assert_eq!(block, [7; 16]);
        let zeroed = vec![0u64; LARGE];
        assert!(is_mapped(zeroed.as_ptr().cast()));
        assert!(zeroed.iter().all(|&w| w == 0));
    }

    /// A large block given back is kept, by its length, for the next one
    /// of that length; one too long, or with no slot free, is not. A
    /// zeroed large block is zero even when a written one of its length
    /// was just given back.
    #[test]
    fn large_blocks_given_back_are_reused_by_length() {
        let slots: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
        let (one, two, three) = (map_huge(HUGE), map_huge(2 * HUGE), map_huge(HUGE));
        assert!(keep_in(&slots, one, HUGE));
        assert!(keep_in(&slots, two, 2 * HUGE));
        assert!(!keep_in(&slots, three, HUGE), "no slot is free");
        assert!(take_from(&slots, 4 * HUGE).is_null());
        assert_eq!(take_from(&slots, 2 * HUGE), two);
        assert_eq!(take_from(&slots, HUGE), one);
        assert!(take_from(&slots, HUGE).is_null(), "each is taken once");
        let long = map_huge(2 * SPARE_MAX);
        assert!(!keep_in(&slots, long, 2 * SPARE_MAX));
        for (block, len) in [
            (one, HUGE),
            (two, 2 * HUGE),
            (three, HUGE),
            (long, 2 * SPARE_MAX),
        ] {
            // SAFETY: mapped above with this length, not handed out.
            unsafe { libc::munmap(block.cast(), len) };
        }
        enable();
        for _ in 0..4 {
            drop(vec![0xffu8; LARGE]);
            let zeroed = vec![0u8; LARGE];
            assert!(zeroed.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn alignment_is_kept() {
        enable();
        region(|| {
            for align in [1, 2, 4, 8, 16] {
                let layout = Layout::from_size_align(3, align).unwrap();
                let block = bump(layout);
                assert_eq!(block as usize % align, 0);
            }
        });
    }
}
