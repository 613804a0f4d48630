//! jitforge: x86/x86-64 machine-code generation for Rust.
//!
//! The pipeline, one layer per module: [`x86`] (operands, instruction
//! database, encoder, Assembler) writes into [`code`] (the `CodeHolder`:
//! sections, labels, fixups, relocations), which [`jit`] copies into
//! executable memory.

pub mod jit;
