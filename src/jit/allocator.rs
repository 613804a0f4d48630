//! The JIT allocator: a malloc-like allocator of executable memory that
//! carves many functions out of a few large regions.
//!
//! # Structure
//!
//! Memory is reserved in *regions* (1 MiB by default; a new region is the
//! base size doubled once per region already mapped, up to 16 times the
//! base size or 64 MiB, and a request larger than that gets a region of its
//! own). A region is divided into *granules* (64 bytes by default) and a
//! bitmap records which granules are in use. An allocation is a first-fit run of free granules,
//! searched from a per-region hint (the lowest granule that may be free), so
//! a sequence of allocations is a bump pointer and freed gaps are reused.
//! All bookkeeping sits behind one `Mutex`; the critical section does no
//! system call in dual-mapping mode.
//!
//! A region whose last allocation is released is unmapped if another empty
//! region exists (one empty region is kept to avoid map/unmap ping-pong);
//! [`JitAllocator::trim`] unmaps all empty regions.
//!
//! # W^X modes
//!
//! - **Dual mapping** (default on Linux): each region is a memfd mapped twice,
//!   RW and RX. Code is written through the RW view and run through the RX
//!   view; publishing needs no system call and never changes the protection
//!   of a page that other functions are running on.
//! - **`mprotect` mode** (when `dual_mapping` is false or memfd mappings are
//!   unavailable): a region is one private mapping, and the granule is the
//!   page, so **every allocation owns whole pages** that no other allocation
//!   touches. That is what keeps concurrent use safe: a page is switched to
//!   RX only when its single owner publishes it, and switched back to RW only
//!   when it holds no live code and no writer (its code was released). A
//!   page holding live code is therefore never writable, and a page being
//!   written is never made executable under another writer. Protections
//!   change in batches: publishing is one `mprotect` over the allocation's
//!   whole page range, and [`JitAllocator::publish_batch`] merges adjacent
//!   allocations into one call; allocation prefers pages that are still
//!   writable, and when it must reuse released (RX) pages it switches them
//!   back together with up to 256 free RX neighbours on each side, so
//!   steady add/free churn costs about one `mprotect` per function. The
//!   price is memory: small functions take a page each.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::bitmap::Bitmap;
use super::error::JitError;
use super::memory::{self, Mapping, Protection, SyscallCounters};

/// The largest single allocation accepted (1 GiB).
pub const MAX_ALLOCATION_SIZE: usize = 1 << 30;

/// The largest region size accepted in [`JitAllocatorOptions::region_size`].
pub const MAX_REGION_SIZE: usize = 1 << 30;

/// Regions grow up to this many doublings of the base region size...
const MAX_GROWTH_SHIFT: u32 = 4;

/// ...but growth stops at this size (a larger base size is kept as is).
const MAX_GROWN_REGION_SIZE: usize = 64 << 20;

/// `mprotect` mode: when released RX pages are reused, up to this many free
/// RX pages on each side are switched back to RW in the same call.
const RW_BATCH_PAGES: usize = 256;

/// The byte freshly allocated memory is filled with: `int3`, so running
/// into bytes the caller did not write traps.
const FILL_BYTE: u8 = crate::x86::db::generated_opcodes::INT3;

/// Options of a [`JitAllocator`].
///
/// ```
/// use jitforge::jit::JitAllocatorOptions;
///
/// // Force the mprotect mode, with 4 MiB regions.
/// let options = JitAllocatorOptions {
///     dual_mapping: false,
///     region_size: 4 << 20,
///     ..JitAllocatorOptions::default()
/// };
/// assert_eq!(options.granularity, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitAllocatorOptions {
    /// Size of the first region in bytes (rounded up to whole pages; at most
    /// [`MAX_REGION_SIZE`]). Default 1 MiB.
    pub region_size: usize,
    /// Allocation granule and alignment in bytes in dual-mapping mode: a power
    /// of two from 16 to the page size. Default 64 (a cache line). In the
    /// `mprotect` mode the granule is always the page size.
    pub granularity: usize,
    /// Use dual mapping (memfd RW + RX views). Default true; false forces the
    /// `mprotect` mode. If dual mapping is not available the allocator falls
    /// back to the `mprotect` mode on its own.
    pub dual_mapping: bool,
}

impl Default for JitAllocatorOptions {
    fn default() -> Self {
        JitAllocatorOptions {
            region_size: 1 << 20,
            granularity: 64,
            dual_mapping: true,
        }
    }
}

/// A snapshot of an allocator's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitStats {
    /// Whether the allocator is in dual-mapping mode (false: `mprotect` mode).
    pub dual_mapping: bool,
    /// Regions currently mapped.
    pub regions: usize,
    /// Bytes reserved by the mapped regions.
    pub reserved_bytes: usize,
    /// Bytes handed out to live allocations (rounded up to granules).
    pub used_bytes: usize,
    /// Number of live allocations.
    pub allocations: usize,
    /// `mmap` calls made so far (two per region in dual-mapping mode).
    pub mmap_calls: u64,
    /// `munmap` calls made so far.
    pub munmap_calls: u64,
    /// `mprotect` calls made so far (always 0 in dual-mapping mode).
    pub mprotect_calls: u64,
    /// `memfd_create` calls made so far.
    pub memfd_calls: u64,
}

/// A block of JIT memory handed out by [`JitAllocator::allocate`].
///
/// The span is writable (through [`JitAllocator::writable`]) until it is
/// published with [`JitAllocator::publish`], and executable afterwards. It
/// must be given back with [`JitAllocator::release`]; dropping a span
/// without releasing it leaks its memory (safely) until the allocator is
/// dropped. The span's addresses are valid only while its allocator lives.
#[derive(Debug)]
#[must_use = "a JIT span leaks its memory unless it is released"]
pub struct JitSpan {
    block: Block,
    size: usize,
    allocator: u64,
    published: bool,
}

/// The allocator's record of one block: enough to free it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    /// Key of the region in `State::regions` (its RX address).
    region: usize,
    /// RX address of the block.
    rx: usize,
    /// RW address of the block (equal to `rx` in the `mprotect` mode).
    rw: usize,
    /// Size in bytes, a whole number of granules.
    len: usize,
}

impl Block {
    /// Whether the block lives in a dual mapping (separate RW and RX views).
    pub(crate) fn is_dual(&self) -> bool {
        self.rx != self.rw
    }

    /// The executable address as a pointer.
    pub(crate) fn rx_ptr(&self) -> *const u8 {
        self.rx as *const u8
    }
}

impl JitSpan {
    /// The executable address of the span (where the code will run).
    pub fn rx_address(&self) -> u64 {
        self.block.rx as u64
    }

    /// The executable address as a pointer.
    pub fn rx_ptr(&self) -> *const u8 {
        self.block.rx as *const u8
    }

    /// The size requested for the span in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size actually reserved (rounded up to whole granules).
    pub fn allocated_size(&self) -> usize {
        self.block.len
    }

    /// Whether the span has been published (is executable, no longer
    /// writable).
    pub fn is_published(&self) -> bool {
        self.published
    }

    pub(crate) fn block(&self) -> Block {
        self.block
    }
}

/// One mapped region and its granule bitmap.
#[derive(Debug)]
struct Region {
    mapping: Mapping,
    /// Granule size: the configured granularity, or the page size in the
    /// `mprotect` mode.
    granule: usize,
    /// Set bits are granules in use.
    used: Bitmap,
    /// `mprotect` mode only: set bits are pages that may be RX (published
    /// once and not made writable again since).
    maybe_rx: Bitmap,
    /// Number of free granules.
    free: usize,
    /// No granule below this index is free.
    hint: usize,
}

impl Region {
    fn is_empty(&self) -> bool {
        self.free == self.used.len()
    }

    /// Finds and marks `count` granules, returning the first index. With
    /// `avoid_rx` (`mprotect` mode), only pages that are still writable are
    /// considered.
    fn take(&mut self, count: usize, avoid_rx: bool) -> Option<usize> {
        if count > self.free {
            return None;
        }
        let union = avoid_rx && !self.mapping.is_dual();
        // No granule below the hint is free, so a free run at the hint is
        // the first fit: a sequence of allocations takes this path, one
        // word test instead of a search.
        let start = if self.used.is_clear_within_word(self.hint, count)
            && !(union && self.maybe_rx.any_in_range(self.hint, count))
        {
            self.hint
        } else if union {
            self.used
                .find_zero_run_in_union(&self.maybe_rx, count, self.hint)?
        } else {
            self.used.find_zero_run(count, self.hint)?
        };
        self.used.set_range(start, count);
        self.free -= count;
        if start == self.hint {
            self.hint = start + count;
        }
        Some(start)
    }

    /// Gives `count` granules from `start` back.
    fn give_back(&mut self, start: usize, count: usize) {
        debug_assert!(
            self.used
                .find_zero_run(1, start)
                .is_none_or(|i| i >= start + count)
        );
        self.used.clear_range(start, count);
        self.free += count;
        self.hint = self.hint.min(start);
    }
}

/// The state behind the allocator's mutex.
#[derive(Debug)]
struct State {
    /// Whether new regions are dual mapped.
    dual: bool,
    /// Regions by RX address.
    regions: BTreeMap<usize, Region>,
    used_bytes: usize,
    allocations: usize,
}

/// Source of unique allocator ids, so spans cannot be mixed up.
static NEXT_ALLOCATOR_ID: AtomicU64 = AtomicU64::new(1);

/// A thread-safe allocator of executable memory (see the
/// [module documentation](self) for its structure and W^X modes).
///
/// The low-level protocol is [`allocate`](Self::allocate), write through
/// [`writable`](Self::writable), [`publish`](Self::publish), run the code at
/// [`JitSpan::rx_address`], and finally [`release`](Self::release).
/// [`JitRuntime`](super::JitRuntime) wraps it in a safe handle type.
///
/// ```
/// use jitforge::jit::{JitAllocator, JitAllocatorOptions};
///
/// let allocator = JitAllocator::new(JitAllocatorOptions::default())?;
/// let mut span = allocator.allocate(6)?;
/// allocator.writable(&mut span)?.copy_from_slice(&[0xB8, 7, 0, 0, 0, 0xC3]);
/// allocator.publish(&mut span)?;
/// // SAFETY: the span holds `mov eax, 7; ret`, a complete C function, and
/// // the allocator outlives the call.
/// let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(span.rx_ptr()) };
/// assert_eq!(f(), 7);
/// allocator.release(span)?;
/// # Ok::<(), jitforge::jit::JitError>(())
/// ```
pub struct JitAllocator {
    id: u64,
    options: JitAllocatorOptions,
    page: usize,
    state: Mutex<State>,
    counters: Arc<SyscallCounters>,
}

impl fmt::Debug for JitAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitAllocator")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

impl JitAllocator {
    /// Creates an allocator. No memory is mapped until the first allocation.
    ///
    /// Fails with [`JitError::InvalidOptions`] if the region size is 0 or
    /// above [`MAX_REGION_SIZE`], or the granularity is not a power of two
    /// from 16 to the page size.
    pub fn new(options: JitAllocatorOptions) -> Result<JitAllocator, JitError> {
        let page = memory::page_size();
        if options.region_size == 0 {
            return Err(JitError::InvalidOptions("region_size must not be 0"));
        }
        if options.region_size > MAX_REGION_SIZE {
            return Err(JitError::InvalidOptions(
                "region_size must be at most 1 GiB",
            ));
        }
        if !options.granularity.is_power_of_two()
            || options.granularity < 16
            || options.granularity > page
        {
            return Err(JitError::InvalidOptions(
                "granularity must be a power of two from 16 to the page size",
            ));
        }
        let options = JitAllocatorOptions {
            region_size: options.region_size.next_multiple_of(page),
            ..options
        };
        Ok(JitAllocator {
            id: NEXT_ALLOCATOR_ID.fetch_add(1, Ordering::Relaxed),
            page,
            state: Mutex::new(State {
                dual: options.dual_mapping && memory::DUAL_MAPPING_PLATFORM,
                regions: BTreeMap::new(),
                used_bytes: 0,
                allocations: 0,
            }),
            options,
            counters: Arc::new(SyscallCounters::default()),
        })
    }

    /// The options in effect (region size rounded up to whole pages).
    pub fn options(&self) -> &JitAllocatorOptions {
        &self.options
    }

    /// Whether the allocator uses dual mapping (false: `mprotect` mode). May
    /// change from true to false when the first region is mapped and memfd
    /// mappings turn out to be unavailable.
    pub fn is_dual_mapped(&self) -> bool {
        self.lock().dual
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is kept consistent at every point where code could
        // panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `size` bytes of JIT memory, aligned to the granularity (to
    /// the page in `mprotect` mode) and filled with `int3` (0xCC).
    ///
    /// Fails with [`JitError::ZeroSize`], [`JitError::TooLarge`] above
    /// [`MAX_ALLOCATION_SIZE`], or a [`JitError::Syscall`] if a new region
    /// cannot be mapped.
    pub fn allocate(&self, size: usize) -> Result<JitSpan, JitError> {
        self.allocate_filled_from(size, 0)
    }

    /// [`allocate`](Self::allocate) for a caller that writes the first
    /// `size` bytes itself before the span is published (a copy of the
    /// whole code): only the granule padding past them is filled with
    /// `int3`, so the code's bytes are not stored twice.
    pub(crate) fn allocate_to_overwrite(&self, size: usize) -> Result<JitSpan, JitError> {
        self.allocate_filled_from(size, size)
    }

    /// [`allocate`](Self::allocate), filling the block with `int3` from
    /// byte `fill_from` on (at most `size`).
    fn allocate_filled_from(&self, size: usize, fill_from: usize) -> Result<JitSpan, JitError> {
        if size == 0 {
            return Err(JitError::ZeroSize);
        }
        if size > MAX_ALLOCATION_SIZE {
            return Err(JitError::TooLarge {
                size,
                max: MAX_ALLOCATION_SIZE,
            });
        }
        let mut state = self.lock();
        // First fit among writable granules; in mprotect mode, pages that
        // hold released (still RX) code are reused only when no writable
        // page fits, and then switched back to RW in a batch (below).
        let mut found = Self::take_from_regions(&mut state, size, true);
        if found.is_none() && !state.dual {
            found = Self::take_from_regions(&mut state, size, false);
        }
        let block = match found {
            Some(block) => block,
            None => {
                let region = self.map_region(&mut state, size)?;
                let key = region.mapping.rx();
                let region = state.regions.entry(key).or_insert(region);
                Self::take_from_region(key, region, size, true).ok_or(JitError::TooLarge {
                    size,
                    max: MAX_ALLOCATION_SIZE,
                })?
            }
        };
        if !block.is_dual() {
            // mprotect mode: pages published by an earlier owner (whose code
            // is released) are made writable again, together with the free
            // RX pages around them (up to RW_BATCH_PAGES on each side) so
            // that the next allocations need no mprotect. All these pages
            // hold no live code and no writer, so nothing running is
            // affected.
            let region = state
                .regions
                .get_mut(&block.region)
                .expect("block's region");
            let first = (block.rx - region.mapping.rx()) / region.granule;
            let pages = block.len / region.granule;
            if region.maybe_rx.any_in_range(first, pages) {
                let reusable = |region: &Region, page: usize| {
                    !region.used.get(page) && region.maybe_rx.get(page)
                };
                let mut low = first;
                let low_limit = first.saturating_sub(RW_BATCH_PAGES);
                while low > low_limit && reusable(region, low - 1) {
                    low -= 1;
                }
                let mut high = first + pages;
                let high_limit = (high + RW_BATCH_PAGES).min(region.used.len());
                while high < high_limit && reusable(region, high) {
                    high += 1;
                }
                let address = region.mapping.rw() + low * region.granule;
                let len = (high - low) * region.granule;
                if let Err(error) =
                    memory::protect(address, len, Protection::ReadWrite, &self.counters)
                {
                    region.give_back(first, pages);
                    return Err(error);
                }
                region.maybe_rx.clear_range(low, high - low);
            }
        }
        state.used_bytes += block.len;
        state.allocations += 1;
        drop(state);

        // SAFETY: the block's RW view is `block.len` bytes of mapped,
        // writable memory (dual RW view, or pages just made/kept RW above)
        // that the bitmap now reserves for this block alone; `fill_from`
        // is at most `size`, which is at most `block.len`.
        unsafe {
            let skipped = fill_from.min(size);
            std::ptr::write_bytes(
                (block.rw as *mut u8).add(skipped),
                FILL_BYTE,
                block.len - skipped,
            );
        }
        Ok(JitSpan {
            block,
            size,
            allocator: self.id,
            published: false,
        })
    }

    /// First fit over the existing regions.
    fn take_from_regions(state: &mut State, size: usize, avoid_rx: bool) -> Option<Block> {
        state
            .regions
            .iter_mut()
            .find_map(|(&key, region)| Self::take_from_region(key, region, size, avoid_rx))
    }

    fn take_from_region(
        key: usize,
        region: &mut Region,
        size: usize,
        avoid_rx: bool,
    ) -> Option<Block> {
        let count = size.div_ceil(region.granule);
        let start = region.take(count, avoid_rx)?;
        let offset = start * region.granule;
        Some(Block {
            region: key,
            rx: region.mapping.rx() + offset,
            rw: region.mapping.rw() + offset,
            len: count * region.granule,
        })
    }

    /// Maps a new region big enough for `size` bytes, falling back to the
    /// `mprotect` mode if dual mapping is unavailable and no region exists.
    fn map_region(&self, state: &mut State, size: usize) -> Result<Region, JitError> {
        let shift = (state.regions.len() as u32).min(MAX_GROWTH_SHIFT);
        let grown = (self.options.region_size << shift)
            .min(self.options.region_size.max(MAX_GROWN_REGION_SIZE));
        let region_size = grown.max(size.next_multiple_of(self.page));
        let mapping = if state.dual {
            match memory::map_dual(region_size, &self.counters) {
                Ok(mapping) => mapping,
                Err(error)
                    if state.regions.is_empty() && memory::dual_mapping_unsupported(&error) =>
                {
                    state.dual = false;
                    memory::map_single(region_size, &self.counters)?
                }
                Err(error) => return Err(error),
            }
        } else {
            memory::map_single(region_size, &self.counters)?
        };
        let granule = if mapping.is_dual() {
            self.options.granularity
        } else {
            self.page
        };
        let granules = region_size / granule;
        Ok(Region {
            mapping,
            granule,
            used: Bitmap::new(granules),
            maybe_rx: Bitmap::new(if state.dual { 0 } else { granules }),
            free: granules,
            hint: 0,
        })
    }

    fn check_owner(&self, span: &JitSpan) -> Result<(), JitError> {
        if span.allocator == self.id {
            Ok(())
        } else {
            Err(JitError::ForeignSpan)
        }
    }

    /// The writable bytes of an unpublished span (exactly
    /// [`JitSpan::size`] bytes, initially `int3`).
    ///
    /// Fails with [`JitError::ForeignSpan`] for a span of another allocator
    /// and [`JitError::AlreadyPublished`] once the span is published.
    pub fn writable<'a>(&'a self, span: &'a mut JitSpan) -> Result<&'a mut [u8], JitError> {
        self.check_owner(span)?;
        if span.published {
            return Err(JitError::AlreadyPublished);
        }
        // SAFETY: the span was allocated by this allocator (checked above),
        // which is borrowed for 'a, so its region stays mapped; the bitmap
        // reserves the block for this span alone and `&mut span` makes this
        // the only view of it; an unpublished block's RW view is writable
        // (dual RW view, or pages made RW at allocation and not yet RX);
        // `size <= block.len`.
        Ok(unsafe { std::slice::from_raw_parts_mut(span.block.rw as *mut u8, span.size) })
    }

    /// Makes a span executable. In dual-mapping mode this is only a memory
    /// fence (the RX view already shows the bytes); in `mprotect` mode it is
    /// one `mprotect` of the span's pages. Publishing twice is a no-op.
    ///
    /// If it fails the span is still marked published (its pages may be in
    /// either state) and can only be released.
    pub fn publish(&self, span: &mut JitSpan) -> Result<(), JitError> {
        if span.block.is_dual() && span.allocator == self.id {
            // What `publish_batch` does for one dual-mapped span (no list
            // of blocks to protect, no lock): mark it and fence.
            span.published = true;
            std::sync::atomic::fence(Ordering::SeqCst);
            return Ok(());
        }
        self.publish_batch(std::slice::from_mut(span))
    }

    /// Publishes several spans at once. In `mprotect` mode, spans that are
    /// adjacent in memory (as consecutive allocations usually are) are made
    /// executable with a single `mprotect` call.
    ///
    /// Fails with [`JitError::ForeignSpan`] (before changing anything) if a
    /// span belongs to another allocator, or with the first failing
    /// `mprotect`; all spans are marked published either way.
    pub fn publish_batch(&self, spans: &mut [JitSpan]) -> Result<(), JitError> {
        spans.iter().try_for_each(|span| self.check_owner(span))?;
        // Dual-mapped blocks need no system call (and no lock); blocks of
        // the mprotect mode are collected.
        let mut blocks: Vec<Block> = Vec::new();
        for span in spans.iter_mut().filter(|span| !span.published) {
            span.published = true;
            if !span.block.is_dual() {
                blocks.push(span.block);
            }
        }
        // Make the bytes written through the RW view visible before the RX
        // address is handed to other threads.
        std::sync::atomic::fence(Ordering::SeqCst);
        if blocks.is_empty() {
            return Ok(());
        }
        // Mark the pages as possibly RX before changing them (a failed
        // mprotect may still have changed some).
        {
            let mut state = self.lock();
            for block in &blocks {
                let region = state
                    .regions
                    .get_mut(&block.region)
                    .expect("block's region");
                let first = (block.rx - region.mapping.rx()) / region.granule;
                region.maybe_rx.set_range(first, block.len / region.granule);
            }
        }
        blocks.sort_unstable_by_key(|block| block.rx);
        let mut result = Ok(());
        let mut run: Option<Block> = None;
        for block in blocks {
            match &mut run {
                Some(current)
                    if current.region == block.region && current.rx + current.len == block.rx =>
                {
                    current.len += block.len;
                }
                _ => {
                    if let Some(done) = run.replace(block) {
                        result = result.and(self.protect_rx(done));
                    }
                }
            }
        }
        if let Some(done) = run {
            result = result.and(self.protect_rx(done));
        }
        result
    }

    fn protect_rx(&self, block: Block) -> Result<(), JitError> {
        // The pages of the run belong to published spans only; none of them
        // is written any more.
        memory::protect(block.rx, block.len, Protection::ReadExecute, &self.counters)
    }

    /// Overwrites `bytes.len()` bytes of a span at `offset`, also after it
    /// was published (patching code in place; the code does not move).
    ///
    /// In dual-mapping mode the bytes are written through the RW view with
    /// no system call; in `mprotect` mode the span's own pages (which hold
    /// no other allocation) are made RW, written and made RX again.
    ///
    /// Fails with [`JitError::ForeignSpan`], [`JitError::OutOfBounds`] if the
    /// range does not lie within [`JitSpan::size`], or a
    /// [`JitError::Syscall`] if `mprotect` fails.
    ///
    /// # Safety
    ///
    /// While this call runs, no thread may execute, read or patch the
    /// span's code (in `mprotect` mode its pages are briefly not
    /// executable). Afterwards the code must still be valid for every way it
    /// is called.
    pub unsafe fn patch(
        &self,
        span: &JitSpan,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), JitError> {
        self.check_owner(span)?;
        // SAFETY: forwarded from this function's contract; the span belongs
        // to this allocator (checked above) and is alive.
        unsafe { self.patch_block(span.block, span.size, span.published, offset, bytes) }
    }

    /// See [`JitAllocator::patch`]; `block` must be a live block of this
    /// allocator of which `size` bytes were requested.
    pub(crate) unsafe fn patch_block(
        &self,
        block: Block,
        size: usize,
        published: bool,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), JitError> {
        if offset.checked_add(bytes.len()).is_none_or(|end| end > size) {
            return Err(JitError::OutOfBounds {
                offset,
                len: bytes.len(),
                size,
            });
        }
        let toggle = published && !block.is_dual();
        if toggle {
            // mprotect mode: the block owns its pages, no other code lives
            // there, and the caller guarantees nobody runs this code now.
            memory::protect(block.rw, block.len, Protection::ReadWrite, &self.counters)?;
        }
        // SAFETY: `offset + len <= size <= block.len`; the RW view of a live
        // block is mapped and writable (dual RW view, an unpublished block,
        // or pages just made RW above); the caller guarantees no concurrent
        // access to these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (block.rw as *mut u8).add(offset),
                bytes.len(),
            );
        }
        if toggle {
            memory::protect(block.rx, block.len, Protection::ReadExecute, &self.counters)?;
        } else if published {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
        Ok(())
    }

    /// Gives a span back. Its memory is reused by later allocations; the
    /// code must no longer be running or called.
    ///
    /// Fails with [`JitError::ForeignSpan`] for a span of another allocator.
    pub fn release(&self, span: JitSpan) -> Result<(), JitError> {
        self.check_owner(&span)?;
        self.free_block(span.block);
        Ok(())
    }

    /// Frees a block of this allocator; unmaps its region if it becomes
    /// empty while another empty region exists.
    pub(crate) fn free_block(&self, block: Block) {
        let mut state = self.lock();
        let Some(region) = state.regions.get_mut(&block.region) else {
            debug_assert!(false, "freeing a block of an unknown region");
            return;
        };
        let first = (block.rx - region.mapping.rx()) / region.granule;
        region.give_back(first, block.len / region.granule);
        let now_empty = region.is_empty();
        state.used_bytes -= block.len;
        state.allocations -= 1;
        let unmap = now_empty
            && state
                .regions
                .iter()
                .any(|(&key, other)| key != block.region && other.is_empty());
        let removed = if unmap {
            state.regions.remove(&block.region)
        } else {
            None
        };
        drop(state);
        // Unmap outside the lock.
        drop(removed);
    }

    /// Unmaps every region that holds no allocation. Returns how many were
    /// unmapped.
    pub fn trim(&self) -> usize {
        let mut state = self.lock();
        let empty: Vec<usize> = state
            .regions
            .iter()
            .filter(|(_, region)| region.is_empty())
            .map(|(&key, _)| key)
            .collect();
        let removed: Vec<Region> = empty
            .iter()
            .filter_map(|key| state.regions.remove(key))
            .collect();
        drop(state);
        removed.len()
    }

    /// A snapshot of the allocator's statistics.
    pub fn stats(&self) -> JitStats {
        let state = self.lock();
        JitStats {
            dual_mapping: state.dual,
            regions: state.regions.len(),
            reserved_bytes: state.regions.values().map(|r| r.mapping.size()).sum(),
            used_bytes: state.used_bytes,
            allocations: state.allocations,
            mmap_calls: self.counters.mmap.load(Ordering::Relaxed),
            munmap_calls: self.counters.munmap.load(Ordering::Relaxed),
            mprotect_calls: self.counters.mprotect.load(Ordering::Relaxed),
            memfd_calls: self.counters.memfd_create.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dual_mapping: bool) -> JitAllocatorOptions {
        JitAllocatorOptions {
            dual_mapping,
            ..JitAllocatorOptions::default()
        }
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            JitAllocatorOptions {
                region_size: 0,
                ..options(true)
            },
            JitAllocatorOptions {
                region_size: MAX_REGION_SIZE + 1,
                ..options(true)
            },
            JitAllocatorOptions {
                granularity: 48,
                ..options(true)
            },
            JitAllocatorOptions {
                granularity: 8,
                ..options(true)
            },
            JitAllocatorOptions {
                granularity: memory::page_size() * 2,
                ..options(true)
            },
        ] {
            assert!(matches!(
                JitAllocator::new(bad),
                Err(JitError::InvalidOptions(_))
            ));
        }
        let rounded = JitAllocator::new(JitAllocatorOptions {
            region_size: 1,
            ..options(true)
        })
        .unwrap();
        assert_eq!(rounded.options().region_size, memory::page_size());
    }

    #[test]
    fn size_errors() {
        let allocator = JitAllocator::new(options(true)).unwrap();
        assert_eq!(allocator.allocate(0).unwrap_err(), JitError::ZeroSize);
        for size in [MAX_ALLOCATION_SIZE + 1, usize::MAX / 2, usize::MAX] {
            assert_eq!(
                allocator.allocate(size).unwrap_err(),
                JitError::TooLarge {
                    size,
                    max: MAX_ALLOCATION_SIZE
                }
            );
        }
        assert_eq!(allocator.stats().mmap_calls, 0);
    }

    fn allocate_pattern(dual: bool) {
        let allocator = JitAllocator::new(options(dual)).unwrap();
        let granule = if allocator.is_dual_mapped() {
            64
        } else {
            memory::page_size()
        };
        let a = allocator.allocate(10).unwrap();
        let b = allocator.allocate(granule + 1).unwrap();
        let c = allocator.allocate(1).unwrap();
        assert_eq!(a.rx_address() as usize % granule, 0);
        assert_eq!(a.allocated_size(), granule);
        assert_eq!(b.allocated_size(), 2 * granule);
        assert_eq!(b.rx_address(), a.rx_address() + granule as u64);
        assert_eq!(c.rx_address(), b.rx_address() + 2 * granule as u64);
        let stats = allocator.stats();
        assert_eq!(stats.allocations, 3);
        assert_eq!(stats.used_bytes, 4 * granule);
        assert_eq!(stats.regions, 1);

        // Freeing `b` leaves a two-granule gap: a one-granule request takes
        // its start, a two-granule one no longer fits there.
        let b_address = b.rx_address();
        allocator.release(b).unwrap();
        let d = allocator.allocate(granule).unwrap();
        assert_eq!(d.rx_address(), b_address);
        let e = allocator.allocate(2 * granule).unwrap();
        assert_eq!(e.rx_address(), c.rx_address() + granule as u64);
        let f = allocator.allocate(3).unwrap();
        assert_eq!(f.rx_address(), b_address + granule as u64);
        for span in [a, c, d, e, f] {
            allocator.release(span).unwrap();
        }
        let stats = allocator.stats();
        assert_eq!((stats.allocations, stats.used_bytes), (0, 0));
        assert_eq!(stats.regions, 1, "one empty region is kept");
        assert_eq!(allocator.trim(), 1);
        assert_eq!(allocator.stats().regions, 0);
    }

    #[test]
    fn first_fit_and_gap_reuse_dual() {
        allocate_pattern(true);
    }

    #[test]
    fn first_fit_and_gap_reuse_mprotect() {
        allocate_pattern(false);
    }

    #[test]
    fn fresh_memory_is_int3_and_writable_until_published() {
        for dual in [true, false] {
            let allocator = JitAllocator::new(options(dual)).unwrap();
            let mut span = allocator.allocate(100).unwrap();
            let bytes = allocator.writable(&mut span).unwrap();
            assert_eq!(bytes.len(), 100);
            assert!(bytes.iter().all(|&b| b == 0xCC));
            bytes[0] = 0xC3;
            allocator.publish(&mut span).unwrap();
            assert!(span.is_published());
            assert_eq!(
                allocator.writable(&mut span).unwrap_err(),
                JitError::AlreadyPublished
            );
            // SAFETY: the span is published (readable) and the allocator alive.
            assert_eq!(unsafe { span.rx_ptr().read() }, 0xC3);
            allocator.release(span).unwrap();
        }
    }

    #[test]
    fn foreign_spans_are_rejected() {
        let one = JitAllocator::new(options(true)).unwrap();
        let two = JitAllocator::new(options(true)).unwrap();
        let mut span = one.allocate(8).unwrap();
        assert_eq!(two.writable(&mut span).unwrap_err(), JitError::ForeignSpan);
        assert_eq!(two.publish(&mut span).unwrap_err(), JitError::ForeignSpan);
        assert!(!span.is_published());
        let span = match two.release(span) {
            Err(JitError::ForeignSpan) => one.allocate(1).unwrap(),
            other => panic!("expected ForeignSpan, got {other:?}"),
        };
        one.release(span).unwrap();
        assert_eq!(one.stats().allocations, 1, "the first span leaked safely");
    }

    #[test]
    fn big_requests_get_their_own_region_and_regions_grow() {
        let allocator = JitAllocator::new(options(true)).unwrap();
        let base = allocator.options().region_size;
        let big = allocator.allocate(3 * base + 1).unwrap();
        assert_eq!(allocator.stats().regions, 1);
        assert!(allocator.stats().reserved_bytes > 3 * base);
        let small = allocator.allocate(base).unwrap();
        let stats = allocator.stats();
        assert_eq!(stats.regions, 2);
        // The second region is twice the base size.
        assert_eq!(
            stats.reserved_bytes,
            (3 * base + memory::page_size()) + 2 * base
        );
        allocator.release(big).unwrap();
        allocator.release(small).unwrap();
    }

    #[test]
    fn mprotect_mode_prefers_writable_pages_then_reuses_rx_pages() {
        let page = memory::page_size();
        let allocator = JitAllocator::new(JitAllocatorOptions {
            region_size: 2 * page,
            ..options(false)
        })
        .unwrap();
        assert!(!allocator.is_dual_mapped());
        let mprotects = || allocator.stats().mprotect_calls;
        let mut first = allocator.allocate(16).unwrap();
        assert_eq!(mprotects(), 0, "fresh pages are RW");
        allocator.publish(&mut first).unwrap();
        assert_eq!(mprotects(), 1);
        let address = first.rx_address();
        allocator.release(first).unwrap();
        // The released page is RX: the still-writable second page is used.
        let mut second = allocator.allocate(16).unwrap();
        assert_eq!(second.rx_address(), address + page as u64);
        allocator.publish(&mut second).unwrap();
        assert_eq!(mprotects(), 2);
        // No writable page left: the released page is switched back to RW.
        let mut third = allocator.allocate(16).unwrap();
        assert_eq!(third.rx_address(), address);
        assert_eq!(mprotects(), 3);
        allocator.writable(&mut third).unwrap()[0] = 0xC3;
        allocator.publish(&mut third).unwrap();
        assert_eq!(mprotects(), 4);
        assert_eq!(allocator.stats().regions, 1);
        allocator.release(second).unwrap();
        allocator.release(third).unwrap();
    }

    #[test]
    fn mprotect_mode_switches_released_pages_back_in_one_batch() {
        let page = memory::page_size();
        let allocator = JitAllocator::new(JitAllocatorOptions {
            region_size: 8 * page,
            ..options(false)
        })
        .unwrap();
        let mut spans: Vec<JitSpan> = (0..8).map(|_| allocator.allocate(1).unwrap()).collect();
        allocator.publish_batch(&mut spans).unwrap();
        assert_eq!(allocator.stats().mprotect_calls, 1);
        for span in spans {
            allocator.release(span).unwrap();
        }
        // One mprotect makes all eight released pages writable again ...
        let spans: Vec<JitSpan> = (0..8).map(|_| allocator.allocate(1).unwrap()).collect();
        let stats = allocator.stats();
        assert_eq!(stats.mprotect_calls, 2);
        assert_eq!((stats.regions, stats.mmap_calls), (1, 1));
        for span in spans {
            allocator.release(span).unwrap();
        }
    }

    #[test]
    fn publish_batch_merges_adjacent_spans() {
        let allocator = JitAllocator::new(options(false)).unwrap();
        let mut spans: Vec<JitSpan> = (0..10).map(|_| allocator.allocate(32).unwrap()).collect();
        for span in &mut spans {
            allocator.writable(span).unwrap()[0] = 0xC3;
        }
        allocator.publish_batch(&mut spans).unwrap();
        assert_eq!(allocator.stats().mprotect_calls, 1);
        assert!(spans.iter().all(JitSpan::is_published));
        for span in spans {
            allocator.release(span).unwrap();
        }
    }

    #[test]
    fn dual_mode_makes_no_mprotect_calls() {
        let allocator = JitAllocator::new(options(true)).unwrap();
        let mut spans = Vec::new();
        for _ in 0..1000 {
            let mut span = allocator.allocate(24).unwrap();
            allocator.writable(&mut span).unwrap()[0] = 0xC3;
            allocator.publish(&mut span).unwrap();
            spans.push(span);
        }
        let stats = allocator.stats();
        assert_eq!(stats.mprotect_calls, 0);
        if stats.dual_mapping {
            assert_eq!(stats.mmap_calls, 2);
            assert_eq!(stats.memfd_calls, 1);
        }
        for span in spans {
            allocator.release(span).unwrap();
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn falls_back_to_mprotect_when_dual_mapping_is_unavailable() {
        memory::SIMULATE_NO_DUAL_MAPPING.set(true);
        let allocator = JitAllocator::new(options(true)).unwrap();
        assert!(allocator.is_dual_mapped(), "decided at the first region");
        let result = allocator.allocate(6);
        memory::SIMULATE_NO_DUAL_MAPPING.set(false);
        let mut span = result.unwrap();
        assert!(!allocator.is_dual_mapped());
        allocator
            .writable(&mut span)
            .unwrap()
            .copy_from_slice(&[0xB8, 3, 0, 0, 0, 0xC3]);
        allocator.publish(&mut span).unwrap();
        // SAFETY: `mov eax, 3; ret` is a complete C function; the span is
        // published and the allocator alive.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(span.rx_ptr()) };
        assert_eq!(f(), 3);
        let stats = allocator.stats();
        assert!(!stats.dual_mapping);
        assert_eq!((stats.mmap_calls, stats.mprotect_calls), (1, 1));
        assert_eq!(span.rx_address() as usize % memory::page_size(), 0);
        allocator.release(span).unwrap();
    }

    #[test]
    fn random_allocations_never_overlap_and_keep_their_bytes() {
        for dual in [true, false] {
            let allocator = JitAllocator::new(JitAllocatorOptions {
                region_size: 64 << 10,
                ..options(dual)
            })
            .unwrap();
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut live: Vec<(JitSpan, u8)> = Vec::new();
            for step in 0..3000u32 {
                if live.is_empty() || next() % 3 != 0 {
                    let size = 1 + (next() % 700) as usize;
                    let mut span = allocator.allocate(size).unwrap();
                    let tag = step as u8;
                    allocator.writable(&mut span).unwrap().fill(tag);
                    if next() % 2 == 0 {
                        allocator.publish(&mut span).unwrap();
                    }
                    live.push((span, tag));
                } else {
                    let index = (next() % live.len() as u64) as usize;
                    let (span, tag) = live.swap_remove(index);
                    // SAFETY: the span is live, its RX view readable.
                    let bytes = unsafe { std::slice::from_raw_parts(span.rx_ptr(), span.size()) };
                    assert!(
                        bytes.iter().all(|&b| b == tag),
                        "bytes of a live span changed"
                    );
                    allocator.release(span).unwrap();
                }
            }
            let mut ranges: Vec<(u64, u64)> = live
                .iter()
                .map(|(span, _)| {
                    (
                        span.rx_address(),
                        span.rx_address() + span.allocated_size() as u64,
                    )
                })
                .collect();
            ranges.sort_unstable();
            assert!(
                ranges.windows(2).all(|w| w[0].1 <= w[1].0),
                "overlapping spans"
            );
            let stats = allocator.stats();
            assert_eq!(stats.allocations, live.len());
            assert_eq!(
                stats.used_bytes,
                live.iter()
                    .map(|(span, _)| span.allocated_size())
                    .sum::<usize>()
            );
            for (span, tag) in live {
                // SAFETY: as above.
                let bytes = unsafe { std::slice::from_raw_parts(span.rx_ptr(), span.size()) };
                assert!(bytes.iter().all(|&b| b == tag));
                allocator.release(span).unwrap();
            }
            assert_eq!(allocator.stats().used_bytes, 0);
        }
    }

    #[test]
    fn empty_regions_are_unmapped_but_one_is_kept() {
        let allocator = JitAllocator::new(JitAllocatorOptions {
            region_size: memory::page_size(),
            ..options(true)
        })
        .unwrap();
        let page = memory::page_size();
        let spans: Vec<JitSpan> = (0..4).map(|_| allocator.allocate(page).unwrap()).collect();
        // Regions of 1, 2, 4 pages: 3 regions for 4 pages.
        assert_eq!(allocator.stats().regions, 3);
        for span in spans {
            allocator.release(span).unwrap();
        }
        let stats = allocator.stats();
        assert_eq!(stats.regions, 1);
        assert_eq!(stats.used_bytes, 0);
        assert_eq!(allocator.trim(), 1);
        assert_eq!(allocator.trim(), 0);
    }
}
