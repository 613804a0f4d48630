//! Intel-syntax text: the [`format`](mod@format)ter that prints
//! instructions in the dialect llvm-mc and GNU as read, and the [`listing`]
//! logger built on it (both always here: the Assembler's logger needs them).
//!
//! With the `text` feature (on by default) also the `parse`r (one line or a
//! whole program), `isa` descriptions of the instruction database (text and
//! JSON), the `coverage` report, and the assemblers built on them
//! (`assemble_program`, `LineAssembler`) that the `jitforge` command uses.
//!
//! ```
//! # #[cfg(feature = "text")] {
//! use jitforge::Arch;
//! use jitforge::x86::text::LineAssembler;
//!
//! let mut a = LineAssembler::new(Arch::X64);
//! assert_eq!(a.assemble("vaddps zmm0{k1}{z}, zmm1, zmm2, {rn-sae}").unwrap(), [0x62, 0xf1, 0x74, 0x99, 0x58, 0xc2]);
//! assert_eq!(a.assemble("jne 0x11").unwrap(), [0x75, 0x0f]);
//! # }
//! ```

#[cfg(feature = "text")]
mod assemble;
#[cfg(feature = "text")]
pub mod coverage;
pub mod format;
#[cfg(feature = "text")]
pub mod isa;
pub mod listing;
#[cfg(feature = "text")]
pub mod parse;

#[cfg(feature = "text")]
pub use assemble::{Assembled, LineAssembler, assemble_program, emit_parsed};
pub use format::{format_instruction, format_instruction_with, format_operand};
pub use listing::{Listing, ListingEntry};
#[cfg(feature = "text")]
pub use parse::{
    ParseError, ParsedInstruction, ParsedOperand, Statement, StatementKind, lookup_mnemonic,
    parse_instruction, parse_line, parse_line_with, parse_program,
};

/// Parses arbitrary bytes as a program in both modes and assembles each line
/// on its own; for the `parse` fuzz target and the robustness test. It must
/// never panic, whatever the input.
#[cfg(feature = "text")]
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for arch in [crate::code::Arch::X64, crate::code::Arch::X86] {
        let _ = parse_program(&text, arch);
        let mut a = LineAssembler::new(arch);
        for line in text.lines().take(64) {
            let _ = a.assemble(line);
        }
        let _ = assemble_program(&text, arch);
    }
}
