//! The JIT runtime: places machine code in executable memory and hands out
//! [`JitCode`] handles that free it when dropped.
//!
//! [`JitRuntime`] is a cheap, cloneable, `Send + Sync` front end to a shared
//! [`JitAllocator`]. [`JitRuntime::add_with`] reserves memory, lets the caller
//! write (and relocate) its code for the final executable address, publishes
//! it as executable and returns a [`JitCode`]. Code never moves once added.

use std::fmt;
use std::sync::Arc;

use super::allocator::{Block, JitAllocator, JitAllocatorOptions, JitSpan, JitStats};
use super::error::{JitAddError, JitError};

/// Executable memory for JIT code: adds code, hands out [`JitCode`] handles.
///
/// Cloning a runtime is cheap; clones share one allocator. The runtime is
/// `Send + Sync`, so several threads can add and call code at once.
///
/// ```
/// use jitforge::jit::JitRuntime;
///
/// let runtime = JitRuntime::new()?;
/// // mov eax, 1; ret
/// let code = runtime.add_bytes(&[0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3])?;
/// // SAFETY: the bytes are a complete function with the C ABI that takes no
/// // arguments and returns a 32-bit integer in eax.
/// let one: extern "C" fn() -> u32 = unsafe { code.function() };
/// assert_eq!(one(), 1);
/// # Ok::<(), jitforge::jit::JitError>(())
/// ```
#[derive(Clone)]
pub struct JitRuntime {
    allocator: Arc<JitAllocator>,
}

impl fmt::Debug for JitRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitRuntime")
            .field("allocator", &self.allocator)
            .finish()
    }
}

/// Releases a block unless disarmed (used while the caller's `write` runs,
/// so a failing or panicking callback does not leak memory).
struct ReleaseGuard<'a> {
    allocator: &'a JitAllocator,
    block: Option<Block>,
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        if let Some(block) = self.block.take() {
            self.allocator.free_block(block);
        }
    }
}

impl JitRuntime {
    /// Creates a runtime with the default [`JitAllocatorOptions`] (dual
    /// mapping where available, 1 MiB regions, 64-byte granules).
    pub fn new() -> Result<JitRuntime, JitError> {
        Self::with_options(JitAllocatorOptions::default())
    }

    /// Creates a runtime whose allocator uses `options`.
    pub fn with_options(options: JitAllocatorOptions) -> Result<JitRuntime, JitError> {
        Ok(JitRuntime {
            allocator: Arc::new(JitAllocator::new(options)?),
        })
    }

    /// The allocator behind this runtime.
    pub fn allocator(&self) -> &Arc<JitAllocator> {
        &self.allocator
    }

    /// Reserves `size` bytes, calls `write(buffer, executable_address)` so
    /// the caller can copy and relocate its code for its final address, then
    /// makes it executable and returns a handle.
    ///
    /// The buffer is exactly `size` bytes, initially filled with `int3`
    /// (0xCC). If `write` fails, the memory is released and the caller's
    /// error comes back inside [`JitAddError::Write`]; if it panics, the
    /// memory is released too.
    ///
    /// ```
    /// use jitforge::jit::{JitAddError, JitRuntime};
    ///
    /// let runtime = JitRuntime::new()?;
    /// // mov rax, imm64 (the code's own address); ret
    /// let code = runtime
    ///     .add_with(11, |buf, address| {
    ///         buf[..2].copy_from_slice(&[0x48, 0xB8]);
    ///         buf[2..10].copy_from_slice(&address.to_le_bytes());
    ///         buf[10] = 0xC3;
    ///         Ok::<(), std::convert::Infallible>(())
    ///     })
    ///     .map_err(|error| match error {
    ///         JitAddError::Jit(error) => error,
    ///         JitAddError::Write(never) => match never {},
    ///     })?;
    /// // SAFETY: the code is a complete C function returning a u64 in rax.
    /// let f: extern "C" fn() -> u64 = unsafe { code.function() };
    /// assert_eq!(f(), code.address());
    /// # Ok::<(), jitforge::jit::JitError>(())
    /// ```
    pub fn add_with<E>(
        &self,
        size: usize,
        write: impl FnOnce(&mut [u8], u64) -> Result<(), E>,
    ) -> Result<JitCode, JitAddError<E>> {
        let span = self.allocator.allocate(size)?;
        self.publish_written(span, write)
    }

    /// [`add_with`](Self::add_with) for a `write` that stores every byte
    /// of the buffer when it succeeds (a copy of whole code): the buffer
    /// is not filled with `int3` first, only the granule padding past it.
    /// A `write` that fails leaves nothing behind (the memory is released).
    pub(crate) fn add_overwriting<E>(
        &self,
        size: usize,
        write: impl FnOnce(&mut [u8], u64) -> Result<(), E>,
    ) -> Result<JitCode, JitAddError<E>> {
        let span = self.allocator.allocate_to_overwrite(size)?;
        self.publish_written(span, write)
    }

    /// Lets `write` write `span`'s buffer, then publishes it (released if
    /// `write` fails or panics).
    fn publish_written<E>(
        &self,
        mut span: JitSpan,
        write: impl FnOnce(&mut [u8], u64) -> Result<(), E>,
    ) -> Result<JitCode, JitAddError<E>> {
        let address = span.rx_address();
        let mut guard = ReleaseGuard {
            allocator: &self.allocator,
            block: Some(span.block()),
        };
        let buffer = self.allocator.writable(&mut span)?;
        write(buffer, address).map_err(JitAddError::Write)?;
        self.allocator.publish(&mut span)?;
        guard.block = None;
        drop(guard);
        Ok(JitCode {
            allocator: Arc::clone(&self.allocator),
            block: span.block(),
            size: span.size(),
        })
    }

    /// Copies position-independent code (no relocation needed) into
    /// executable memory.
    ///
    /// Fails with [`JitError::ZeroSize`] for empty input, or if memory cannot
    /// be reserved.
    pub fn add_bytes(&self, bytes: &[u8]) -> Result<JitCode, JitError> {
        self.add_overwriting(bytes.len(), |buffer, _| {
            buffer.copy_from_slice(bytes);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|error| match error {
            JitAddError::Jit(error) => error,
            JitAddError::Write(never) => match never {},
        })
    }

    /// Statistics of the runtime's allocator: regions mapped, bytes
    /// used/reserved, live allocations, and system calls made.
    pub fn stats(&self) -> JitStats {
        self.allocator.stats()
    }
}

/// A handle to code added to a [`JitRuntime`].
///
/// The code stays at [`address`](Self::address) for the life of the handle
/// (it never moves) and its memory is released when the handle is dropped,
/// so function pointers obtained from it must not be called afterwards. The
/// handle keeps the runtime's allocator alive and is `Send + Sync`.
pub struct JitCode {
    allocator: Arc<JitAllocator>,
    block: Block,
    size: usize,
}

impl fmt::Debug for JitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JitCode")
            .field("address", &format_args!("{:#x}", self.address()))
            .field("size", &self.size)
            .finish()
    }
}

impl JitCode {
    /// The executable address of the code.
    pub fn address(&self) -> u64 {
        self.as_ptr() as u64
    }

    /// The executable address of the code as a pointer (readable for
    /// [`size`](Self::size) bytes while the handle lives).
    pub fn as_ptr(&self) -> *const u8 {
        self.block.rx_ptr()
    }

    /// The size of the code in bytes (as requested when it was added).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The code's bytes, read through the executable view.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the RX view is readable for `size` bytes while this handle
        // keeps the block allocated and the allocator alive; the block is
        // published, so nothing writes it through the safe API any more.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.size) }
    }

    /// The code's address as a function pointer of type `F`.
    ///
    /// `F` must be pointer-sized; that is checked at compile time.
    ///
    /// # Safety
    ///
    /// `F` must be a function-pointer type (e.g. `extern "C" fn(u64) -> u64`)
    /// whose signature and ABI match the code. The pointer must not be
    /// called after this handle is dropped.
    ///
    /// A type that is not pointer-sized does not compile:
    ///
    /// ```compile_fail
    /// let runtime = jitforge::jit::JitRuntime::new().unwrap();
    /// let code = runtime.add_bytes(&[0xC3]).unwrap();
    /// let byte: u8 = unsafe { code.function() };
    /// ```
    pub unsafe fn function<F: Copy>(&self) -> F {
        const {
            assert!(
                size_of::<F>() == size_of::<usize>(),
                "JitCode::function: F must be a function-pointer type"
            )
        };
        let address = self.as_ptr();
        // SAFETY: `F` has the size of a pointer (checked above) and the
        // caller guarantees it is a function-pointer type matching the code,
        // for which any non-null code address is a valid bit pattern.
        unsafe { std::mem::transmute_copy::<*const u8, F>(&address) }
    }
}

impl JitCode {
    /// Overwrites code in place (it does not move): `bytes` are written at
    /// `offset`. See [`JitAllocator::patch`] for how each W^X mode does it.
    ///
    /// Fails with [`JitError::OutOfBounds`] if the range is not within
    /// [`size`](Self::size), or a [`JitError::Syscall`].
    ///
    /// # Safety
    ///
    /// While this call runs, no thread may execute or read this code (also
    /// not through [`bytes`](Self::bytes)) or patch it. Afterwards the code
    /// must match every function-pointer type it is called through.
    pub unsafe fn patch(&self, offset: usize, bytes: &[u8]) -> Result<(), JitError> {
        // SAFETY: the block is live (owned by this handle), belongs to this
        // allocator and is published; the caller upholds the contract above.
        unsafe {
            self.allocator
                .patch_block(self.block, self.size, true, offset, bytes)
        }
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        self.allocator.free_block(self.block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn types_are_send_and_sync() {
        assert_send_sync::<JitRuntime>();
        assert_send_sync::<JitCode>();
        assert_send_sync::<JitAllocator>();
    }

    #[test]
    fn add_bytes_runs_in_both_modes() {
        for dual_mapping in [true, false] {
            let runtime = JitRuntime::with_options(JitAllocatorOptions {
                dual_mapping,
                ..JitAllocatorOptions::default()
            })
            .unwrap();
            let code = runtime.add_bytes(&[0xB8, 42, 0, 0, 0, 0xC3]).unwrap();
            assert_eq!(code.size(), 6);
            assert_eq!(code.bytes(), &[0xB8, 42, 0, 0, 0, 0xC3]);
            // SAFETY: `mov eax, 42; ret` is a C function returning u32.
            let f: extern "C" fn() -> u32 = unsafe { code.function() };
            assert_eq!(f(), 42);
        }
    }

    #[test]
    fn failed_write_releases_memory() {
        let runtime = JitRuntime::new().unwrap();
        let error = runtime
            .add_with(16, |_, _| Err("relocation out of range"))
            .unwrap_err();
        assert_eq!(error, JitAddError::Write("relocation out of range"));
        assert_eq!(runtime.stats().allocations, 0);
        assert_eq!(runtime.stats().used_bytes, 0);
    }

    #[test]
    fn panicking_write_releases_memory() {
        let runtime = JitRuntime::new().unwrap();
        let result = std::panic::catch_unwind(|| {
            let _ = runtime.add_with(16, |_, _| -> Result<(), ()> { panic!("writer panicked") });
        });
        assert!(result.is_err());
        assert_eq!(runtime.stats().allocations, 0);
    }

    #[test]
    fn add_errors() {
        let runtime = JitRuntime::new().unwrap();
        assert_eq!(runtime.add_bytes(&[]).unwrap_err(), JitError::ZeroSize);
        assert!(matches!(
            runtime.add_with(usize::MAX, |_, _| Ok::<(), ()>(())),
            Err(JitAddError::Jit(JitError::TooLarge { .. }))
        ));
    }

    #[test]
    fn dropping_code_releases_memory() {
        let runtime = JitRuntime::new().unwrap();
        let code = runtime.add_bytes(&[0xC3]).unwrap();
        assert_eq!(runtime.stats().allocations, 1);
        assert!(runtime.stats().used_bytes >= 64);
        drop(code);
        assert_eq!(runtime.stats().allocations, 0);
        assert_eq!(runtime.stats().used_bytes, 0);
    }

    #[test]
    fn patching_in_place_in_both_modes() {
        for dual_mapping in [true, false] {
            let runtime = JitRuntime::with_options(JitAllocatorOptions {
                dual_mapping,
                ..JitAllocatorOptions::default()
            })
            .unwrap();
            let code = runtime.add_bytes(&[0xB8, 1, 0, 0, 0, 0xC3]).unwrap();
            // SAFETY: `mov eax, imm32; ret` is a C function returning u32.
            let f: extern "C" fn() -> u32 = unsafe { code.function() };
            assert_eq!(f(), 1);
            // SAFETY: no other thread uses the code; it stays `mov eax; ret`.
            unsafe { code.patch(1, &77u32.to_le_bytes()) }.unwrap();
            assert_eq!(f(), 77);
            assert_eq!(
                // SAFETY: as above; the patch is rejected before writing.
                unsafe { code.patch(5, &[0x90, 0x90]) }.unwrap_err(),
                JitError::OutOfBounds {
                    offset: 5,
                    len: 2,
                    size: 6
                }
            );
            assert_eq!(f(), 77);
            if dual_mapping && runtime.stats().dual_mapping {
                assert_eq!(runtime.stats().mprotect_calls, 0);
            }
        }
    }

    #[test]
    fn code_outlives_runtime() {
        let code = {
            let runtime = JitRuntime::new().unwrap();
            runtime.add_bytes(&[0xB8, 5, 0, 0, 0, 0xC3]).unwrap()
        };
        // SAFETY: `mov eax, 5; ret` is a C function returning u32.
        let f: extern "C" fn() -> u32 = unsafe { code.function() };
        assert_eq!(f(), 5);
    }
}
