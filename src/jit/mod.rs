//! Executable memory for JIT code.
//!
//! This module is the last stage of the pipeline: it places finished machine
//! code in memory the CPU may execute, and never lets any mapping be
//! writable and executable at the same time (W^X).
//!
//! - [`JitRuntime`] is what most users need: [`JitRuntime::add_bytes`] or
//!   [`JitRuntime::add_with`] copy (and let the caller relocate) code, and
//!   return a [`JitCode`] handle from which a typed function pointer is taken
//!   with the `unsafe` [`JitCode::function`]. Dropping the handle frees the
//!   memory.
//! - [`JitAllocator`] is the malloc-like allocator underneath: it carves many
//!   functions out of large regions (1 MiB by default, growing), using a
//!   bitmap of granules, so adding 10,000 small functions costs a handful of
//!   `mmap` calls. See the [`allocator`] module for its structure.
//!
//! Two W^X strategies exist. By default (Linux) every region is a `memfd`
//! mapped twice, once read-write and once read-execute, so code is written
//! and published without any `mprotect` and without touching pages other
//! threads run code on. Where that is unavailable, or when
//! [`JitAllocatorOptions::dual_mapping`] is false, a single mapping is
//! switched from RW to RX with `mprotect`, each allocation owning whole
//! pages so that concurrent users never share a page in the wrong state.
//!
//! Targets: x86-64 Linux, and other Unix systems in the `mprotect` mode. On
//! x86 no instruction-cache flush is needed after writing code.
//!
//! A process that forks shares dual-mapped code pages with its child (the
//! mappings are `MAP_SHARED`); a forked child must not add or free JIT code
//! through allocators inherited from its parent.

pub mod allocator;
mod bitmap;
pub mod error;
mod memory;
pub mod runtime;

pub use allocator::{
    JitAllocator, JitAllocatorOptions, JitSpan, JitStats, MAX_ALLOCATION_SIZE, MAX_REGION_SIZE,
};
pub use error::{JitAddError, JitError};
pub use runtime::{JitCode, JitRuntime};
