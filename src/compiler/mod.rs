//! The Compiler: virtual registers, functions and calls on top of the IR, the
//! register allocator and the Builder.
//!
//! - [`Compiler`] (`api`): AsmJit's model — functions, virtual registers,
//!   every instruction (implicit registers as virtual registers too),
//!   calls, tail calls, stack memory, constant pools; it builds the IR.
//! - [`target`]: the x86 target of the IR ([`X86Target`]), which gives the
//!   IR's verifier, lowering and the register allocator every operand fact
//!   from jitforge's instruction database.
//! - `ra`: the allocator's view of a lowered function (the operand facts
//!   of each instruction are computed once, when it is written, and read
//!   back through the instruction's tag from the workspace's
//!   [`FactsTable`]); `rewrite`: the frame and the allocated function
//!   written into the Builder, or straight into the code holder when
//!   nothing in it needs relaxing (no label, no jump table, no split edge).
//! - [`run`]: IR text compiled and run or listed (the `jitforge run` and
//!   `jitforge compile` commands); [`fuzzing`]: the differential check of
//!   random programs against an interpreter.

pub mod target;

pub use target::{BoundOperands, FactsTable, ImplicitBinding, Prefix, X86Inst, X86Target};

mod api;
mod ra;
mod rewrite;

pub use api::{Compiler, release_thread_workspace};
pub use jitforge_ir::{Signature, ValType};
pub mod fuzzing;
pub mod run;
