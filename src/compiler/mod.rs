//! The Compiler: virtual registers, functions and calls on top of the IR, the
//! register allocator and the Builder (being written).
//!
//! - [`target`]: the x86 target of the IR ([`X86Target`]), which gives the
//!   IR's verifier, lowering and the register allocator every operand fact
//!   from jitforge's instruction database.

pub mod target;

pub use target::{BoundOperands, ImplicitBinding, Prefix, X86Inst, X86Target};

mod api;
mod ra;
mod rewrite;

pub use api::Compiler;
pub use jitforge_ir::{Signature, ValType};
pub mod fuzzing;
pub mod run;
