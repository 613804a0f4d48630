//! jitforge: x86/x86-64 machine-code generation for Rust.
//!
//! The pipeline, one layer per module: [`x86`] (operands, instruction
//! database, encoder, [`x86::Assembler`]) writes into [`code`] (the
//! [`CodeHolder`]: sections, labels, fixups, relocations), which [`jit`]
//! copies into executable memory ([`JitRuntime`]), never writable and
//! executable at once.
//!
//! ```
//! use jitforge::x86::*;
//! use jitforge::{Arch, CodeHolder, JitRuntime};
//!
//! let runtime = JitRuntime::new()?;
//! let mut code = CodeHolder::new(Arch::X64);
//! let mut a = Assembler::new(&mut code);
//! a.lea(rax, qword_ptr(rdi + rsi))?;
//! a.ret()?;
//! let function = runtime.add(&code)?;
//! // SAFETY: the code above is a complete System V function taking two integers.
//! let add: extern "C" fn(u64, u64) -> u64 = unsafe { function.function() };
//! assert_eq!(add(40, 2), 42);
//! # Ok::<(), jitforge::Error>(())
//! ```
//!
//! Cargo features (all on by default): `compiler` (the `compiler` module,
//! which brings the IR and register-allocator crates), `text` (the
//! Intel-syntax parser and its assemblers), `cli` (the `jitforge` command).
//! `default-features = false` leaves the Assembler, the Builder and the JIT
//! runtime.

pub mod builder;
pub mod code;
#[cfg(feature = "compiler")]
pub mod compiler;
mod error;
pub mod jit;
pub mod workloads;
pub mod x86;

pub use builder::Builder;
pub use code::{Arch, CodeHolder, Label};
pub use error::{Error, Result};
pub use jit::{
    JitAddError, JitAllocator, JitAllocatorOptions, JitCode, JitError, JitRuntime, JitSpan,
    JitStats,
};

impl JitRuntime {
    /// Copies the code of `code` into executable memory, relocated for its
    /// final address, and returns the handle that keeps it alive.
    pub fn add(&self, code: &CodeHolder) -> Result<JitCode> {
        let size = code.code_size();
        // `relocate_to` writes every byte (or fails before publishing).
        self.add_overwriting(size, |dst, address| code.relocate_to(address, dst))
            .map_err(|e| match e {
                JitAddError::Jit(e) => Error::Jit(e),
                JitAddError::Write(e) => e,
            })
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(all(doctest, feature = "compiler", feature = "text"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
