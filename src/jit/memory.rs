//! Virtual-memory primitives for JIT code: page size, mappings and protection
//! changes, all through `libc`.
//!
//! Two kinds of [`Mapping`] exist:
//!
//! - **Dual mapping** (Linux only): the pages of an anonymous `memfd` are
//!   mapped twice with `MAP_SHARED`, once `PROT_READ | PROT_WRITE` (the RW
//!   view) and once `PROT_READ | PROT_EXEC` (the RX view). Code is written
//!   through the RW view and executed through the RX view, so no mapping is
//!   ever writable and executable at once and no `mprotect` is ever needed.
//! - **Single mapping**: one private anonymous mapping that starts
//!   `PROT_READ | PROT_WRITE` and whose pages are switched to
//!   `PROT_READ | PROT_EXEC` with [`protect`] once code has been written.
//!
//! Every system call made here is counted in a [`SyscallCounters`], so the
//! allocator can report how many `mmap`/`mprotect` calls its work cost.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::JitError;

/// Counts of the system calls made by one allocator.
#[derive(Debug, Default)]
pub(crate) struct SyscallCounters {
    pub(crate) mmap: AtomicU64,
    pub(crate) munmap: AtomicU64,
    pub(crate) mprotect: AtomicU64,
    pub(crate) memfd_create: AtomicU64,
}

impl SyscallCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The system page size (cached after the first call).
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: OnceLock<usize> = OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: sysconf has no memory-safety preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 && (size as usize).is_power_of_two() {
            size as usize
        } else {
            4096
        }
    })
}

/// The `errno` of the last failed system call on this thread.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Builds the error for a failed system call from the current `errno`.
fn syscall_error(call: &'static str) -> JitError {
    JitError::Syscall {
        call,
        errno: last_errno(),
    }
}

/// Requested protection of a page range of a single mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protection {
    /// `PROT_READ | PROT_WRITE`: code may be written, not executed.
    ReadWrite,
    /// `PROT_READ | PROT_EXEC`: code may be executed, not written.
    ReadExecute,
}

impl Protection {
    fn flags(self) -> libc::c_int {
        match self {
            Protection::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Protection::ReadExecute => libc::PROT_READ | libc::PROT_EXEC,
        }
    }
}

/// A mapped range of pages with its executable (RX) and writable (RW) views.
///
/// For a single mapping both views are the same address. The mapping is
/// unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    rx: usize,
    rw: usize,
    size: usize,
    dual: bool,
    counters: Arc<SyscallCounters>,
}

impl Mapping {
    /// Address of the executable view.
    pub(crate) fn rx(&self) -> usize {
        self.rx
    }

    /// Address of the writable view (equal to [`Mapping::rx`] for a single
    /// mapping).
    pub(crate) fn rw(&self) -> usize {
        self.rw
    }

    /// Size in bytes (a multiple of the page size).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Whether this is a dual (memfd) mapping.
    pub(crate) fn is_dual(&self) -> bool {
        self.dual
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `rx` (and `rw` for a dual mapping) are mappings of `size`
        // bytes created by `map_single`/`map_dual` and owned by this value;
        // the allocator drops a mapping only when no allocation lives in it.
        unsafe {
            libc::munmap(self.rx as *mut libc::c_void, self.size);
        }
        SyscallCounters::bump(&self.counters.munmap);
        if self.dual {
            // SAFETY: as above, for the RW view of a dual mapping.
            unsafe {
                libc::munmap(self.rw as *mut libc::c_void, self.size);
            }
            SyscallCounters::bump(&self.counters.munmap);
        }
    }
}

/// Calls `mmap` and counts it; `fd == -1` means an anonymous private mapping.
fn mmap(
    size: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: libc::c_int,
    counters: &SyscallCounters,
) -> Result<usize, JitError> {
    SyscallCounters::bump(&counters.mmap);
    // SAFETY: a null hint lets the kernel choose a fresh address range, so
    // no existing mapping is replaced; the arguments are plain values.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), size, prot, flags, fd, 0) };
    if ptr == libc::MAP_FAILED {
        Err(syscall_error("mmap"))
    } else {
        Ok(ptr as usize)
    }
}

/// Maps `size` bytes (a multiple of the page size) of private anonymous
/// memory, readable and writable, for the `mprotect` mode.
pub(crate) fn map_single(
    size: usize,
    counters: &Arc<SyscallCounters>,
) -> Result<Mapping, JitError> {
    let addr = mmap(
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        counters,
    )?;
    Ok(Mapping {
        rx: addr,
        rw: addr,
        size,
        dual: false,
        counters: Arc::clone(counters),
    })
}

/// Changes the protection of `len` bytes at `addr` (page aligned, inside a
/// single mapping) to `prot`.
///
/// The caller guarantees that the pages belong to a live single mapping and
/// that no thread depends on the old protection: no live code when switching
/// to RW, no writer when switching to RX.
pub(crate) fn protect(
    addr: usize,
    len: usize,
    prot: Protection,
    counters: &SyscallCounters,
) -> Result<(), JitError> {
    SyscallCounters::bump(&counters.mprotect);
    // SAFETY: the range lies inside a mapping owned by the allocator (see the
    // caller's guarantee above); changing its protection cannot invalidate
    // any Rust reference because the allocator hands out no references to
    // pages in the state being revoked.
    let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot.flags()) };
    if rc != 0 {
        Err(syscall_error("mprotect"))
    } else {
        Ok(())
    }
}

/// Whether a failure of the dual mapping means "not available here" (so the
/// allocator should fall back to the `mprotect` mode) rather than "out of
/// resources".
pub(crate) fn dual_mapping_unsupported(error: &JitError) -> bool {
    match error {
        JitError::Syscall { errno, .. } => matches!(
            *errno,
            libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::EACCES | libc::EOPNOTSUPP
        ),
        _ => false,
    }
}

/// Whether dual mapping can be attempted on this platform at all.
pub(crate) const DUAL_MAPPING_PLATFORM: bool =
    cfg!(any(target_os = "linux", target_os = "android"));

#[cfg(test)]
thread_local! {
    /// Test hook: makes `map_dual` fail with `ENOSYS` on this thread, to
    /// exercise the automatic fallback to the `mprotect` mode.
    pub(crate) static SIMULATE_NO_DUAL_MAPPING: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

/// Maps `size` bytes (a multiple of the page size) of a fresh memfd twice:
/// an RW view and an RX view of the same pages.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn map_dual(size: usize, counters: &Arc<SyscallCounters>) -> Result<Mapping, JitError> {
    /// `MFD_CLOEXEC`: do not leak the descriptor into exec'd children.
    const MFD_CLOEXEC: libc::c_uint = 0x0001;
    /// `MFD_EXEC` (Linux 6.3+): ask for an executable memfd explicitly, so a
    /// `vm.memfd_noexec = 1` system does not seal it non-executable.
    const MFD_EXEC: libc::c_uint = 0x0010;

    #[cfg(test)]
    if SIMULATE_NO_DUAL_MAPPING.get() {
        return Err(JitError::Syscall {
            call: "memfd_create",
            errno: libc::ENOSYS,
        });
    }

    let name = c"jitforge-code";
    let create = |flags: libc::c_uint| -> libc::c_long {
        SyscallCounters::bump(&counters.memfd_create);
        // SAFETY: `name` is a valid NUL-terminated string; memfd_create only
        // reads it. The raw syscall avoids depending on a libc wrapper.
        unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) }
    };
    let mut fd = create(MFD_CLOEXEC | MFD_EXEC);
    if fd < 0 && last_errno() == libc::EINVAL {
        // Kernels before 6.3 do not know MFD_EXEC (their memfds are
        // executable anyway).
        fd = create(MFD_CLOEXEC);
    }
    if fd < 0 {
        return Err(syscall_error("memfd_create"));
    }
    let fd = fd as libc::c_int;

    let result = (|| {
        let len = libc::off_t::try_from(size).map_err(|_| JitError::TooLarge {
            size,
            max: libc::off_t::MAX as usize,
        })?;
        // SAFETY: `fd` is the memfd created above and owned here.
        if unsafe { libc::ftruncate(fd, len) } != 0 {
            return Err(syscall_error("ftruncate"));
        }
        let rw = mmap(
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            counters,
        )?;
        match mmap(
            size,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_SHARED,
            fd,
            counters,
        ) {
            Ok(rx) => Ok(Mapping {
                rx,
                rw,
                size,
                dual: true,
                counters: Arc::clone(counters),
            }),
            Err(error) => {
                // SAFETY: `rw` was mapped just above with `size` bytes and
                // nothing else refers to it yet.
                unsafe {
                    libc::munmap(rw as *mut libc::c_void, size);
                }
                SyscallCounters::bump(&counters.munmap);
                Err(error)
            }
        }
    })();
    // The mappings keep the memfd's pages alive; the descriptor itself is
    // no longer needed.
    // SAFETY: `fd` is owned here and closed exactly once.
    unsafe {
        libc::close(fd);
    }
    result
}

/// Dual mapping is unavailable outside Linux: always reports `ENOSYS`, which
/// makes the allocator use the `mprotect` mode.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn map_dual(
    _size: usize,
    _counters: &Arc<SyscallCounters>,
) -> Result<Mapping, JitError> {
    Err(JitError::Syscall {
        call: "memfd_create",
        errno: libc::ENOSYS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_power_of_two() {
        let page = page_size();
        assert!(page >= 4096);
        assert!(page.is_power_of_two());
    }

    #[test]
    fn single_mapping_toggles_protection_and_counts_calls() {
        let counters = Arc::new(SyscallCounters::default());
        let page = page_size();
        let mapping = map_single(2 * page, &counters).expect("mmap");
        assert_eq!(mapping.rx(), mapping.rw());
        assert!(!mapping.is_dual());
        assert_eq!(mapping.size(), 2 * page);
        protect(mapping.rx(), page, Protection::ReadExecute, &counters).expect("mprotect");
        protect(mapping.rx(), page, Protection::ReadWrite, &counters).expect("mprotect");
        assert_eq!(counters.mmap.load(Ordering::Relaxed), 1);
        assert_eq!(counters.mprotect.load(Ordering::Relaxed), 2);
        drop(mapping);
        assert_eq!(counters.munmap.load(Ordering::Relaxed), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn dual_mapping_views_share_pages() {
        let counters = Arc::new(SyscallCounters::default());
        let page = page_size();
        let mapping = match map_dual(page, &counters) {
            Ok(mapping) => mapping,
            // Some sandboxes forbid executable shared memory.
            Err(error) if dual_mapping_unsupported(&error) => return,
            Err(error) => panic!("dual mapping failed: {error}"),
        };
        assert!(mapping.is_dual());
        assert_ne!(mapping.rx(), mapping.rw());
        // SAFETY: both views map the same `page` bytes, the RW view is
        // writable, the RX view readable, and nothing else uses them.
        unsafe {
            (mapping.rw() as *mut u8).add(7).write(0xAB);
            assert_eq!((mapping.rx() as *const u8).add(7).read(), 0xAB);
        }
        assert_eq!(counters.mmap.load(Ordering::Relaxed), 2);
        drop(mapping);
        assert_eq!(counters.munmap.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn protect_failure_reports_errno() {
        let counters = SyscallCounters::default();
        // An unaligned address makes mprotect fail with EINVAL.
        let error = protect(1, 1, Protection::ReadWrite, &counters).unwrap_err();
        assert_eq!(
            error,
            JitError::Syscall {
                call: "mprotect",
                errno: libc::EINVAL
            }
        );
    }
}
