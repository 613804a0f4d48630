//! Errors of the JIT memory layer: [`JitError`] for the allocator and
//! runtime, [`JitAddError`] for [`JitRuntime::add_with`](super::JitRuntime::add_with),
//! which can also carry the caller's own error.

use std::fmt;

/// An error from the JIT allocator or runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JitError {
    /// A request for zero bytes.
    ZeroSize,
    /// A request larger than the allocator supports.
    TooLarge {
        /// The requested size in bytes.
        size: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// Invalid [`JitAllocatorOptions`](super::JitAllocatorOptions); the text
    /// says which field and why.
    InvalidOptions(&'static str),
    /// A system call failed.
    Syscall {
        /// The system call (`"mmap"`, `"mprotect"`, `"memfd_create"`, ...).
        call: &'static str,
        /// The `errno` it set.
        errno: i32,
    },
    /// A [`JitSpan`](super::JitSpan) was passed to an allocator that did not
    /// create it.
    ForeignSpan,
    /// A patch does not lie within the code it patches.
    OutOfBounds {
        /// Offset of the patch.
        offset: usize,
        /// Length of the patch.
        len: usize,
        /// Size of the code.
        size: usize,
    },
    /// The span was already published as executable and can no longer be
    /// written through the allocator's safe API.
    AlreadyPublished,
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::ZeroSize => f.write_str("JIT allocation of size 0"),
            JitError::TooLarge { size, max } => {
                write!(
                    f,
                    "JIT allocation of {size} bytes is too large (maximum {max})"
                )
            }
            JitError::InvalidOptions(what) => write!(f, "invalid JIT allocator options: {what}"),
            JitError::Syscall { call, errno } => write!(
                f,
                "{call} failed: {} (errno {errno})",
                std::io::Error::from_raw_os_error(*errno)
            ),
            JitError::ForeignSpan => {
                f.write_str("JIT span released to or used with an allocator that did not create it")
            }
            JitError::OutOfBounds { offset, len, size } => write!(
                f,
                "patch of {len} bytes at offset {offset} does not fit in {size} bytes of code"
            ),
            JitError::AlreadyPublished => f.write_str(
                "JIT span was already published as executable and is no longer writable",
            ),
        }
    }
}

impl std::error::Error for JitError {}

/// The error of [`JitRuntime::add_with`](super::JitRuntime::add_with): either
/// the JIT memory layer failed, or the caller's `write` callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JitAddError<E> {
    /// Allocating or publishing the memory failed.
    Jit(JitError),
    /// The caller's `write` callback failed; the memory has been released.
    Write(E),
}

impl<E> From<JitError> for JitAddError<E> {
    fn from(error: JitError) -> Self {
        JitAddError::Jit(error)
    }
}

impl<E: fmt::Display> fmt::Display for JitAddError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitAddError::Jit(error) => error.fmt(f),
            JitAddError::Write(error) => write!(f, "writing JIT code failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for JitAddError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JitAddError::Jit(error) => Some(error),
            JitAddError::Write(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_syscall_and_errno() {
        let text = JitError::Syscall {
            call: "mmap",
            errno: libc::ENOMEM,
        }
        .to_string();
        assert!(text.starts_with("mmap failed: "), "{text}");
        assert!(
            text.ends_with(&format!("(errno {})", libc::ENOMEM)),
            "{text}"
        );
    }

    #[test]
    fn display_of_size_errors() {
        assert_eq!(JitError::ZeroSize.to_string(), "JIT allocation of size 0");
        assert_eq!(
            JitError::TooLarge { size: 10, max: 5 }.to_string(),
            "JIT allocation of 10 bytes is too large (maximum 5)"
        );
    }

    #[test]
    fn add_error_wraps_both_sides() {
        let jit: JitAddError<std::fmt::Error> = JitError::ZeroSize.into();
        assert_eq!(jit.to_string(), "JIT allocation of size 0");
        assert!(std::error::Error::source(&jit).is_some());
        let write: JitAddError<std::fmt::Error> = JitAddError::Write(std::fmt::Error);
        assert!(write.to_string().starts_with("writing JIT code failed"));
    }
}
